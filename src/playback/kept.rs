//! What playback shows of an EVR camera (DESIGN section 9): only the media its clips keep.
//! availableMedia and VoD manifests of an EVR camera are cut to the clips' media, fragment-exact
//! ([`crate::evr::clip`]), so the gaps between clips are gaps; the live manifest is not cut (an
//! operator's live view shows the live edge whatever the gate says). CVR cameras do not come
//! here.

use super::catalog::Recordings;
use super::ApiError;
use crate::evr::clip::{covered, extent};
use crate::index::{ClipRow, SegmentRow};

/// The media windows `[start, end)` (UTC ns) that `clips` keep in `segs` (one camera's segments
/// by start), sorted, with overlapping or touching windows merged.
pub fn windows(segs: &[SegmentRow], clips: &[ClipRow]) -> Vec<(i64, i64)> {
    let mut w: Vec<(i64, i64)> = clips
        .iter()
        .filter_map(|c| extent(&covered(segs, c.requested_start_utc_ns, c.end_utc_ns)))
        .collect();
    w.sort();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(w.len());
    for (a, b) in w {
        match out.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The kept windows of `camera` that overlap `[from, to)`, read from the catalog.
pub fn windows_between(
    cat: &dyn Recordings,
    camera: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, i64)>, ApiError> {
    let clips = cat.clips(camera, from, to)?;
    let (Some(lo), Some(hi)) = (
        clips.iter().map(|c| c.requested_start_utc_ns).min(),
        clips.iter().map(|c| c.end_utc_ns).max(),
    ) else {
        return Ok(Vec::new());
    };
    let segs = cat.segments(camera, lo, hi.saturating_add(1))?;
    Ok(windows(&segs, &clips))
}

/// `spans` (sorted, disjoint) cut to `windows` (sorted, disjoint).
pub fn intersect(spans: &[(i64, i64)], windows: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < spans.len() && j < windows.len() {
        let (a, b) = (spans[i].0.max(windows[j].0), spans[i].1.min(windows[j].1));
        if a < b {
            out.push((a, b));
        }
        if spans[i].1 < windows[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersect_cuts_spans_to_windows() {
        let spans = [(0, 10), (20, 40)];
        let w = [(5, 25), (30, 35), (38, 50)];
        assert_eq!(
            intersect(&spans, &w),
            [(5, 10), (20, 25), (30, 35), (38, 40)]
        );
        assert!(intersect(&spans, &[]).is_empty());
    }
}
