//! The media time of a segment file: counted from the segment's start on the card, from 1970 in
//! playback.
//!
//! The muxer stamps every fragment's base media decode time (`tfdt`, ISO/IEC 14496-12 section
//! 8.8.12) on one timeline per camera that counts from 1970, so that HLS and DASH players see
//! media time go forward across segments and runs. A file with those times, opened alone, starts
//! 56 years in (issue 14). So the two are split:
//!
//! - **On the card (and in uploaded objects)** each file counts from its own first fragment: the
//!   first `tfdt` is 0, and a `prft` (section 8.16.5) media time moves with it. The storage writer
//!   rewrites these fields in place before the fragment's bytes reach the file ([`rebase`]): the
//!   muxer writes them as 64-bit (version 1) values, so the rewrite changes 8 bytes and no size.
//! - **In the index** the segment's absolute base stays what it was (`segment.decode_time`, the
//!   muxer's first `tfdt`).
//! - **In playback** (`/media/<id>.mp4`) [`PlaybackView`] adds the base back to every `tfdt` and
//!   `prft` as it reads, so manifests and players see exactly what the muxer wrote.
//!
//! Files written before this rule have an absolute first `tfdt` (never 0): they are read as they
//! are (the view adds nothing, [`base_of_scan`] takes their `tfdt`). A file found without its row
//! (crash recovery, `fsck --rebuild`) gets its base from the segment before it when the two are
//! continuous, else from its start time (the file name) in timescale ticks, never before the
//! previous segment's end, so media time still only goes forward.
//!
//! Not here: scanning files ([`crate::mp4`]), HTTP ranges (`crate::http`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::index::{SegmentRow, GAP_TOLERANCE_NS};
use crate::mp4::{be32, be64, SegmentScan, TrackScales};

/// Bytes of a fragment's start read first to find its `tfdt` and `prft` (the first track's sit
/// within its first hundred bytes: `styp`, `prft`, `moof` > `mfhd`, `traf` > `tfhd`, `tfdt`);
/// a later track's `tfdt` follows the first track's `trun`, so a `moof` longer than this is
/// then read whole.
pub const HEADER_PROBE: usize = 512;

/// The longest fragment header (up to the end of its `moof`) the playback view patches, bytes.
/// A 10 s fragment of 60 fps video with B-frames and 48 kHz AAC has a `moof` of about 20 KiB.
pub const MAX_HEADER: usize = 256 * 1024;

/// Where a time field's value sits in a fragment header, bytes from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Offset of the value.
    pub at: usize,
    /// 8 bytes (version 1) rather than 4.
    pub wide: bool,
}

impl Field {
    fn len(self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }
    /// The value in `b` (the header it was found in), if its bytes are there.
    pub fn get(self, b: &[u8]) -> Option<u64> {
        if self.wide {
            be64(b, self.at)
        } else {
            be32(b, self.at).map(u64::from)
        }
    }
    /// The value's bytes for `v`; `None` if a 4-byte field cannot hold it.
    fn encode(self, v: u64) -> Option<Vec<u8>> {
        if self.wide {
            Some(v.to_be_bytes().to_vec())
        } else {
            u32::try_from(v).ok().map(|v| v.to_be_bytes().to_vec())
        }
    }
}

/// The time fields of one fragment header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeFields {
    /// The first `traf`'s `tfdt` base media decode time (the video track's).
    pub tfdt: Option<Field>,
    /// The `tfdt` of every later `traf` (the audio track's), with its `tfhd` track_ID.
    pub more: Vec<(u32, Field)>,
    /// The `prft` media time.
    pub prft: Option<Field>,
    /// Where the `moof` ends (declared), bytes from the fragment's start: the header is whole
    /// once this many bytes are held.
    pub moof_end: Option<usize>,
}

