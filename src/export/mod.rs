//! MP4 export (issue "Watch and take away"): any time range of one camera as one ordinary,
//! non-fragmented MP4 (`moov` before `mdat`) that plays and seeks everywhere. The file is never
//! staged: [`open`] reads only the init segments and each fragment's `moof`, writes the `moov`
//! (`builder.rs`, pure), opens the segment files, and returns a [`VirtualFile`] whose bytes are
//! read on demand (`vfile.rs`). Sample tables come from our own fragments (`samples.rs`).
//!
//! Cuts are fragment-exact, as for EVR clips ([`crate::evr::clip::covered`]): the export starts
//! with the fragment holding the requested start (fragments start on key frames, so the first
//! frame decodes) and ends with the one holding the instant before the requested end. Gaps
//! (between runs, or after an eviction) are closed up; each continuous span becomes a chapter
//! titled with its UTC start, and `mvhd`'s creation time is the first frame's UTC second.
//! The HTTP routes are not here.

pub mod audio;
pub mod builder;
pub mod samples;
pub mod vfile;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

pub use builder::{BuildError, Layout, Span};
pub use vfile::VirtualFile;

use crate::index::SegmentRow;
use crate::store::timebase::ReadAt;

/// A planned export, ready to be read.
#[derive(Debug)]
pub struct Export {
    /// The file's bytes.
    pub file: VirtualFile,
    /// UTC of the first frame, ns since 1970 (the start of the fragment holding the requested
    /// start).
    pub start_utc_ns: i64,
    /// UTC just past the last frame, ns.
    pub end_utc_ns: i64,
    /// Media in the file, ns (the range minus its gaps).
    pub duration_ns: u64,
    /// Frames.
    pub samples: u64,
    /// One per continuous span: (ns from the file's start, UTC ns).
    pub chapters: Vec<(u64, i64)>,
    /// A strong validator of these bytes: segment ids, their sizes and the cut.
    pub etag: String,
}

