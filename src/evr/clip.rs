//! What media a clip covers, fragment-exact (DESIGN section 9: "clip starts are keyframe-exact:
//! the clip begins with the fragment that contains its requested start"; ends at most one GOP
//! past the requested end). Pure: segment rows in, fragment spans out.
//!
//! A fragment starts at a keyframe (ISO/IEC 14496-12 `moof` + `mdat`), so a clip cut on
//! fragment boundaries plays from its first frame. Fragment `i` of a segment starts at the
//! segment's start plus the durations of fragments `0..i` (one continuous timeline inside a
//! segment) and sits at byte offset `init_size_bytes` plus their sizes.
//!
//! Also here: the JSON of a clip's event, one shape for the clips API and the uploaded clip
//! descriptions.

use crate::index::{ClipEvent, SegmentRow};
use crate::playback::time::format_full;

/// The fragments of one segment that a clip covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentSpan {
    /// Segment row id.
    pub segment_id: i64,
    /// First covered fragment (index into the segment's fragment list).
    pub first: usize,
    /// One past the last covered fragment.
    pub end: usize,
    /// Start of the first covered fragment, UTC ns.
    pub start_utc_ns: i64,
    /// End of the last covered fragment, UTC ns.
    pub end_utc_ns: i64,
    /// Byte offset of the first covered fragment in the segment file.
    pub byte_start: u64,
    /// Byte offset just past the last covered fragment.
    pub byte_end: u64,
}

/// The fragments of `segments` (one camera's, by start) that overlap `[from_utc_ns, to_utc_ns)`:
/// the one holding `from` (or the first after it, when there was no media then) through the one
/// holding the instant before `to`. One span per segment that has any.
pub fn covered(segments: &[SegmentRow], from_utc_ns: i64, to_utc_ns: i64) -> Vec<FragmentSpan> {
    let mut out = Vec::new();
    for s in segments {
        let mut t = s.start_utc_ns;
        let mut off = s.init_size_bytes.max(0) as u64;
        let mut span: Option<FragmentSpan> = None;
        for (i, f) in s.fragments.iter().enumerate() {
            let dur = i64::from(f.duration_us) * 1000;
            let (fs, fe) = (t, t + dur);
            let (bs, be) = (off, off + u64::from(f.size_bytes));
            t = fe;
            off = be;
            if fe <= from_utc_ns || fs >= to_utc_ns {
                if fs >= to_utc_ns {
                    break;
                }
                continue;
            }
            match &mut span {
                None => {
                    span = Some(FragmentSpan {
                        segment_id: s.id,
                        first: i,
                        end: i + 1,
                        start_utc_ns: fs,
                        end_utc_ns: fe,
                        byte_start: bs,
                        byte_end: be,
                    })
                }
                Some(sp) => {
                    sp.end = i + 1;
                    sp.end_utc_ns = fe;
                    sp.byte_end = be;
                }
            }
        }
        out.extend(span);
    }
    out
}

/// The achieved media extent of a clip: start of its first covered fragment and end of its last
/// (UTC ns), or `None` if no media lies in the window.
pub fn extent(spans: &[FragmentSpan]) -> Option<(i64, i64)> {
    Some((spans.first()?.start_utc_ns, spans.last()?.end_utc_ns))
}

/// An event of a clip as the clips API and the description objects show it:
/// `{"id", "label", "time" (UTC, ms), "objects"}`.
pub fn event_json(e: &ClipEvent) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "label": e.label,
        "time": format_full(e.time_utc_ns),
        "objects": e.objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FragmentEntry;

    const S: i64 = 1_000_000_000;

    /// A segment with fragments of the given durations (ms), 10 bytes each after a 100-byte
    /// init segment.
    fn seg(id: i64, start_s: i64, frags_ms: &[u32]) -> SegmentRow {
        SegmentRow {
            duration_ns: frags_ms.iter().map(|&m| i64::from(m) * 1_000_000).sum(),
            fragments: frags_ms
                .iter()
                .map(|&m| FragmentEntry {
                    size_bytes: 10,
                    duration_us: m * 1000,
                })
                .collect(),
            ..crate::playback::timeline::tests::seg(id, 1, start_s * S, 0, 1)
        }
    }

    #[test]
    fn starts_with_the_fragment_holding_the_requested_start_and_ends_within_one_gop() {
        // Irregular GOPs: 0-2 s, 2-2.5 s, 2.5-6 s | 6-7 s, 7-10 s.
        let segs = [seg(1, 0, &[2000, 500, 3500]), seg(2, 6, &[1000, 3000])];
        let c = covered(&segs, 2_600_000_000, 7 * S + 1);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].first, c[0].end), (2, 3));
        assert_eq!((c[0].byte_start, c[0].byte_end), (120, 130));
        assert_eq!((c[1].first, c[1].end), (0, 2));
        assert_eq!(extent(&c), Some((2_500_000_000, 10 * S)));
        // An end exactly on a fragment boundary takes nothing past it.
        let c = covered(&segs, 0, 6 * S);
        assert_eq!(c.len(), 1);
        assert_eq!(extent(&c), Some((0, 6 * S)));
    }

    #[test]
    fn no_media_at_the_requested_start_starts_at_the_first_fragment_after_it() {
        let segs = [seg(1, 10, &[1000, 1000])];
        assert_eq!(extent(&covered(&segs, 0, 11 * S)), Some((10 * S, 11 * S)));
        assert!(covered(&segs, 0, 10 * S).is_empty());
        assert!(covered(&segs, 12 * S, 20 * S).is_empty());
    }
}