/// Boxes of `buf[from..to]`: (type, body start, declared end). The declared end may lie past
/// `to` (a header read only in part); walking stops at a box that starts past the bytes held.
fn boxes(buf: &[u8], from: usize, to: usize) -> impl Iterator<Item = ([u8; 4], usize, usize)> + '_ {
    let mut pos = from;
    std::iter::from_fn(move || {
        let size = be32(buf, pos)? as usize;
        let typ: [u8; 4] = buf.get(pos + 4..pos + 8)?.try_into().ok()?;
        let (hdr, size) = match size {
            1 => (16, usize::try_from(be64(buf, pos + 8)?).ok()?),
            0 => (8, to.checked_sub(pos)?),
            s => (8, s),
        };
        if pos >= to || size < hdr {
            return None;
        }
        let item = (typ, pos + hdr, pos + size);
        pos += size;
        Some(item)
    })
}

/// Finds the time fields in the start of a fragment (its boxes up to `moof`; `header` may be cut
/// anywhere: only fields whose bytes are all there count).
pub fn time_fields(header: &[u8]) -> TimeFields {
    let mut out = TimeFields::default();
    let end = header.len();
    let whole = |f: Field| (f.at + f.len() <= end).then_some(f);
    for (typ, body, box_end) in boxes(header, 0, end) {
        match &typ {
            b"prft" => {
                let wide = header.get(body) == Some(&1);
                out.prft = whole(Field {
                    at: body + 16, // version+flags, reference_track_ID, ntp_timestamp
                    wide,
                });
            }
            b"moof" => {
                out.moof_end = Some(box_end);
                let trafs = boxes(header, body, box_end.min(end)).filter(|b| &b.0 == b"traf");
                for (i, (_, tb, te)) in trafs.enumerate() {
                    let kids: Vec<_> = boxes(header, tb, te.min(end)).collect();
                    let Some(&(_, fb, _)) = kids.iter().find(|b| &b.0 == b"tfdt") else {
                        continue;
                    };
                    let wide = header.get(fb) == Some(&1);
                    let Some(f) = whole(Field { at: fb + 4, wide }) else {
                        continue;
                    };
                    if i == 0 {
                        out.tfdt = Some(f);
                    } else if let Some(id) = kids
                        .iter()
                        .find(|b| &b.0 == b"tfhd")
                        .and_then(|&(_, hb, _)| be32(header, hb + 4))
                    {
                        out.more.push((id, f));
                    }
                }
                break;
            }
            _ => {}
        }
    }
    out
}

/// Sets a fragment's first `tfdt` to `tfdt` and moves its `prft` media time, and every other
/// track's `tfdt` (converted to that track's timescale with `scales`), by the same time, in
/// place. Idempotent. Returns false (and changes nothing) if the header has no `tfdt` or a
/// 4-byte field cannot hold the new value. A track missing from `scales` is left alone; one
/// that would go below 0 stops at 0.
pub fn rebase(header: &mut [u8], tfdt: u64, scales: &TrackScales) -> bool {
    let f = time_fields(header);
    let Some(t) = f.tfdt else { return false };
    let Some(old) = t.get(header) else {
        return false;
    };
    let Some(new_t) = t.encode(tfdt) else {
        return false;
    };
    let shift = i128::from(tfdt) - i128::from(old);
    let moved = |p: Field, by: i128| {
        let v = p.get(header)?;
        let moved = (i128::from(v) + by).max(0);
        Some((p, p.encode(u64::try_from(moved).ok()?)?))
    };
    let mut edits = Vec::with_capacity(2 + f.more.len());
    if let Some(e) = f.prft.and_then(|p| moved(p, shift)) {
        edits.push(e);
    }
    for (id, field) in &f.more {
        let Some(ts) = scales.of(*id) else { continue };
        match moved(*field, scales.convert(shift, ts)) {
            Some(e) => edits.push(e),
            None => return false,
        }
    }
    header[t.at..t.at + t.len()].copy_from_slice(&new_t);
    for (p, bytes) in edits {
        header[p.at..p.at + p.len()].copy_from_slice(&bytes);
    }
    true
}

