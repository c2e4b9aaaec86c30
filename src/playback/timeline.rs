//! The media timeline of one camera: continuous spans, and the fragments of a time range grouped
//! into periods.
//!
//! The gap rule (seed `004_*`: "every discontinuity in the timeline is a gap") is
//! [`crate::index::continuous`]: same run, same codec and init segment, a hole of at most
//! [`crate::index::GAP_TOLERANCE_NS`]. The index stores its result per segment (`disc_start`), so
//! these functions follow that flag; [`periods`] checks the rule again between the rows it is given.
//! A new run (reconnect, restart, clock step, dropped fragment) is always a discontinuity. Inside
//! a segment the fragments are continuous. Input segments must be one camera's, sorted by start;
//! selecting them is [`super::catalog`]'s job.

use crate::index::{continuous, SegmentRow};

/// Continuous spans `[start, end]` (UTC ns) of `segs`, clipped to `[from, to]`; empty spans
/// after clipping are dropped. `segs` may leave out segments inside a span
/// ([`crate::index::Index::span_bounds`]): a new span starts only at the first row and at rows
/// with `disc_start`.
pub fn spans(segs: &[SegmentRow], from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut prev: Option<&SegmentRow> = None;
    for s in segs {
        let (a, b) = (s.start_utc_ns, s.end_utc_ns());
        match (prev, out.last_mut()) {
            (Some(_), Some(last)) if !s.disc_start => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
        prev = Some(s);
    }
    out.into_iter()
        .filter_map(|(a, b)| {
            let (a, b) = (a.max(from), b.min(to));
            (a < b).then_some((a, b))
        })
        .collect()
}

/// One fragment selected for a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frag {
    /// Index of its segment in the period's `segments`.
    pub seg: usize,
    /// Byte offset in the segment file.
    pub offset: u64,
    /// Bytes (`moof` through `mdat`).
    pub size: u64,
    /// Wall-clock start, UTC ns.
    pub start_ns: i64,
    /// Duration, ns.
    pub duration_ns: i64,
    /// `tfdt` in the period's timescale ticks.
    pub decode_time: u64,
    /// Duration in timescale ticks.
    pub duration_ticks: u64,
    /// HLS media sequence number.
    pub media_seq: i64,
}

/// A continuous stretch of fragments (one run, one init segment): a DASH Period, or the HLS
/// segments between two `EXT-X-DISCONTINUITY` tags.
#[derive(Debug, Clone)]
pub struct Period {
    /// Segment rows the fragments come from (the first holds the init segment used).
    pub segments: Vec<SegmentRow>,
    /// The fragments, in order.
    pub frags: Vec<Frag>,
    /// The discontinuity sequence number of the first segment.
    pub disc_seq: i64,
}

impl Period {
    /// Wall-clock start of the first fragment, UTC ns.
    pub fn start_ns(&self) -> i64 {
        self.frags.first().map_or(0, |f| f.start_ns)
    }
    /// Wall-clock end of the last fragment, UTC ns.
    pub fn end_ns(&self) -> i64 {
        self.frags.last().map_or(0, |f| f.start_ns + f.duration_ns)
    }
    /// Media duration, ns.
    pub fn duration_ns(&self) -> i64 {
        self.frags.iter().map(|f| f.duration_ns).sum()
    }
    /// The media timescale (ticks per second).
    pub fn timescale(&self) -> u32 {
        self.segments.first().map_or(0, |s| s.timescale).max(1)
    }
}

/// Microseconds to ticks, rounded to the nearest tick (exact for timescales up to 1 MHz, since
/// the stored microseconds are the tick duration truncated).
fn us_to_ticks(us: u32, timescale: u32) -> u64 {
    (u64::from(us) * u64::from(timescale) + 500_000) / 1_000_000
}

