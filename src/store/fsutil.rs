//! Small filesystem helpers the storage writer needs: directory fsync, allocated sizes, free space.
//!
//! Thin wrappers over std and nix (no `unsafe`), and the sync latency histogram of the card;
//! no policy lives here.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the sync latency histogram's buckets: a healthy card syncs in a few
/// ms; hundreds of ms and more are the first sign of a dying one.
pub const SYNC_BUCKETS_S: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Latency of every `fsync`/`fdatasync` the store makes (segment files and their directories),
/// process-wide: the store lives on one device (the card). Lock-free.
pub struct SyncHistogram {
    buckets: [AtomicU64; SYNC_BUCKETS_S.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// The store's sync latency histogram.
pub static SYNC_LATENCY: SyncHistogram = SyncHistogram {
    buckets: [const { AtomicU64::new(0) }; SYNC_BUCKETS_S.len()],
    count: AtomicU64::new(0),
    sum_ns: AtomicU64::new(0),
};

impl SyncHistogram {
    /// Counts one sync that took `d`.
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = SYNC_BUCKETS_S.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket of [`SYNC_BUCKETS_S`] (Prometheus `le` buckets), the total
    /// count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut acc = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect();
        (
            cumulative,
            self.count.load(Ordering::Relaxed),
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// Runs a sync and counts its latency in [`SYNC_LATENCY`].
pub fn timed_sync(sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let t = std::time::Instant::now();
    let r = sync();
    SYNC_LATENCY.observe(t.elapsed());
    r
}

/// `fsync` of a directory, so that a create, rename or unlink inside it is durable (counted in
/// [`SYNC_LATENCY`]).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    timed_sync(|| d.sync_all())
}

/// `fdatasync` of a file, counted in [`SYNC_LATENCY`].
pub fn sync_data(f: &File) -> io::Result<()> {
    timed_sync(|| f.sync_data())
}

/// The device (`major:minor`) holding `path`, for metric labels; `unknown` if it cannot be read.
pub fn device_of(path: &Path) -> String {
    match nix::sys::stat::stat(path) {
        Ok(st) => format!(
            "{}:{}",
            nix::sys::stat::major(st.st_dev as _),
            nix::sys::stat::minor(st.st_dev as _)
        ),
        Err(_) => "unknown".into(),
    }
}

/// Bytes allocated to a file on its filesystem (`st_blocks` * 512).
pub fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

/// Filesystem figures from `statvfs`.
#[derive(Debug, Clone, Copy)]
pub struct FsStats {
    /// Bytes available to unprivileged users (`f_bavail * f_frsize`).
    pub free_bytes: u64,
    /// Fundamental block size in bytes (`f_frsize`), used to round file sizes to allocation.
    pub block_size: u64,
}

/// `statvfs` of the filesystem holding `path`.
pub fn fs_stats(path: &Path) -> io::Result<FsStats> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let frsize = if st.fragment_size() > 0 {
        st.fragment_size() as u64
    } else {
        st.block_size() as u64
    };
    Ok(FsStats {
        free_bytes: st.blocks_available() as u64 * frsize,
        block_size: frsize.max(512),
    })
}

/// Rounds `n` bytes up to a whole number of `block` bytes.
pub fn round_up(n: u64, block: u64) -> u64 {
    n.div_ceil(block) * block
}

/// Whether an I/O error means the filesystem is full.
pub fn is_enospc(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error() == Some(Errno::ENOSPC as i32) || e.raw_os_error() == Some(Errno::EDQUOT as i32)
}

/// Removes `dir` and then its parents up to (not including) `stop`, while they are empty.
pub fn remove_empty_dirs(dir: &Path, stop: &Path) {
    let mut d = dir.to_path_buf();
    while d != stop && d.starts_with(stop) {
        if std::fs::remove_dir(&d).is_err() {
            break;
        }
        match d.parent() {
            Some(p) => d = p.to_path_buf(),
            None => break,
        }
    }
}

/// An exclusive advisory lock on `<storage>/.lock`, held while a recorder or fsck uses the store.
pub struct StoreLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Says why the store lock could not be taken, for an operator: another process holds it, or the
/// directory cannot be created or opened (with the OS error).
pub fn describe_lock_error(storage: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::WouldBlock {
        format!(
            "another edgerec process (recorder or fsck) is using {}; stop it first",
            storage.display()
        )
    } else {
        format!(
            "cannot create or lock the storage directory {}: {e}",
            storage.display()
        )
    }
}

/// Takes the store lock without waiting; fails with `WouldBlock` if another process holds it.
pub fn lock_store(storage: &Path) -> io::Result<StoreLock> {
    std::fs::create_dir_all(storage)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(storage.join(".lock"))?;
    let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| io::Error::from(errno))?;
    Ok(StoreLock { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_histogram_is_cumulative() {
        let h = SyncHistogram {
            buckets: [const { AtomicU64::new(0) }; SYNC_BUCKETS_S.len()],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        };
        for ms in [0, 3, 3, 40, 9000] {
            h.observe(std::time::Duration::from_millis(ms));
        }
        let (b, count, sum) = h.snapshot();
        assert_eq!(count, 5);
        assert_eq!(
            b,
            [1, 1, 3, 3, 3, 4, 4, 4, 4, 4],
            "9 s is above every bucket"
        );
        assert!((sum - 9.046).abs() < 1e-9);
    }
}
