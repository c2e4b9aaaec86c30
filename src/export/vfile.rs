//! The exported MP4 as a virtual file: the bytes `builder.rs` wrote (`ftyp`, `moov`, the `mdat`
//! header) followed by byte ranges of segment files that were opened when the export was
//! planned. Any byte range of it can be read at any time, so HTTP can answer `Range` requests
//! and stream a download in bounded memory, and an eviction that deletes a segment file during
//! the download changes nothing (the open descriptor keeps the data). No HTTP here.

use std::sync::Arc;

use super::builder::Layout;
use crate::store::timebase::ReadAt;

/// One piece of the virtual file, at `at` bytes from its start.
#[derive(Debug)]
enum Piece {
    Head,
    File {
        file: Arc<dyn ReadAt>,
        offset: u64,
        len: u64,
    },
}

/// A readable exported file. Cheap to share (`Arc` it).
#[derive(Debug)]
pub struct VirtualFile {
    head: Vec<u8>,
    pieces: Vec<(u64, Piece)>,
    len: u64,
}

impl VirtualFile {
    /// Joins `layout` with the source files it names (opened by the caller, in the layout's
    /// file index order).
    ///
    /// Errors: the layout names a file index that `files` lacks.
    pub fn new(layout: Layout, files: &[Arc<dyn ReadAt>]) -> std::io::Result<VirtualFile> {
        let mut pieces = vec![(0, Piece::Head)];
        let mut at = layout.head.len() as u64;
        for r in &layout.body {
            let file = files.get(r.file).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "export: file index")
            })?;
            pieces.push((
                at,
                Piece::File {
                    file,
                    offset: r.offset,
                    len: r.len,
                },
            ));
            at += r.len;
        }
        Ok(VirtualFile {
            head: layout.head,
            pieces,
            len: at,
        })
    }

    /// Total length, bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes (never, for a built layout).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `out` with the bytes at `start..start + out.len()`.
    ///
    /// Errors: the range ends past [`Self::len`] (`InvalidInput`), or a source file is shorter
    /// than planned or unreadable (the I/O error).
    pub fn read_at(&self, start: u64, out: &mut [u8]) -> std::io::Result<()> {
        let end = start + out.len() as u64;
        if end > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "export: read past the end",
            ));
        }
        // The last piece that starts at or before `start`.
        let mut i = self.pieces.partition_point(|(at, _)| *at <= start) - 1;
        let mut pos = start;
        while pos < end {
            let (at, piece) = &self.pieces[i];
            let piece_len = match piece {
                Piece::Head => self.head.len() as u64,
                Piece::File { len, .. } => *len,
            };
            let from = pos - at;
            let n = (piece_len - from).min(end - pos) as usize;
            let dst = &mut out[(pos - start) as usize..(pos - start) as usize + n];
            match piece {
                Piece::Head => dst.copy_from_slice(&self.head[from as usize..from as usize + n]),
                Piece::File { file, offset, .. } => file.read_exact_at(dst, offset + from)?,
            }
            pos += n as u64;
            i += 1;
        }
        Ok(())
    }
}
