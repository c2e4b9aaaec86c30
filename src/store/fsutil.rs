//! Small filesystem helpers the storage writer needs: directory fsync, allocated sizes, free space.
//!
//! Thin wrappers over std and libc; no policy lives here.

use std::fs::File;
use std::io;
use std::path::Path;

/// `fsync` of a directory, so that a create, rename or unlink inside it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = if st.f_frsize > 0 {
        st.f_frsize as u64
    } else {
        st.f_bsize as u64
    };
    Ok(FsStats {
        free_bytes: st.f_bavail as u64 * frsize,
        block_size: frsize.max(512),
    })
}

/// Rounds `n` bytes up to a whole number of `block` bytes.
pub fn round_up(n: u64, block: u64) -> u64 {
    n.div_ceil(block) * block
}

/// Whether an I/O error means the filesystem is full.
pub fn is_enospc(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
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
    _file: File,
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
    use std::os::unix::io::AsRawFd;
    std::fs::create_dir_all(storage)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(storage.join(".lock"))?;
    // SAFETY: valid fd owned by `f`.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(StoreLock { _file: f })
}
