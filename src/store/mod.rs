//! The segment store: the card's media tree plus its index, kept consistent (DESIGN sections 4, 5).
//!
//! [`Store`] owns the writer's index connection and does every change to files and rows in the
//! crash-safe order: creating ([`writer`]), deleting ([`Store::delete_segments`]), recovering after
//! a crash ([`recover`]) and checking ([`fsck`]). The GStreamer side never touches the card.

pub mod chores;
pub mod clips;
pub mod fsck;
pub mod fsutil;
pub mod layout;
pub mod live;
pub mod reclaim;
pub mod recover;
pub mod segfile;
pub mod segmenter;
pub mod stats;
pub mod timebase;
pub mod writer;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::index::{Index, IndexError, SegmentRow};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Index error.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The index file cannot be opened or migrated.
    #[error(
        "cannot open the index {path} (if it is damaged, move it aside and run \
         `edgerec fsck --rebuild` to recreate it from the media files)"
    )]
    IndexOpen {
        /// The index file.
        path: PathBuf,
        /// The error.
        #[source]
        source: IndexError,
    },
    /// File-system error, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Attaches a path to an I/O error.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What one deletion removed, for logs and events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Segments removed.
    pub segments: u64,
    /// Allocated bytes freed.
    pub alloc_bytes: u64,
    /// Media duration removed, ns.
    pub duration_ns: u64,
    /// Segments removed that had not been uploaded.
    pub not_uploaded: u64,
}

/// The media tree and its index.
pub struct Store {
    root: PathBuf,
    index: Index,
}

impl Store {
    /// Opens the store at `root` with its index at `index_path`, creating both if needed.
    pub fn open(root: &Path, index_path: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root.join(layout::MEDIA_DIR)).map_err(io_at(root))?;
        if let Some(p) = index_path.parent() {
            std::fs::create_dir_all(p).map_err(io_at(p))?;
        }
        let index = Index::open(index_path).map_err(|e| StoreError::IndexOpen {
            path: index_path.to_owned(),
            source: e,
        })?;
        Ok(Store {
            root: root.to_owned(),
            index,
        })
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The index (writer connection).
    pub fn index(&mut self) -> &mut Index {
        &mut self.index
    }

    /// Absolute path of a row's file.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Deletes segments in the crash-safe order (DESIGN section 4, invariant 4): mark the rows
    /// `deleting` in one transaction, unlink the files, `fsync` their directories, drop the rows
    /// in one transaction. A file that is already gone is not an error.
    pub fn delete_segments(&mut self, victims: &[SegmentRow]) -> Result<Deleted, StoreError> {
        let mut out = Deleted::default();
        if victims.is_empty() {
            return Ok(out);
        }
        let ids: Vec<i64> = victims.iter().map(|s| s.id).collect();
        self.index.mark_deleting(&ids)?;
        let mut dirs = BTreeSet::new();
        for s in victims {
            let p = self.abs(&s.path);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&p)(e)),
            }
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
            out.segments += 1;
            out.alloc_bytes += s.alloc_bytes.max(0) as u64;
            out.duration_ns += s.duration_ns.max(0) as u64;
            if s.uploaded_utc_ns.is_none() {
                out.not_uploaded += 1;
            }
        }
        for d in &dirs {
            if d.exists() {
                fsutil::fsync_dir(d).map_err(io_at(d))?;
            }
        }
        self.index.delete_rows(&ids)?;
        let media = self.root.join(layout::MEDIA_DIR);
        for d in &dirs {
            fsutil::remove_empty_dirs(d, &media);
        }
        Ok(out)
    }

    /// Allocated bytes of the index files (main file, WAL and shared memory).
    pub fn index_bytes(index_path: &Path) -> u64 {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = index_path.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(PathBuf::from(p)) {
                total += fsutil::allocated_bytes(&m);
            }
        }
        total
    }
}
