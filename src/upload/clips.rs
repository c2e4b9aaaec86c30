//! What the uploader sends for clips (DESIGN section 9): an EVR camera's media goes up
//! fragment-exact, one object per piece of a segment that clips keep (the init segment followed
//! by the covered fragments, so each object plays on its own), never whole segments that a clip
//! merely touches; and every closed clip gets a JSON description object beside its media.
//!
//! Object keys (the layout of [`super::target::object_key`]):
//! - media piece: `<prefix>/<camera>/<YYYY>/<MM>/<DD>/<start>_<duration_ms>.mp4`, start and
//!   duration of the piece's first fragment and of the piece;
//! - description: `<prefix>/<camera>/<YYYY>/<MM>/<DD>/<requested start>_clip<id>.json`.
//!
//! When a piece is final: a segment of an EVR camera is uploaded only once no clip can still
//! change what it covers: it is complete, no open clip overlaps it, and it ended longer ago
//! than the camera's pre-roll horizon (`-activation_signal_offset +
//! activation_evaluation_window`), so no event that is not late can still reach back into it.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use object_store::path::Path as ObjectPath;

use crate::evr::clip::{covered, event_json, extent, FragmentSpan};
use crate::index::{ClipRow, Index, IndexError, SegmentRow};
use crate::playback::time::format_full;
use crate::store::layout::segment_stem;

/// The pieces of `seg` (an EVR camera's) that its clips keep, one object each: its fragments
/// in the segment file. `None` if it is not final yet
/// (see the module doc). `horizon_ns`: the camera's pre-roll horizon; `now_utc_ns`: wall clock.
///
/// Errors: the index cannot be read.
pub fn pieces(
    ix: &Index,
    seg: &SegmentRow,
    horizon_ns: i64,
    now_utc_ns: i64,
) -> Result<Option<Vec<FragmentSpan>>, IndexError> {
    if seg.end_utc_ns() > now_utc_ns - horizon_ns {
        return Ok(None);
    }
    let clips = ix.clips_overlapping(&seg.camera, seg.start_utc_ns, seg.end_utc_ns())?;
    if clips
        .iter()
        .any(|c| c.open && c.requested_start_utc_ns < seg.end_utc_ns())
    {
        return Ok(None);
    }
    let segs = std::slice::from_ref(seg);
    let windows = crate::playback::kept::windows(segs, &clips);
    Ok(Some(
        windows
            .into_iter()
            .flat_map(|(a, b)| covered(segs, a, b))
            .collect(),
    ))
}

/// Reads a piece: the segment's init segment followed by the piece's fragments.
///
/// Errors: the file cannot be read (gone: `NotFound`).
pub fn read_piece(path: &Path, seg: &SegmentRow, p: &FragmentSpan) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let init = seg.init_size_bytes.max(0) as usize;
    let len = (p.byte_end - p.byte_start) as usize;
    let mut out = vec![0u8; init + len];
    f.read_exact(&mut out[..init])?;
    f.seek(SeekFrom::Start(p.byte_start))?;
    f.read_exact(&mut out[init..])?;
    Ok(out)
}

fn dated(prefix: &str, camera: &str, start_utc_ns: i64, name: String) -> ObjectPath {
    ObjectPath::from(format!(
        "{}{name}",
        super::hour_index::day_folder(prefix, camera, start_utc_ns)
    ))
}

/// The object key of a media piece.
pub fn piece_key(prefix: &str, camera: &str, p: &FragmentSpan) -> ObjectPath {
    let (s, e) = (p.start_utc_ns, p.end_utc_ns);
    dated(
        prefix,
        camera,
        s,
        format!("{}_{}.mp4", segment_stem(s), (e - s) / 1_000_000),
    )
}

/// The object key of a clip's description.
pub fn clip_key(prefix: &str, c: &ClipRow) -> ObjectPath {
    dated(
        prefix,
        &c.camera,
        c.requested_start_utc_ns,
        format!(
            "{}_clip{}.json",
            segment_stem(c.requested_start_utc_ns),
            c.id
        ),
    )
}

/// A closed clip's description object: id, camera, requested and achieved start, end, what
/// closed it, and its events with their labels.
///
/// Errors: the index cannot be read.
pub fn describe(ix: &Index, c: &ClipRow) -> Result<serde_json::Value, IndexError> {
    let segs = ix.segments_overlapping(&c.camera, c.requested_start_utc_ns, c.end_utc_ns)?;
    let media = extent(&covered(&segs, c.requested_start_utc_ns, c.end_utc_ns));
    let events: Vec<_> = ix
        .clip_events(&[c.id])?
        .into_iter()
        .map(|e| event_json(&e))
        .collect();
    Ok(serde_json::json!({
        "id": c.id,
        "camera": c.camera,
        "requestedStart": format_full(c.requested_start_utc_ns),
        "requestedEnd": format_full(c.end_utc_ns),
        "start": media.map(|m| format_full(m.0)),
        "end": media.map(|m| format_full(m.1)),
        "firstEvent": format_full(c.first_event_utc_ns),
        "closedBy": c.close_reason,
        "events": events,
    }))
}
