//! One segment file on the card, as the storage writer creates, appends to, syncs and closes it
//! (DESIGN section 4, invariant 3: create with `O_EXCL`, write, `fdatasync`, `fsync` the directory,
//! then commit the row).
//!
//! Only file operations live here; rows and transactions are the writer's, decisions the
//! segmenter's ([`super::segmenter`]).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::fsutil::{allocated_bytes, fsync_dir, round_up, sync_data};
use super::layout::{self, segment_rel_path};
use super::{io_at, StoreError};

/// The bytes of one fragment, written without copying where the source allows it.
pub trait Payload: Send + 'static {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes all bytes to `f` at its current position.
    fn write_to(&self, f: &mut File) -> io::Result<()>;
    /// Lets `edit` change the first piece of the bytes (the fragment header, up to its `moof`)
    /// in place, without changing its length; returns what `edit` returned, false if the bytes
    /// cannot be changed.
    fn edit_head(&mut self, edit: &mut dyn FnMut(&mut [u8]) -> bool) -> bool;
}

impl Payload for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn write_to(&self, f: &mut File) -> io::Result<()> {
        f.write_all(self)
    }
    fn edit_head(&mut self, edit: &mut dyn FnMut(&mut [u8]) -> bool) -> bool {
        edit(self)
    }
}

/// An open segment file.
pub struct SegmentFile {
    file: File,
    /// Absolute path.
    pub abs: PathBuf,
    /// Path relative to the storage root (the index's `path`).
    pub rel: String,
    /// Bytes written so far.
    pub len: u64,
    /// Whether every written byte has been `fdatasync`ed.
    pub synced: bool,
}

impl SegmentFile {
    /// Creates `media/<camera>/...` for a segment starting at `start_utc_ns` with `O_EXCL`, writes
    /// the init segment and the first fragment, syncs the file and its directory. If the name is
    /// taken (a clock stepped back), the start moves forward by 1 ms until a name is free.
    /// Returns the file and the start its name carries (UTC ns). On error nothing is left behind.
    pub fn create(
        root: &Path,
        camera: &str,
        start_utc_ns: i64,
        init: &[u8],
        first: &dyn Payload,
    ) -> Result<(SegmentFile, i64), StoreError> {
        let (mut file, abs, rel, start) = create_exclusive(root, camera, start_utc_ns)?;
        let written = file
            .write_all(init)
            .and_then(|_| first.write_to(&mut file))
            .and_then(|_| sync_data(&file));
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(&abs);
            return Err(io_at(&abs)(e));
        }
        let dir = abs.parent().expect("segment dir").to_owned();
        fsync_dir(&dir).map_err(io_at(&dir))?;
        let len = (init.len() + first.len()) as u64;
        Ok((
            SegmentFile {
                file,
                abs,
                rel,
                len,
                synced: true,
            },
            start,
        ))
    }

    /// Appends a fragment, then `fdatasync`s if `sync`. A partial write is cut off again, so
    /// the file ends on a fragment boundary whatever happens.
    pub fn append(&mut self, p: &dyn Payload, sync: bool) -> Result<(), StoreError> {
        let res =
            p.write_to(&mut self.file)
                .and_then(|_| if sync { sync_data(&self.file) } else { Ok(()) });
        if let Err(e) = res {
            let _ = self.file.set_len(self.len);
            let _ = io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.len));
            return Err(io_at(&self.abs)(e));
        }
        self.len += p.len() as u64;
        self.synced = sync;
        Ok(())
    }

    /// `fdatasync`s what was written.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if !self.synced {
            sync_data(&self.file).map_err(io_at(&self.abs))?;
            self.synced = true;
        }
        Ok(())
    }

    /// Syncs the file and its directory and returns its allocated bytes (at least its length
    /// rounded up to `block_size`); the row may be committed complete after this.
    pub fn finish(mut self, block_size: u64) -> Result<u64, StoreError> {
        self.sync()?;
        if let Some(d) = self.abs.parent() {
            fsync_dir(d).map_err(io_at(d))?;
        }
        let meta = self.file.metadata().map_err(io_at(&self.abs))?;
        Ok(allocated_bytes(&meta).max(round_up(meta.len(), block_size)))
    }
}

/// Creates a new segment file with `O_EXCL` (and its directories, made durable first).
/// Returns (file, abs, rel, start).
fn create_exclusive(
    root: &Path,
    camera: &str,
    mut start: i64,
) -> Result<(File, PathBuf, String, i64), StoreError> {
    for _ in 0..1000 {
        let rel = segment_rel_path(camera, start);
        let abs = root.join(&rel);
        let dir = abs.parent().expect("segment dir");
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
            // Make the new directories durable before the file inside them.
            let media = root.join(layout::MEDIA_DIR);
            let mut d = dir.to_path_buf();
            while d.starts_with(&media) {
                if let Some(p) = d.parent() {
                    fsync_dir(p).map_err(io_at(p))?;
                    d = p.to_path_buf();
                } else {
                    break;
                }
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::fcntl::OFlag::O_CLOEXEC.bits())
            .open(&abs)
        {
            Ok(f) => return Ok((f, abs, rel, start)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => start += 1_000_000,
            Err(e) => return Err(io_at(&abs)(e)),
        }
    }
    Err(StoreError::Io {
        path: root.join(segment_rel_path(camera, start)),
        source: io::Error::new(io::ErrorKind::AlreadyExists, "no free segment name"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_append_finish_and_a_taken_name_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let t = 1_576_900_868_123_000_000i64;
        let (mut f, start) =
            SegmentFile::create(dir.path(), "cam", t, b"INIT", &b"frag1".to_vec()).unwrap();
        assert_eq!(start, t);
        assert_eq!(f.rel, "media/cam/2019/12/21/20191221T040108.123Z.mp4");
        f.append(&b"frag2".to_vec(), false).unwrap();
        assert!(!f.synced);
        let abs = f.abs.clone();
        assert!(f.finish(4096).unwrap() >= 4096);
        assert_eq!(std::fs::read(abs).unwrap(), b"INITfrag1frag2");
        let (g, start2) = SegmentFile::create(dir.path(), "cam", t, b"I", &b"f".to_vec()).unwrap();
        assert_eq!(start2, t + 1_000_000);
        assert!(g.rel.ends_with("20191221T040108.124Z.mp4"));
    }
}