/// The fragments of `segs` that overlap `[from, to)` (a fragment that starts at `to` is not
/// included), grouped into periods at every discontinuity.
pub fn periods(segs: &[SegmentRow], from: i64, to: i64) -> Vec<Period> {
    let mut out: Vec<Period> = Vec::new();
    let mut prev: Option<&SegmentRow> = None;
    for s in segs {
        let ts = s.timescale.max(1);
        let mut offset = s.init_size_bytes as u64;
        let mut t = s.start_utc_ns;
        let mut dts = s.decode_time;
        let mut picked = Vec::new();
        for (i, f) in s.fragments.iter().enumerate() {
            let d_ns = i64::from(f.duration_us) * 1000;
            let ticks = us_to_ticks(f.duration_us, ts);
            if t + d_ns > from && t < to {
                picked.push(Frag {
                    seg: 0,
                    offset,
                    size: u64::from(f.size_bytes),
                    start_ns: t,
                    duration_ns: d_ns,
                    decode_time: dts,
                    duration_ticks: ticks,
                    media_seq: s.media_seq + i as i64,
                });
            }
            offset += u64::from(f.size_bytes);
            t += d_ns;
            dts += ticks;
        }
        if picked.is_empty() {
            continue;
        }
        let joins = matches!((prev, out.last()), (Some(p), Some(last))
            if !s.disc_start && continuous(p, s) && last.segments.last().is_some_and(|l| l.id == p.id));
        if !joins {
            out.push(Period {
                segments: Vec::new(),
                frags: Vec::new(),
                disc_seq: s.disc_seq,
            });
        }
        let period = out.last_mut().expect("period");
        let seg_index = period.segments.len();
        period.segments.push(s.clone());
        period.frags.extend(picked.into_iter().map(|f| Frag {
            seg: seg_index,
            ..f
        }));
        prev = Some(s);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::index::{FragmentEntry, SegmentState};

    /// A complete segment of `n` fragments of `frag_s` seconds each (timescale 90 kHz, 1000 bytes
    /// per fragment, init 100 bytes).
    pub fn seg(id: i64, run: i64, start_ns: i64, n: usize, frag_s: u32) -> SegmentRow {
        SegmentRow {
            id,
            camera: "cam".into(),
            run_id: run,
            start_utc_ns: start_ns,
            duration_ns: n as i64 * i64::from(frag_s) * 1_000_000_000,
            size_bytes: 100 + 1000 * n as i64,
            alloc_bytes: 0,
            init_size_bytes: 100,
            fragments: vec![
                FragmentEntry {
                    size_bytes: 1000,
                    duration_us: frag_s * 1_000_000,
                };
                n
            ],
            codec: "avc1".into(),
            audio_codec: None,
            path: format!("media/cam/{id}.mp4"),
            state: SegmentState::Complete,
            uploaded_utc_ns: None,
            timescale: 90_000,
            decode_time: 0,
            media_seq: 0,
            disc_seq: 0,
            disc_start: false,
        }
    }

    /// Sets `disc_start` the way the index does on insert.
    pub fn mark(mut v: Vec<SegmentRow>) -> Vec<SegmentRow> {
        for i in 0..v.len() {
            v[i].disc_start = i == 0 || !continuous(&v[i - 1], &v[i]);
        }
        v
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn gap_rule() {
        let a = seg(1, 1, 0, 15, 2);
        let b = seg(2, 1, 30 * S + 50_000_000, 15, 2); // 50 ms hole: continuous
        let c = seg(3, 1, 60 * S + 150_000_000, 15, 2); // 100 ms hole after b: gap
        let d = seg(4, 2, c.end_utc_ns(), 15, 2); // new run, no hole: gap
        let all = mark(vec![a.clone(), b.clone(), c.clone(), d.clone()]);
        assert_eq!(
            all.iter().map(|r| r.disc_start).collect::<Vec<_>>(),
            [true, false, true, true]
        );
        // Rows inside a span may be left out (Index::span_bounds): the same spans.
        let e = seg(5, 2, d.end_utc_ns(), 15, 2);
        let f = seg(6, 2, e.end_utc_ns(), 15, 2);
        let long = mark(vec![a.clone(), b.clone(), c.clone(), d.clone(), e, f]);
        let bounds: Vec<SegmentRow> = long.iter().filter(|r| r.id != 5).cloned().collect();
        assert_eq!(spans(&long, 0, 1000 * S), spans(&bounds, 0, 1000 * S));
        assert_eq!(
            spans(&bounds, 0, 1000 * S).last().unwrap().1,
            180 * S + 150_000_000
        );
        let (a, b, c, d) = (
            all[0].clone(),
            all[1].clone(),
            all[2].clone(),
            all[3].clone(),
        );
        assert_eq!(
            spans(&[a.clone(), b.clone(), c.clone(), d.clone()], 0, 1000 * S),
            vec![
                (0, 60 * S + 50_000_000),
                (60 * S + 150_000_000, 90 * S + 150_000_000),
                (90 * S + 150_000_000, 120 * S + 150_000_000)
            ]
        );
        assert_eq!(
            spans(std::slice::from_ref(&a), 10 * S, 20 * S),
            vec![(10 * S, 20 * S)]
        );
        let mut b = b;
        b.decode_time = 30 * 90_000;
        let p = periods(&[a, b, c, d], 29 * S, 64 * S);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].frags.len(), 1 + 15);
        assert_eq!(p[0].frags[0].start_ns, 28 * S);
        assert_eq!(p[0].frags[0].offset, 100 + 14 * 1000);
        assert_eq!(p[0].frags[0].decode_time, 28 * 90_000);
        assert_eq!(p[0].frags[1].decode_time, 30 * 90_000);
        assert_eq!(p[0].frags[1].seg, 1);
        assert_eq!(
            p[1].frags.len(),
            2,
            "60.15..62.15 and 62.15..64.15 overlap [29, 64)"
        );
    }
}
