//! Hour index objects: what the cloud side (`edgerec serve`) needs of a camera's uploaded
//! segments to answer availableMedia and manifests without reading the segments themselves.
//!
//! The object layout is a contract (docs/cloud.md). Beside the segment objects
//! `<prefix>/<camera>/<YYYY>/<MM>/<DD>/<start>_<duration_ms>.mp4` ([`super::target::object_key`])
//! the uploader writes one JSON object per camera and UTC hour,
//! `<prefix>/<camera>/<YYYY>/<MM>/<DD>/index-<HH>.json` ([`index_key`]): every segment of that hour
//! uploaded so far, with its fragment table ([`HourIndex`]). It is rewritten as segments arrive,
//! in batches, so that index writes stay at most [`SEGMENTS_PER_PUT`]⁻¹ = 10 % of the segment
//! PUTs (seed `000_*`: storage transactions are paid for): a batch is written as soon as the
//! index writes so far plus one per hour the batch touches are at most a tenth of the segments
//! uploaded since start ([`Batcher`]).
//!
//! The upload loop, its failures and its order are [`super::worker`]'s; this module holds the
//! format, the key and the batching rule (pure, unit-tested), and is what the cloud side parses.

use std::collections::HashMap;

use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::index::{FragmentEntry, SegmentRow};
use crate::store::layout::{segment_stem, utc};

/// Format version written in every index object; readers refuse newer ones.
pub const VERSION: u32 = 1;

/// Segments per index write: index PUTs are at most 1 in this many segment PUTs.
pub const SEGMENTS_PER_PUT: usize = 10;

/// Nanoseconds per hour.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// One uploaded segment as an index object lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// Object name inside its day folder: `<start>_<duration_ms>.mp4`.
    pub name: String,
    /// Start, UTC ns (the name has milliseconds).
    pub start: i64,
    /// Duration, ns.
    pub duration_ns: i64,
    /// Object length, bytes.
    pub size: i64,
    /// Init segment length at the start of the object, bytes.
    pub init_size: i64,
    /// Video timescale, ticks per second.
    pub timescale: u32,
    /// Video sample entry four-cc (`avc1`, `hvc1`).
    pub codec: String,
    /// RFC 6381 codec of the audio track (`mp4a.40.2`); absent: video only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// The gateway's run id: a new run (reconnect, restart) is a discontinuity.
    pub run: i64,
    /// Fragments in file order: `[bytes, duration µs]` (`moof` through `mdat`, after the init).
    pub fragments: Vec<[u32; 2]>,
}

/// An index object: every listed segment starts in `hour`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourIndex {
    /// [`VERSION`].
    pub version: u32,
    /// Camera id.
    pub camera: String,
    /// The hour, `YYYY-MM-DDTHHZ` (UTC).
    pub hour: String,
    /// Segments by start.
    pub segments: Vec<IndexEntry>,
}

/// The hour of a time: whole hours since 1970 (UTC).
pub fn hour_of(ns: i64) -> i64 {
    ns.div_euclid(HOUR_NS)
}

/// The object name of a segment inside its day folder: `<start>_<duration_ms>.mp4` (start as
/// in the segment file name, e.g. `20191221T040108.123Z`).
pub fn segment_name(start_utc_ns: i64, duration_ns: i64) -> String {
    format!(
        "{}_{}.mp4",
        segment_stem(start_utc_ns),
        duration_ns / 1_000_000
    )
}

/// `<camera>/<YYYY>/<MM>/<DD>/` of the day that holds `ns` (UTC), under `prefix` (may be empty).
pub fn day_folder(prefix: &str, camera: &str, ns: i64) -> String {
    let d = utc(ns);
    let f = format!(
        "{camera}/{:04}/{:02}/{:02}/",
        d.year(),
        u8::from(d.month()),
        d.day()
    );
    if prefix.is_empty() {
        f
    } else {
        format!("{prefix}/{f}")
    }
}

/// The key of `camera`'s index object for `hour` ([`hour_of`]):
/// `<prefix>/<camera>/<YYYY>/<MM>/<DD>/index-<HH>.json`.
pub fn index_key(prefix: &str, camera: &str, hour: i64) -> ObjectPath {
    let t = hour * HOUR_NS;
    ObjectPath::from(format!(
        "{}index-{:02}.json",
        day_folder(prefix, camera, t),
        utc(t).hour()
    ))
}