/// How far (first-track ticks, rounded up) a fragment's other tracks start before its first
/// track: the audio of a fragment may begin up to one audio frame before the video key frame
/// that opens it. A segment file's time then counts from that earlier start, so no `tfdt` of
/// the file falls below 0 (0 for a fragment of one track, or whose audio starts later).
pub fn lead_of_others(header: &[u8], scales: &TrackScales) -> u64 {
    let f = time_fields(header);
    let Some(first) = f.tfdt.and_then(|t| t.get(header)) else {
        return 0;
    };
    let mut lead = 0u64;
    for (id, field) in &f.more {
        let (Some(ts), Some(v)) = (scales.of(*id), field.get(header)) else {
            continue;
        };
        if ts == 0 || scales.first == 0 {
            continue;
        }
        // The other track's start in first-track ticks, rounded down.
        let at = (u128::from(v) * u128::from(scales.first) / u128::from(ts)) as u64;
        lead = lead.max(first.saturating_sub(at));
    }
    lead
}

/// A first `tfdt` below this many seconds of ticks marks a file that counts from its own start
/// (it is 0, or the few ms by which its audio starts before its video); one above counts from
/// 1970 (written before that rule).
pub const RELATIVE_BELOW_S: u64 = 1;

/// Ticks of a `timescale` clock in `ns` nanoseconds, rounded to the nearest tick.
pub fn ns_to_ticks(ns: i64, timescale: u32) -> u64 {
    let t = (i128::from(ns.max(0)) * i128::from(timescale) + 500_000_000) / 1_000_000_000;
    t as u64
}

/// The absolute base (`segment.decode_time`, timescale ticks) of a scanned file whose row is
/// being made or remade:
/// - a file with an absolute first `tfdt` (not 0; written before files counted from their own
///   start): that `tfdt`;
/// - else `known`, the base its row already had (a segment left open by a crash), if not 0;
/// - else, after `prev` (the camera's segment before it) and continuous with it (same timescale,
///   a hole of at most [`GAP_TOLERANCE_NS`]): `prev`'s base plus its duration;
/// - else its start time in ticks since 1970 (as the muxer's own clock), but not before `prev`'s
///   end.
pub fn base_of_scan(
    scan: &SegmentScan,
    known: u64,
    start_utc_ns: i64,
    prev: Option<&SegmentRow>,
) -> u64 {
    if let Some(t) = scan.fragments.first().map(|f| f.decode_time) {
        if t >= RELATIVE_BELOW_S * u64::from(scan.timescale.max(1)) {
            return t;
        }
    }
    if known != 0 {
        return known;
    }
    let ts = scan.timescale;
    let prev = prev.filter(|p| p.timescale == ts && p.decode_time != 0);
    let prev_end = prev.map(|p| p.decode_time + ns_to_ticks(p.duration_ns, ts));
    if let (Some(p), Some(end)) = (prev, prev_end) {
        if (start_utc_ns - p.end_utc_ns()).abs() <= GAP_TOLERANCE_NS {
            return end;
        }
    }
    ns_to_ticks(start_utc_ns, ts).max(prev_end.unwrap_or(0))
}