/// Why an export could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No media of the camera lies in the range.
    #[error("no media in the range")]
    NoMedia,
    /// A segment file is missing or unreadable (evicted while planning, or damaged).
    #[error("segment {id} ({path}): {source}")]
    Io {
        /// Segment row id.
        id: i64,
        /// Path relative to the storage root.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A fragment's `moof` could not be read.
    #[error("segment {0}: fragment {1} has no readable moof")]
    BadFragment(i64, usize),
    /// The boxes could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Most bytes read to find a fragment's `moof` in one go; larger ones are read in a second read.
const HEADER_READ: usize = 64 * 1024;
/// A jump in UTC between consecutive fragments larger than this starts a new chapter, ns.
const GAP_NS: i64 = 100_000_000;

/// Plans the export of `segments` (one camera's, by start time, as the index lists them; paths
/// relative to `root`) cut to `[from_utc_ns, to_utc_ns)`. Opens every file it needs before it
/// returns, so a later eviction does not disturb reading.
///
/// Errors: [`ExportError`].
pub fn open(
    root: &Path,
    segments: &[SegmentRow],
    from_utc_ns: i64,
    to_utc_ns: i64,
) -> Result<Export, ExportError> {
    open_windows(root, segments, &[(from_utc_ns, to_utc_ns)])
}

/// Like [`open`], for several windows `[from, to)` (UTC ns, sorted, not overlapping): an EVR
/// camera's export holds only what its clips keep ([`crate::playback::kept::windows`]). Each
/// window's media becomes at least one chapter.
///
/// Errors: [`ExportError`]; `NoMedia` when no window holds media.
pub fn open_windows(
    root: &Path,
    segments: &[SegmentRow],
    windows: &[(i64, i64)],
) -> Result<Export, ExportError> {
    open_windows_with(segments, windows, &|seg| {
        let path = crate::store::layout::safe_join(root, &seg.path)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Ok(Arc::new(File::open(&path)?) as Arc<dyn ReadAt>)
    })
}

/// Like [`open_windows`], with the segments' bytes from `open` (the card's files, or uploaded
/// objects read with ranged GETs on the cloud side).
///
/// Errors: [`ExportError`].
pub fn open_windows_with(
    segments: &[SegmentRow],
    windows: &[(i64, i64)],
    open: &dyn Fn(&SegmentRow) -> std::io::Result<Arc<dyn ReadAt>>,
) -> Result<Export, ExportError> {
    let spans: Vec<_> = windows
        .iter()
        .flat_map(|&(a, b)| crate::evr::clip::covered(segments, a, b))
        .collect();
    let (start, end) = crate::evr::clip::extent(&spans).ok_or(ExportError::NoMedia)?;
    let mut files: Vec<Arc<dyn ReadAt>> = Vec::new();
    let mut inits: Vec<Vec<u8>> = Vec::new();
    // Per segment already opened (several windows may fall in one): (id, file, init, trex).
    let mut opened: Vec<(i64, usize, usize, Trexes)> = Vec::new();
    let mut out: Vec<Span> = Vec::new();
    let mut prev: Option<(i64, i64)> = None; // (run id, UTC end of the last fragment)
    let mut etag = String::new();
    for sp in &spans {
        let Some(seg) = segments.iter().find(|s| s.id == sp.segment_id) else {
            continue;
        };
        let (file_ix, init_ix, trex) = match opened.iter().find(|o| o.0 == seg.id) {
            Some(&(_, f, i, t)) => (f, i, t),
            None => {
                let io = |source| ExportError::Io {
                    id: seg.id,
                    path: seg.path.clone(),
                    source,
                };
                let f = open(seg).map_err(io)?;
                let mut init = vec![0u8; usize::try_from(seg.init_size_bytes).unwrap_or(0)];
                f.read_exact_at(&mut init, 0).map_err(io)?;
                let audio = crate::mp4::tracks(&init)
                    .into_iter()
                    .find(|t| t.kind == crate::mp4::TrackKind::Audio)
                    .map(|t| (t.id, samples::trex_defaults_of(&init, t.id)));
                let trex = Trexes {
                    video: samples::trex_defaults(&init),
                    audio,
                };
                let init_ix = match inits.iter().position(|i| *i == init) {
                    Some(i) => i,
                    None => {
                        inits.push(init);
                        inits.len() - 1
                    }
                };
                files.push(f);
                opened.push((seg.id, files.len() - 1, init_ix, trex));
                (files.len() - 1, init_ix, trex)
            }
        };
        etag += &format!("{}.{}.{}.{};", seg.id, seg.size_bytes, sp.first, sp.end);
        // `covered` gives the span's first fragment's start and offset; walk on from there.
        let (mut t, mut at) = (sp.start_utc_ns, sp.byte_start);
        for (i, fr) in seg.fragments.iter().enumerate().take(sp.end).skip(sp.first) {
            let (fs, fe) = (t, t + i64::from(fr.duration_us) * 1000);
            let (frag, audio) = read_fragment(&*files[file_ix], at, fr.size_bytes as usize, trex)
                .ok_or(ExportError::BadFragment(seg.id, i))?;
            (t, at) = (fe, at + u64::from(fr.size_bytes));
            let continues = prev.is_some_and(|(run, e)| run == seg.run_id && fs - e <= GAP_NS);
            if !continues {
                out.push(Span {
                    utc_start_ns: fs,
                    fragments: Vec::new(),
                });
            }
            if let Some(s) = out.last_mut() {
                s.fragments.push(builder::SourceFragment {
                    file: file_ix,
                    init: init_ix,
                    samples: frag,
                    audio,
                });
            }
            prev = Some((seg.run_id, fe));
        }
    }
    let layout = builder::build(&inits, &out)?;
    let duration_ns = crate::mp4::ticks_to_ns(layout.duration_ticks, layout.timescale);
    let (samples, chapters) = (layout.samples, layout.chapters.clone());
    let file = VirtualFile::new(layout, &files).map_err(|source| ExportError::Io {
        id: 0,
        path: String::new(),
        source,
    })?;
    Ok(Export {
        etag: format!("\"x{:016x}-{}\"", fnv1a(etag.as_bytes()), file.len()),
        file,
        start_utc_ns: start,
        end_utc_ns: end,
        duration_ns,
        samples,
        chapters,
    })
}

/// The `trex` defaults of a segment's video track, and its audio track's id and defaults.
#[derive(Debug, Clone, Copy)]
struct Trexes {
    video: samples::TrexDefaults,
    audio: Option<(u32, samples::TrexDefaults)>,
}

/// Reads the fragment of `size` bytes at `at` (prefix boxes, `moof`, `mdat`) far enough to
/// parse its `moof`: its video samples and, if it has them, its audio samples.
fn read_fragment(
    f: &dyn ReadAt,
    at: u64,
    size: usize,
    trex: Trexes,
) -> Option<(samples::FragmentSamples, Option<samples::FragmentSamples>)> {
    let parse = |moof: &[u8], offset: u64| {
        let video = samples::parse_fragment(moof, offset, trex.video)?;
        let audio = trex
            .audio
            .and_then(|(id, t)| samples::parse_track(moof, offset, t, Some(id)));
        Some((video, audio))
    };
    let mut buf = vec![0u8; size.min(HEADER_READ)];
    f.read_exact_at(&mut buf, at).ok()?;
    let mut pos = 0usize;
    loop {
        let hdr = buf.get(pos..pos + 8)?;
        let len = u32::from_be_bytes(hdr[..4].try_into().ok()?) as usize;
        if len < 8 {
            return None;
        }
        if &hdr[4..8] == b"moof" {
            if buf.len() < pos + len {
                let mut whole = vec![0u8; len];
                f.read_exact_at(&mut whole, at + pos as u64).ok()?;
                return parse(&whole, at + pos as u64);
            }
            return parse(&buf[pos..pos + len], at + pos as u64);
        }
        pos += len;
    }
}

/// FNV-1a, 64 bit: a stable digest for the ETag (not for security).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}