/// `YYYY-MM-DDTHHZ` of an hour.
pub fn hour_label(hour: i64) -> String {
    let t = utc(hour * HOUR_NS);
    format!(
        "{:04}-{:02}-{:02}T{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

impl IndexEntry {
    /// The entry of an uploaded segment.
    pub fn of(s: &SegmentRow) -> IndexEntry {
        IndexEntry {
            name: segment_name(s.start_utc_ns, s.duration_ns),
            start: s.start_utc_ns,
            duration_ns: s.duration_ns,
            size: s.size_bytes,
            init_size: s.init_size_bytes,
            timescale: s.timescale,
            codec: s.codec.clone(),
            audio_codec: s.audio_codec.clone(),
            run: s.run_id,
            fragments: s
                .fragments
                .iter()
                .map(|f| [f.size_bytes, f.duration_us])
                .collect(),
        }
    }

    /// The fragment table as the index keeps it.
    pub fn fragment_entries(&self) -> Vec<FragmentEntry> {
        self.fragments
            .iter()
            .map(|&[size_bytes, duration_us]| FragmentEntry {
                size_bytes,
                duration_us,
            })
            .collect()
    }
}

impl HourIndex {
    /// Parses an index object. Errors: not JSON of this shape, or a newer [`VERSION`].
    pub fn parse(bytes: &[u8]) -> Result<HourIndex, String> {
        let h: HourIndex = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if h.version > VERSION {
            return Err(format!(
                "index object version {} is newer than this edgerec reads ({VERSION})",
                h.version
            ));
        }
        Ok(h)
    }

    /// `base` with `new` merged in: one entry per name (a new entry replaces an old one), by
    /// start.
    pub fn merged(mut base: Vec<IndexEntry>, new: &[IndexEntry]) -> Vec<IndexEntry> {
        for n in new {
            match base.iter_mut().find(|e| e.name == n.name) {
                Some(e) => *e = n.clone(),
                None => base.push(n.clone()),
            }
        }
        base.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
        base
    }
}

/// The uploader's index bookkeeping, per camera: segments uploaded but not yet in an index
/// object, and the last written contents of recent hours (so that a rewrite needs no GET).
#[derive(Debug, Default)]
pub struct Batcher {
    pending: HashMap<String, Vec<IndexEntry>>,
    /// (camera, hour) → the entries its object holds, as last written by this process.
    written: HashMap<(String, i64), Vec<IndexEntry>>,
    /// Per camera, the newest hour this process wrote.
    newest: HashMap<String, i64>,
    /// Per camera, segments added and index objects written since start.
    counts: HashMap<String, (usize, usize)>,
}

/// What to write for one hour of a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourWrite {
    /// The hour ([`hour_of`]).
    pub hour: i64,
    /// Entries to merge into the object.
    pub new: Vec<IndexEntry>,
    /// What the object holds: `Some` when this process knows (it wrote the object, or the
    /// hour is after every hour it wrote, so no object can exist yet); `None`: read it first.
    pub base: Option<Vec<IndexEntry>>,
}

impl Batcher {
    /// Notes an uploaded segment of `camera`.
    pub fn add(&mut self, camera: &str, e: IndexEntry) {
        self.pending.entry(camera.to_owned()).or_default().push(e);
        self.counts.entry(camera.to_owned()).or_default().0 += 1;
    }

    /// Segments of `camera` waiting for an index write.
    pub fn pending(&self, camera: &str) -> usize {
        self.pending.get(camera).map_or(0, Vec::len)
    }

    /// Whether `camera`'s pending segments are due: writing them (one object per hour they
    /// touch) keeps the index objects written since start at most one per [`SEGMENTS_PER_PUT`]
    /// segments added since start.
    pub fn due(&self, camera: &str) -> bool {
        let Some(p) = self.pending.get(camera).filter(|p| !p.is_empty()) else {
            return false;
        };
        let mut hours: Vec<i64> = p.iter().map(|e| hour_of(e.start)).collect();
        hours.sort_unstable();
        hours.dedup();
        let (added, puts) = self.counts.get(camera).copied().unwrap_or_default();
        (puts + hours.len()) * SEGMENTS_PER_PUT <= added
    }

    /// Takes `camera`'s pending segments as one write per hour. The base of an hour is known
    /// when this process wrote it, or when it is after the newest hour this process wrote (no
    /// object can exist yet); otherwise (the first write after a start, or late segments of an
    /// older hour) the caller reads the object first. Give back what was not written with
    /// [`Self::put_back`].
    pub fn take(&mut self, camera: &str) -> Vec<HourWrite> {
        let p = self.pending.remove(camera).unwrap_or_default();
        let mut by_hour: Vec<HourWrite> = Vec::new();
        for e in p {
            let h = hour_of(e.start);
            match by_hour.iter_mut().find(|w| w.hour == h) {
                Some(w) => w.new.push(e),
                None => by_hour.push(HourWrite {
                    hour: h,
                    new: vec![e],
                    base: None,
                }),
            }
        }
        let newest = self.newest.get(camera).copied();
        for w in &mut by_hour {
            w.base = match (self.written.get(&(camera.to_owned(), w.hour)), newest) {
                (Some(b), _) => Some(b.clone()),
                (None, Some(n)) if w.hour > n => Some(Vec::new()),
                _ => None,
            };
        }
        by_hour.sort_by_key(|w| w.hour);
        by_hour
    }

    /// Entries that were taken but not written: pending again.
    pub fn put_back(&mut self, camera: &str, entries: Vec<IndexEntry>) {
        let p = self.pending.entry(camera.to_owned()).or_default();
        let mut all = entries;
        all.append(p);
        *p = all;
    }

    /// Records that `camera`'s object for `hour` now holds `entries`. Keeps the written
    /// contents of the newest two hours per camera only (a few hundred KiB at most).
    pub fn written(&mut self, camera: &str, hour: i64, entries: Vec<IndexEntry>) {
        self.counts.entry(camera.to_owned()).or_default().1 += 1;
        let n = self.newest.entry(camera.to_owned()).or_insert(hour);
        *n = (*n).max(hour);
        let newest = *n;
        self.written.insert((camera.to_owned(), hour), entries);
        self.written
            .retain(|(c, h), _| c != camera || *h + 1 >= newest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: i64) -> IndexEntry {
        IndexEntry {
            name: segment_name(start, 30_000_000_000),
            start,
            duration_ns: 30_000_000_000,
            size: 1000,
            init_size: 100,
            timescale: 90_000,
            codec: "avc1".into(),
            audio_codec: None,
            run: 1,
            fragments: vec![[450, 15_000_000], [450, 15_000_000]],
        }
    }

    #[test]
    fn keys_and_labels() {
        let t = 1_576_900_868_123_000_000; // 2019-12-21T04:01:08.123Z
        assert_eq!(
            index_key("site/gw-01", "lot", hour_of(t)).as_ref(),
            "site/gw-01/lot/2019/12/21/index-04.json"
        );
        assert_eq!(hour_label(hour_of(t)), "2019-12-21T04Z");
        assert_eq!(
            segment_name(t, 30_000_400_000),
            "20191221T040108.123Z_30000.mp4"
        );
        assert_eq!(day_folder("", "lot", t), "lot/2019/12/21/");
    }

    /// Index writes are at most one in ten segment uploads, also when batches straddle hours.
    #[test]
    fn index_writes_stay_under_a_tenth_of_the_segments() {
        for seg_s in [30i64, 45, 240, 300] {
            let mut b = Batcher::default();
            let (mut segs, mut puts) = (0usize, 0usize);
            let t0 = 1_700_000_000 * 1_000_000_000;
            for i in 0..(48 * 3600 / seg_s) {
                let e = entry(t0 + i * seg_s * 1_000_000_000);
                b.add("cam", e);
                segs += 1;
                if b.due("cam") {
                    for w in b.take("cam") {
                        let base = w.base.clone().unwrap_or_default();
                        b.written("cam", w.hour, HourIndex::merged(base, &w.new));
                        puts += 1;
                    }
                }
            }
            assert!(
                puts * SEGMENTS_PER_PUT <= segs,
                "{seg_s}: {puts} index puts for {segs}"
            );
            // The part not yet in an index object stays short.
            assert!(
                puts > 0 && b.pending("cam") < 3 * SEGMENTS_PER_PUT,
                "{seg_s}: {}",
                b.pending("cam")
            );
        }
    }

    #[test]
    fn the_first_write_of_a_start_reads_the_object_and_later_hours_do_not() {
        let mut b = Batcher::default();
        let h = 1_700_000_000 * 1_000_000_000 / HOUR_NS * HOUR_NS;
        for i in 0..10 {
            b.add("cam", entry(h + i * 30_000_000_000));
        }
        let w = b.take("cam");
        assert_eq!((w.len(), w[0].base.is_none()), (1, true));
        b.written("cam", w[0].hour, w[0].new.clone());
        for i in 10..20 {
            b.add("cam", entry(h + i * 30_000_000_000));
        }
        let w = b.take("cam");
        assert_eq!(w[0].base.as_ref().map(Vec::len), Some(10));
        for i in 0..10 {
            b.add("cam", entry(h + HOUR_NS + i * 30_000_000_000));
        }
        assert_eq!(b.take("cam")[0].base, Some(Vec::new()));
        // Late segments of an hour no longer held: read first.
        b.written("cam", hour_of(h) + 5, Vec::new());
        b.add("cam", entry(h + 2 * HOUR_NS));
        assert_eq!(b.take("cam")[0].base, None);
        // Put back keeps them pending, oldest first.
        b.put_back("cam", vec![entry(h), entry(h + 1)]);
        assert_eq!(b.pending("cam"), 2);
    }

    #[test]
    fn merging_replaces_by_name_and_sorts() {
        let a = entry(2_000_000_000_000_000_000);
        let mut a2 = a.clone();
        a2.size = 5;
        let b = entry(1_000_000_000_000_000_000);
        let m = HourIndex::merged(vec![a], &[a2.clone(), b.clone()]);
        assert_eq!(m, vec![b, a2]);
        let doc = HourIndex {
            version: VERSION,
            camera: "cam".into(),
            hour: "x".into(),
            segments: m,
        };
        let text = serde_json::to_vec(&doc).unwrap();
        assert_eq!(HourIndex::parse(&text).unwrap(), doc);
        let newer = String::from_utf8(text)
            .unwrap()
            .replace("\"version\":1", "\"version\":9");
        assert!(HourIndex::parse(newer.as_bytes())
            .unwrap_err()
            .contains("newer"));
    }
}