/// Bytes that can be read at any offset from any thread: a segment file on the card, or an
/// uploaded object read with ranged GETs (the cloud side).
pub trait ReadAt: Send + Sync + std::fmt::Debug {
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`. Errors: I/O, or past the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

/// A segment file as playback serves it: its bytes, with the segment's absolute base added to
/// every fragment's `tfdt` (each track's in its own timescale) and `prft` (see the module docs).
/// Holds the file open, so an eviction during a download changes nothing. Cheap to share (`Arc`
/// it).
#[derive(Debug)]
pub struct PlaybackView {
    file: Arc<dyn ReadAt>,
    len: u64,
    delta: u64,
    scales: TrackScales,
    fragments: Vec<u64>,
}

impl PlaybackView {
    /// Opens `path` as the file of `row`: its length is the row's (complete fragments only, for
    /// a segment still being written), its fragments where the row's sizes put them.
    ///
    /// Errors: the file cannot be opened or read (gone: evicted).
    pub fn open(path: &std::path::Path, row: &SegmentRow) -> std::io::Result<PlaybackView> {
        Self::over(Arc::new(File::open(path)?), row)
    }

    /// [`Self::open`] over bytes from elsewhere (an uploaded object). Errors: a read fails.
    pub fn over(file: Arc<dyn ReadAt>, row: &SegmentRow) -> std::io::Result<PlaybackView> {
        let mut fragments = Vec::with_capacity(row.fragments.len());
        let mut at = row.init_size_bytes as u64;
        for f in &row.fragments {
            fragments.push(at);
            at += u64::from(f.size_bytes);
        }
        let len = (row.size_bytes as u64).max(row.init_size_bytes as u64);
        let mut v = PlaybackView {
            file,
            len,
            delta: 0,
            scales: TrackScales::default(),
            fragments,
        };
        if let Some(&first) = v.fragments.first() {
            let h = v.header(first)?;
            let t0 = time_fields(&h).tfdt.and_then(|t| t.get(&h));
            // A file from before the rule carries absolute times already: nothing to add. A
            // file whose audio starts before its video counts from the audio: its first video
            // `tfdt` is that lead, and the segment's base is the video's.
            let relative_below = RELATIVE_BELOW_S * u64::from(row.timescale.max(1));
            if let Some(t0) = t0.filter(|t| *t < relative_below) {
                v.delta = row.decode_time.saturating_sub(t0);
                let mut init = vec![0u8; (row.init_size_bytes.max(0) as u64).min(len) as usize];
                v.file.read_exact_at(&mut init, 0)?;
                v.scales = TrackScales::of_init(&init);
            }
        }
        Ok(v)
    }

    /// Total length, bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ticks added to each fragment's `tfdt` (0 for a file that is served as it is).
    pub fn delta(&self) -> u64 {
        self.delta
    }

    /// The fragment header at `at`: its first [`HEADER_PROBE`] bytes, or up to the end of its
    /// `moof` when that is longer (at most [`MAX_HEADER`]).
    fn header(&self, at: u64) -> std::io::Result<Vec<u8>> {
        let left = self.len.saturating_sub(at);
        let n = (HEADER_PROBE as u64).min(left) as usize;
        let mut h = vec![0u8; n];
        self.file.read_exact_at(&mut h, at)?;
        if let Some(end) = time_fields(&h).moof_end.filter(|e| *e > n) {
            let n = (end.min(MAX_HEADER) as u64).min(left) as usize;
            h.resize(n, 0);
            self.file.read_exact_at(&mut h, at)?;
        }
        Ok(h)
    }

    /// Fills `out` with the bytes at `start..start + out.len()`.
    ///
    /// Errors: the range ends past [`Self::len`] (`InvalidInput`), or the file is shorter than
    /// its row says or unreadable.
    pub fn read_at(&self, start: u64, out: &mut [u8]) -> std::io::Result<()> {
        let end = start + out.len() as u64;
        if end > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "segment: read past the end",
            ));
        }
        self.file.read_exact_at(out, start)?;
        if self.delta == 0 {
            return Ok(());
        }
        let max = MAX_HEADER as u64;
        let first = self.fragments.partition_point(|&f| f + max <= start);
        for &f in self.fragments[first..].iter().take_while(|&&f| f < end) {
            // The header from the bytes read when they hold all of it, else from the file.
            let held = (f >= start).then(|| &out[(f - start) as usize..]);
            let h = match held {
                Some(b) if time_fields(b).moof_end.is_some_and(|e| e <= b.len()) => {
                    let e = time_fields(b).moof_end.expect("checked");
                    b[..e].to_vec()
                }
                _ => self.header(f)?,
            };
            if f + h.len() as u64 <= start {
                continue;
            }
            let mut patched = h.clone();
            let Some(t) = time_fields(&h).tfdt.and_then(|t| t.get(&h)) else {
                continue;
            };
            if !rebase(&mut patched, t + self.delta, &self.scales) {
                continue;
            }
            // Copy the changed bytes that fall inside the range.
            for (i, (a, b)) in h.iter().zip(&patched).enumerate() {
                let pos = f + i as u64;
                if a != b && pos >= start && pos < end {
                    out[(pos - start) as usize] = *b;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::builder::bx;

    fn full(version: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![version, 0, 0, 0];
        v.extend_from_slice(rest);
        v
    }

    /// `styp`, `prft` (v1), `moof` > `mfhd`, `traf` > `tfhd`, `tfdt` (v1), `trun`, then `mdat`.
    fn fragment(tfdt: u64, prft_media: u64) -> Vec<u8> {
        let mut prft = 1u32.to_be_bytes().to_vec();
        prft.extend_from_slice(&0xE000_0000_0000_0000u64.to_be_bytes());
        prft.extend_from_slice(&prft_media.to_be_bytes());
        let traf = [
            bx(b"tfhd", &full(0, &1u32.to_be_bytes())),
            bx(b"tfdt", &full(1, &tfdt.to_be_bytes())),
            bx(b"trun", &full(0, &0u32.to_be_bytes())),
        ]
        .concat();
        let moof = [
            bx(b"mfhd", &full(0, &1u32.to_be_bytes())),
            bx(b"traf", &traf),
        ]
        .concat();
        [
            bx(b"styp", b"msdh\0\0\0\0"),
            bx(b"prft", &full(1, &prft)),
            bx(b"moof", &moof),
            bx(b"mdat", &[7u8; 40]),
        ]
        .concat()
    }

    #[test]
    fn rebase_moves_tfdt_and_prft_together_and_is_idempotent() {
        let base = 160_000_000_000_000u64;
        let mut f = fragment(base + 9000, base + 9100);
        let fields = time_fields(&f);
        assert_eq!(fields.tfdt.unwrap().get(&f), Some(base + 9000));
        assert!(rebase(&mut f, 9000, &TrackScales::default()));
        assert!(rebase(&mut f, 9000, &TrackScales::default()));
        let fields = time_fields(&f);
        assert_eq!(fields.tfdt.unwrap().get(&f), Some(9000));
        assert_eq!(fields.prft.unwrap().get(&f), Some(9100));
        // Cut inside the trun: the tfdt is still found.
        let t = fields.tfdt.unwrap();
        assert_eq!(time_fields(&f[..t.at + 8]).tfdt, Some(t));
        assert_eq!(time_fields(&f[..t.at + 7]).tfdt, None);
        assert!(!rebase(&mut [0u8; 16], 0, &TrackScales::default()));
    }

    #[test]
    fn audio_that_starts_before_the_video_moves_the_file_start_back() {
        let tfhd = |id: u32| bx(b"tfhd", &full(0, &id.to_be_bytes()));
        let traf = |id: u32, t: u64| {
            bx(
                b"traf",
                &[tfhd(id), bx(b"tfdt", &full(1, &t.to_be_bytes()))].concat(),
            )
        };
        let mut h = bx(b"moof", &[traf(1, 90_000), traf(2, 47_700)].concat());
        let scales = TrackScales {
            first: 90_000,
            others: vec![(2, 48_000)],
        };
        // 47 700 at 48 kHz is 89 437.5 at 90 kHz: the audio leads by 563 video ticks.
        let lead = lead_of_others(&h, &scales);
        assert_eq!(lead, 563);
        assert!(rebase(&mut h, lead, &scales));
        let f = time_fields(&h);
        assert_eq!(f.tfdt.unwrap().get(&h), Some(563));
        assert_eq!(f.more[0].1.get(&h), Some(0));
        // Moving back by the same time restores both.
        assert!(rebase(&mut h, 90_000, &scales));
        let f = time_fields(&h);
        assert_eq!(f.more[0].1.get(&h), Some(47_700));
    }

    #[test]
    fn the_view_adds_the_base_back_in_every_range() {
        let base = 160_000_000_000_000u64;
        let init = bx(b"ftyp", b"iso6mp41");
        let abs: Vec<Vec<u8>> = (0..3)
            .map(|i| fragment(base + i * 90_000, base + i * 90_000 + 5))
            .collect();
        let mut rel = abs.clone();
        for (i, f) in rel.iter_mut().enumerate() {
            assert!(rebase(f, i as u64 * 90_000, &TrackScales::default()));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.mp4");
        std::fs::write(&path, [init.clone(), rel.concat()].concat()).unwrap();
        let want = [init.clone(), abs.concat()].concat();
        let mut row = crate::playback::timeline::tests::seg(1, 1, 0, 3, 1);
        row.init_size_bytes = init.len() as i64;
        row.fragments = abs
            .iter()
            .map(|f| crate::index::FragmentEntry {
                size_bytes: f.len() as u32,
                duration_us: 1_000_000,
            })
            .collect();
        row.size_bytes = want.len() as i64;
        row.decode_time = base;
        let v = PlaybackView::open(&path, &row).unwrap();
        assert_eq!(v.len(), want.len() as u64);
        assert_eq!(v.delta(), base);
        // Every split point: the bytes match the absolute file.
        for a in 0..want.len() {
            for b in [a + 1, a + 13, a + 100, want.len()] {
                let b = b.min(want.len());
                let mut out = vec![0u8; b - a];
                v.read_at(a as u64, &mut out).unwrap();
                assert_eq!(out, want[a..b], "range {a}..{b}");
            }
        }
        // An absolute (old) file is served as it is.
        std::fs::write(&path, &want).unwrap();
        let v = PlaybackView::open(&path, &row).unwrap();
        assert_eq!(v.delta(), 0);
        let mut out = vec![0u8; want.len()];
        v.read_at(0, &mut out).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn a_file_without_its_row_gets_a_base_that_only_goes_forward() {
        let scan = |t0: u64| SegmentScan {
            init_size: 10,
            timescale: 90_000,
            codec: "avc1".into(),
            audio_codec: None,
            fragments: vec![crate::mp4::FragmentInfo {
                offset: 10,
                size: 10,
                duration_ticks: 90_000,
                decode_time: t0,
            }],
            valid_len: 20,
            file_len: 20,
        };
        let s = 1_700_000_000_000_000_000i64;
        // Absolute (old) files keep theirs; a known base wins over a derived one.
        assert_eq!(
            base_of_scan(&scan(160_000_000_000_123), 0, s, None),
            160_000_000_000_123
        );
        // A file whose audio leads its video by a few ms counts from its own start.
        assert_eq!(base_of_scan(&scan(1800), 77, s, None), 77);
        assert_eq!(base_of_scan(&scan(0), 77, s, None), 77);
        // Alone: the start in ticks.
        assert_eq!(base_of_scan(&scan(0), 0, s, None), ns_to_ticks(s, 90_000));
        let mut prev = crate::playback::timeline::tests::seg(1, 1, s - 10_000_000_000, 10, 1);
        prev.decode_time = 5_000_000;
        // Continuous: chained from the previous segment's base and duration.
        assert_eq!(
            base_of_scan(&scan(0), 0, s + 20_000_000, Some(&prev)),
            5_000_000 + 900_000
        );
        // After a gap: the start in ticks, but never before the previous end.
        prev.decode_time = ns_to_ticks(s, 90_000) + 1000;
        assert_eq!(
            base_of_scan(&scan(0), 0, s + 60_000_000_000, Some(&prev)),
            ns_to_ticks(s + 60_000_000_000, 90_000)
        );
        assert_eq!(
            base_of_scan(&scan(0), 0, s - 5_000_000_000, Some(&prev)),
            prev.decode_time + 900_000
        );
    }
}
