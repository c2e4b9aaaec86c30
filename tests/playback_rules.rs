//! Playback rules of seed `004_*` (DESIGN section 6) against a real SQLite index filled with
//! exact timelines, and the HTTP layer (status codes, JSON errors, tokens, path checks) against a
//! real server on a free loopback port. No camera is needed: the timelines are written as index
//! rows, as the recorder would have written them.
//!
//! Every availableMedia answer and every manifest is also asked of `edgerec serve` (the cloud
//! side, docs/cloud.md) over the same timeline written as a store would hold it (segment objects
//! and hour index objects in a directory), and must be the same.

mod common;

use common::cloud::Serve;
use edgerec::upload::hour_index::{self, HourIndex, IndexEntry};

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use edgerec::http::{auth::Tokens, AppState, CameraEntry};
use edgerec::index::{FragmentEntry, Index, SegmentRow, SegmentState};
use edgerec::playback::available::{available_media, TimeRange};
use edgerec::playback::catalog::Catalog;
use edgerec::playback::filter::{parse_manifest_name, select};
use edgerec::playback::time::parse_datetime;
use edgerec::playback::{dash, hls};
use edgerec::store::live::LiveSegments;

const S: i64 = 1_000_000_000;

fn t(s: &str) -> i64 {
    parse_datetime(s).unwrap()
}

/// A camera timeline under construction: runs of back-to-back segments of `seg_s` seconds with
/// 2-second fragments (the last segment of a run may be shorter).
struct Timeline {
    dir: tempfile::TempDir,
    rows: Vec<SegmentRow>,
    next_run: i64,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            dir: tempfile::tempdir().unwrap(),
            rows: Vec::new(),
            next_run: 1,
        }
    }

    /// Records `[from, to)` as one run.
    fn record(&mut self, from: i64, to: i64, seg_s: i64) -> &mut Self {
        let run = self.next_run;
        self.next_run += 1;
        let mut at = from;
        while at < to {
            let end = (at + seg_s * S).min(to);
            let mut frags = Vec::new();
            let mut f = at;
            while f < end {
                let d = (end - f).min(2 * S);
                frags.push(FragmentEntry {
                    size_bytes: 1000,
                    duration_us: (d / 1000) as u32,
                });
                f += d;
            }
            self.rows.push(SegmentRow {
                id: 0,
                camera: "cam".into(),
                run_id: run,
                start_utc_ns: at,
                duration_ns: end - at,
                size_bytes: 700 + 1000 * frags.len() as i64,
                alloc_bytes: 0,
                init_size_bytes: 700,
                fragments: frags,
                codec: "avc1".into(),
                audio_codec: None,
                path: format!("media/cam/{at}.mp4"),
                state: SegmentState::Complete,
                uploaded_utc_ns: None,
                timescale: 90_000,
                decode_time: ((at - from) / 1000 * 90 / 1000) as u64,
                media_seq: 0,
                disc_seq: 0,
                disc_start: false,
            });
            at = end;
        }
        self
    }

    /// The catalog, and `edgerec serve` over the same timeline as uploaded objects: one
    /// (sparse) object per segment and the hour index objects the uploader writes.
    fn both(&mut self) -> Both {
        let cat = self.catalog();
        // A directory of its own: the timeline's may be dropped before the answers are read.
        let store = tempfile::tempdir().unwrap();
        let root = store.path().to_owned();
        let mut hours: std::collections::BTreeMap<i64, Vec<IndexEntry>> = Default::default();
        for r in &self.rows {
            let e = IndexEntry::of(r);
            let folder = root.join(hour_index::day_folder("gw", "cam", r.start_utc_ns));
            std::fs::create_dir_all(&folder).unwrap();
            let f = std::fs::File::create(folder.join(&e.name)).unwrap();
            f.set_len(r.size_bytes as u64).unwrap();
            hours
                .entry(hour_index::hour_of(r.start_utc_ns))
                .or_default()
                .push(e);
        }
        for (h, segments) in hours {
            let key = hour_index::index_key("", "cam", h)
                .to_string()
                .replace("cam/", "gw/cam/");
            let doc = HourIndex {
                version: hour_index::VERSION,
                camera: "cam".into(),
                hour: hour_index::hour_label(h),
                segments,
            };
            std::fs::write(root.join(key), serde_json::to_vec(&doc).unwrap()).unwrap();
        }
        let serve = Serve::start(&format!("url = \"file://{}\"", root.display()), "");
        Both {
            cat,
            serve,
            _store: store,
        }
    }

    /// Writes the index (runs and segments) and opens a catalog on it.
    fn catalog(&mut self) -> Catalog {
        let p = self.dir.path().join("index.sqlite3");
        let mut ix = Index::open(&p).unwrap();
        for r in 1..self.next_run {
            let start = self
                .rows
                .iter()
                .find(|s| s.run_id == r)
                .unwrap()
                .start_utc_ns;
            assert_eq!(ix.insert_run("cam", start, "connect").unwrap(), r);
        }
        ix.insert_segments(&self.rows).unwrap();
        drop(ix);
        Catalog::open(&p, LiveSegments::new()).unwrap()
    }
}

fn ranges(v: &[(&str, &str)]) -> Vec<TimeRange> {
    v.iter()
        .map(|(s, e)| TimeRange {
            start: s.to_string(),
            end: e.to_string(),
        })
        .collect()
}

/// A timeline as the gateway's catalog holds it, and `edgerec serve` over it in a store.
struct Both {
    cat: Catalog,
    serve: Serve,
    _store: tempfile::TempDir,
}

impl std::ops::Deref for Both {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        &self.cat
    }
}

impl Both {
    /// `edgerec serve`'s availableMedia answer: (status, body).
    fn cloud_am(&self, p: Option<&str>, s: Option<&str>, e: Option<&str>) -> (u16, String) {
        let mut q = Vec::new();
        for (k, v) in [("precision", p), ("startTime", s), ("endTime", e)] {
            if let Some(v) = v {
                q.push(format!("{k}={v}"));
            }
        }
        self.serve.get(&format!(
            "/gw/cam/content.ism/availableMedia?{}",
            q.join("&")
        ))
    }

    /// The gateway's manifest `name` and `edgerec serve`'s are the same but for the media URLs
    /// and sequence numbers (ids and numbering are each side's own).
    fn same_manifest(&self, name: &str) {
        let sel = select(
            &self.cat,
            "cam",
            &parse_manifest_name(name).unwrap().unwrap(),
            false,
        );
        let (st, cloud) = self.serve.get(&format!("/gw/cam/content.ism/{name}"));
        match sel {
            Err(e) => {
                assert_eq!(st, e.status, "{name}: {cloud}");
                assert_eq!(cloud, e.body(), "{name}");
            }
            Ok(sel) => {
                assert_eq!(st, 200, "{name}: {cloud}");
                let (gw, strip): (String, fn(&str) -> String) = if name.ends_with(".m3u8") {
                    (hls::render(&sel, &hls::MediaUrls::default()), hls_shape)
                } else {
                    (
                        dash::render(&sel, &hls::MediaUrls::default(), &[], 0),
                        dash_shape,
                    )
                };
                assert_eq!(strip(&gw), strip(&cloud), "{name}");
            }
        }
    }
}

/// A playlist without its media URLs and sequence numbers.
fn hls_shape(m: &str) -> String {
    m.lines()
        .filter(|l| !l.starts_with("media/") && !l.contains("-SEQUENCE:"))
        .map(|l| match l.split_once("URI=\"") {
            Some((a, b)) => format!("{a}{}", b.split_once('"').map_or("", |x| x.1)),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An MPD without its media URLs, period ids and media times.
fn dash_shape(m: &str) -> String {
    m.lines()
        .map(|l| {
            let mut out = String::new();
            let mut rest = l;
            while let Some(i) = rest.find(['"']) {
                let (a, b) = rest.split_at(i + 1);
                let (v, c) = b.split_once('"').unwrap_or((b, ""));
                out += a;
                // URLs and ids are each side's own, and so is the media time (the gateway's
                // from its muxer, the cloud's from each segment's start).
                let own = [
                    "sourceURL=\"",
                    "media=\"",
                    " id=\"",
                    " t=\"",
                    "presentationTimeOffset=\"",
                ];
                if !own.iter().any(|o| a.ends_with(o)) {
                    out += v;
                }
                out.push('"');
                rest = c;
            }
            out + rest
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn am(x: &Both, p: &str, s: Option<&str>, e: Option<&str>) -> Vec<TimeRange> {
    let v = available_media(&x.cat, "cam", Some(p), s, e, false).unwrap();
    let (st, body) = x.cloud_am(Some(p), s, e);
    assert_eq!(st, 200, "serve {p} {s:?} {e:?}: {body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({ "timeRanges": v }),
        "serve {p} {s:?} {e:?}"
    );
    v
}

fn am_err(x: &Both, p: Option<&str>, s: Option<&str>, e: Option<&str>) -> String {
    let err = available_media(&x.cat, "cam", p, s, e, false).unwrap_err();
    assert_eq!(err.status, 400, "{err}");
    assert_eq!(
        x.cloud_am(p, s, e),
        (400, err.body()),
        "serve {p:?} {s:?} {e:?}"
    );
    err.message
}

const DAY_S: &str = "2019-12-21T00:00:00Z";
const DAY_E: &str = "2019-12-22T00:00:00Z";

#[test]
fn seed_example_1_no_gap() {
    let cat = Timeline::new()
        .record(t("2019-12-20T22:00:00Z"), t("2019-12-22T02:00:00Z"), 30)
        .both();
    assert_eq!(
        am(&cat, "full", Some(DAY_S), Some(DAY_E)),
        ranges(&[("2019-12-21T00:00:00.000Z", "2019-12-22T00:00:00.000Z")])
    );
    // A 4-hour HLS manifest inside it (the seed's own example) covers exactly 4 hours.
    let name = "manifest(format=m3u8-aapl,startTime=2019-12-21T14:00:00.000Z,endTime=2019-12-21T18:00:00.000Z).m3u8";
    cat.same_manifest(name);
    let req = parse_manifest_name(name).unwrap().unwrap();
    let sel = select(&cat.cat, "cam", &req, false).unwrap();
    assert!(!sel.live);
    assert_eq!(sel.periods.len(), 1);
    assert_eq!(sel.periods[0].start_ns(), t("2019-12-21T14:00:00Z"));
    assert_eq!(sel.periods[0].end_ns(), t("2019-12-21T18:00:00Z"));
    let m = hls::render(&sel, &hls::MediaUrls::default());
    assert_eq!(m.matches("#EXTINF:2.000,").count(), 4 * 1800);
    assert!(m.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!m.contains("#EXT-X-DISCONTINUITY\n"));
}

#[test]
fn seed_example_2_two_second_gap() {
    let cat = Timeline::new()
        .record(t("2019-12-20T23:00:00Z"), t("2019-12-21T04:01:08Z"), 30)
        .record(t("2019-12-21T04:01:10Z"), t("2019-12-22T01:00:00Z"), 30)
        .both();
    assert_eq!(
        am(&cat, "full", Some(DAY_S), Some(DAY_E)),
        ranges(&[
            ("2019-12-21T00:00:00.000Z", "2019-12-21T04:01:08.000Z"),
            ("2019-12-21T04:01:10.000Z", "2019-12-22T00:00:00.000Z")
        ])
    );
    // A manifest across the gap marks the discontinuity (HLS tag, DASH periods).
    let name = "manifest(format=m3u8-aapl,startTime=2019-12-21T04:00:00Z,endTime=2019-12-21T04:05:00Z).m3u8";
    cat.same_manifest(name);
    cat.same_manifest(
        &name
            .replace("m3u8-aapl", "mpd-time-cmaf")
            .replace(".m3u8", ".mpd"),
    );
    let sel = select(
        &cat.cat,
        "cam",
        &parse_manifest_name(name).unwrap().unwrap(),
        false,
    )
    .unwrap();
    assert_eq!(sel.periods.len(), 2);
    let m = hls::render(&sel, &hls::MediaUrls::default());
    assert_eq!(m.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert_eq!(m.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 2);
    assert!(m.contains("#EXT-X-PROGRAM-DATE-TIME:2019-12-21T04:01:10.000Z"));
    let d = dash::render(&sel, &hls::MediaUrls::default(), &[], 0);
    assert_eq!(d.matches("<Period ").count(), 2);
}

#[test]
fn seed_example_3_eight_hour_outage() {
    let cat = Timeline::new()
        .record(t("2019-12-20T23:00:00Z"), t("2019-12-21T04:00:00Z"), 30)
        .record(t("2019-12-21T12:00:00Z"), t("2019-12-22T01:00:00Z"), 30)
        .both();
    assert_eq!(
        am(&cat, "full", Some(DAY_S), Some(DAY_E)),
        ranges(&[
            ("2019-12-21T00:00:00.000Z", "2019-12-21T04:00:00.000Z"),
            ("2019-12-21T12:00:00.000Z", "2019-12-22T00:00:00.000Z")
        ])
    );
    let sel_of = |name: &str| {
        cat.same_manifest(name);
        select(
            &cat.cat,
            "cam",
            &parse_manifest_name(name).unwrap().unwrap(),
            false,
        )
    };
    // Wholly inside the hole: 404 with a JSON message.
    let e = sel_of("manifest(format=m3u8-aapl,startTime=2019-12-21T08:00:00.000Z,endTime=2019-12-21T10:00:00.000Z).m3u8")
        .unwrap_err();
    assert_eq!(e.status, 404);
    assert!(e.body().starts_with("{\"error\":{"), "{}", e.body());
    // Start in the hole: moved to 12:00, one hour of media.
    let sel = sel_of("manifest(format=m3u8-aapl,startTime=2019-12-21T10:00:00.000Z,endTime=2019-12-21T13:00:00.000Z).m3u8")
        .unwrap();
    assert_eq!(sel.periods.len(), 1);
    assert_eq!(sel.periods[0].start_ns(), t("2019-12-21T12:00:00Z"));
    assert_eq!(sel.periods[0].duration_ns(), 3600 * S);
    // End in the hole: ends at 04:00.
    let sel = sel_of("manifest(format=mpd-time-cmaf,startTime=2019-12-21T03:00:00Z,endTime=2019-12-21T06:00:00Z).mpd")
        .unwrap();
    assert_eq!(sel.periods[0].end_ns(), t("2019-12-21T04:00:00Z"));
}

#[test]
fn seed_example_4_summer_holidays() {
    let cat = Timeline::new()
        .record(t("2019-01-01T00:00:00Z"), t("2019-06-17T12:00:00Z"), 3600)
        .record(t("2019-09-06T12:00:00Z"), t("2020-01-01T00:00:00Z"), 3600)
        .both();
    assert_eq!(
        am(&cat, "month", Some("2019-01"), Some("2019-12")),
        ranges(&[("2019-01", "2019-06"), ("2019-09", "2019-12")])
    );
    assert_eq!(
        am(&cat, "day", Some("2019-06-01"), Some("2019-06-30")),
        ranges(&[("2019-06-01", "2019-06-17")])
    );
}

#[test]
fn seed_example_5_weekends_and_a_holiday() {
    let mut tl = Timeline::new();
    for day in 1..=29 {
        let date = format!("2020-02-{day:02}");
        let weekday = (day + 4) % 7; // Monday = 0; 2020-02-01 was a Saturday (5)
        if weekday >= 5 || day == 17 {
            continue;
        }
        tl.record(
            t(&format!("{date}T09:00:00Z")),
            t(&format!("{date}T17:00:00Z")),
            300,
        );
    }
    let cat = tl.both();
    assert_eq!(
        am(&cat, "day", Some("2020-02-01"), Some("2020-02-29")),
        ranges(&[
            ("2020-02-03", "2020-02-07"),
            ("2020-02-10", "2020-02-14"),
            ("2020-02-18", "2020-02-21"),
            ("2020-02-24", "2020-02-28")
        ])
    );
}

#[test]
fn available_media_rules() {
    // One hour of media on July 1 of every year 2011..2020 (the seed's year example).
    let mut tl = Timeline::new();
    for y in 2011..=2020 {
        tl.record(
            t(&format!("{y}-07-01T10:00:00Z")),
            t(&format!("{y}-07-01T11:00:00Z")),
            300,
        );
    }
    let cat = tl.both();
    let all = ranges(&[("2011", "2020")]);
    assert_eq!(am(&cat, "year", None, None), all);
    assert_eq!(am(&cat, "year", Some("2011"), Some("2020")), all);
    assert_eq!(
        am(&cat, "year", Some("2015"), None),
        ranges(&[("2015", "2020")])
    );
    assert_eq!(
        am(&cat, "year", None, Some("2018")),
        ranges(&[("2011", "2018")])
    );
    assert_eq!(am(&cat, "year", Some("1990"), Some("2000")), vec![]);
    // Boundaries inclusive; units merge only when adjacent.
    assert_eq!(
        am(&cat, "month", Some("2015-07"), Some("2016-07")),
        ranges(&[("2015-07", "2015-07"), ("2016-07", "2016-07")])
    );
    assert_eq!(
        am(&cat, "day", Some("2015-06-30"), Some("2015-07-01")),
        ranges(&[("2015-07-01", "2015-07-01")])
    );
    // Clipped to the query; outside the recording nothing, and no error.
    assert_eq!(
        am(
            &cat,
            "full",
            Some("2015-07-01T10:30:00Z"),
            Some("2015-07-01T12:00:00Z")
        ),
        ranges(&[("2015-07-01T10:30:00.000Z", "2015-07-01T11:00:00.000Z")])
    );
    assert_eq!(
        am(
            &cat,
            "full",
            Some("2015-07-02T00:00:00Z"),
            Some("2015-07-02T01:00:00Z")
        ),
        vec![]
    );
    // Spans: 12 months and 31 days and 25 hours are the limits.
    am(&cat, "month", Some("2015-01"), Some("2016-01"));
    am(&cat, "day", Some("2015-07-01"), Some("2015-08-01"));
    am(
        &cat,
        "full",
        Some("2015-07-01T00:00:00Z"),
        Some("2015-07-02T01:00:00Z"),
    );
    assert!(am_err(&cat, Some("month"), Some("2015-01"), Some("2016-02")).contains("12 months"));
    assert!(am_err(&cat, Some("day"), Some("2015-07-01"), Some("2015-08-02")).contains("31 days"));
    assert!(am_err(
        &cat,
        Some("full"),
        Some("2015-07-01T00:00:00Z"),
        Some("2015-07-02T01:00:00.001Z")
    )
    .contains("25 hours"));
    // Order, formats, required parameters.
    assert!(am_err(&cat, Some("year"), Some("2016"), Some("2015")).contains("after"));
    assert!(am_err(&cat, Some("full"), Some(DAY_S), Some(DAY_S)).contains("before"));
    assert!(am_err(&cat, Some("month"), Some("2015-1"), Some("2015-02")).contains("YYYY-MM"));
    assert!(
        am_err(&cat, Some("day"), Some("2015/07/01"), Some("2015-07-02")).contains("YYYY-MM-DD")
    );
    assert!(am_err(&cat, Some("year"), Some("15"), None).contains("YYYY"));
    assert!(am_err(&cat, Some("full"), Some("2015-07-01"), Some(DAY_E)).contains("ISO 8601"));
    assert!(am_err(&cat, Some("day"), Some("2015-07-01"), None).contains("required"));
    assert!(am_err(&cat, None, None, None).contains("precision"));
    assert!(am_err(&cat, Some("week"), None, None).contains("precision"));
    // No media at all: an empty list.
    let empty = Timeline::new().catalog();
    assert_eq!(
        available_media(&empty, "cam", Some("year"), None, None, false).unwrap(),
        vec![]
    );
}

#[test]
fn manifest_filter_rules() {
    let cat = Timeline::new()
        .record(t("2019-12-21T00:00:00Z"), t("2019-12-21T10:00:00Z"), 30)
        .both();
    let sel_of = |name: &str| {
        cat.same_manifest(name);
        select(
            &cat.cat,
            "cam",
            &parse_manifest_name(name).unwrap().unwrap(),
            false,
        )
    };
    // Neither: the latest 4 hours; VoD because the camera is not recording.
    let sel = sel_of("manifest(format=m3u8-aapl).m3u8").unwrap();
    assert!(!sel.live);
    assert_eq!(sel.periods[0].start_ns(), t("2019-12-21T06:00:00Z"));
    assert_eq!(sel.periods[0].end_ns(), t("2019-12-21T10:00:00Z"));
    // Start only: media after it, under 24 hours.
    let sel = sel_of("manifest(format=m3u8-aapl,startTime=2019-12-21T09:00:00Z).m3u8").unwrap();
    assert_eq!(sel.periods[0].duration_ns(), 3600 * S);
    let e = sel_of("manifest(format=m3u8-aapl,startTime=2019-12-20T09:00:00Z).m3u8").unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("24 hours"), "{}", e.message);
    // End only: 400.
    let e = sel_of("manifest(format=mpd-time-cmaf,endTime=2019-12-21T09:00:00Z).mpd").unwrap_err();
    assert_eq!((e.status, e.code), (400, "MissingStartTime"));
    // Both: at most 24 hours.
    let e = sel_of("manifest(format=m3u8-aapl,startTime=2019-12-20T00:00:00Z,endTime=2019-12-21T00:00:00.001Z).m3u8")
        .unwrap_err();
    assert_eq!(e.status, 400);
    assert!(sel_of("manifest(format=m3u8-aapl,startTime=2019-12-20T09:00:00Z,endTime=2019-12-21T09:00:00Z).m3u8").is_ok());
    // After the recording: 404.
    assert_eq!(
        sel_of("manifest(format=m3u8-aapl,startTime=2019-12-21T11:00:00Z).m3u8")
            .unwrap_err()
            .status,
        404
    );
}

// ---- HTTP layer ----

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _tl: Timeline,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn server(tokens: Option<&str>) -> Server {
    let mut tl = Timeline::new();
    tl.record(t("2019-12-21T00:00:00Z"), t("2019-12-21T01:00:00Z"), 30);
    let cat = tl.catalog();
    let tokens = tokens.map(|text| {
        let p = tl.dir.path().join("tokens");
        std::fs::write(&p, text).unwrap();
        Tokens::load(&p).unwrap()
    });
    let state = AppState {
        catalog: Arc::new(cat),
        storage_root: tl.dir.path().to_owned(),
        cameras: vec![CameraEntry {
            id: "cam".into(),
            status: None,
            mode: edgerec::config::Mode::Cvr,
            source: None,
        }],
        stats: Arc::new(Default::default()),
        storage_limit_bytes: 64 << 20,
        tokens,
        upload: Arc::default(),
        writer: None,
        max_export: edgerec::config::DEFAULT_MAX_EXPORT,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, thread) =
        edgerec::http::spawn("127.0.0.1:0".parse().unwrap(), state, stop.clone()).unwrap();
    Server {
        addr,
        stop,
        thread: Some(thread),
        _tl: tl,
    }
}

/// HTTP GET on the test server: (status, lower-cased head, body text).
fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String, String) {
    let (st, head, body) = common::http_get(addr, path, headers);
    (st, head, String::from_utf8_lossy(&body).into_owned())
}

fn json_error(body: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );
    v
}

#[test]
fn http_status_codes_and_json_errors() {
    let srv = server(None);
    let a = srv.addr;
    let (st, _, body) = get(a, "/cam/content.ism/availableMedia?precision=full&startTime=2019-12-21T00:30:00Z&endTime=2019-12-21T02:00:00Z", &[]);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body,
        r#"{"timeRanges":[{"end":"2019-12-21T01:00:00.000Z","start":"2019-12-21T00:30:00.000Z"}]}"#
    );
    let (st, _, body) = get(
        a,
        "/cam/content.ism/availableMedia?precision=month&startTime=2019-01&endTime=2020-02",
        &[],
    );
    assert_eq!(st, 400);
    assert!(json_error(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("12 months"));
    let (st, _, body) = get(a, "/nocam/content.ism/availableMedia?precision=year", &[]);
    assert_eq!(st, 404);
    json_error(&body);
    let (st, _, body) = get(
        a,
        "/Bad%21Cam/content.ism/availableMedia?precision=year",
        &[],
    );
    assert_eq!(st, 400);
    json_error(&body);
    let (st, head, body) = get(a, "/cam/content.ism/manifest(format=m3u8-aapl,startTime=2019-12-21T00:00:00Z,endTime=2019-12-21T00:01:00Z).m3u8", &[]);
    assert_eq!(st, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/vnd.apple.mpegurl"));
    assert_eq!(body.matches("#EXTINF").count(), 30);
    let (st, head, _) = get(a, "/cam/content.ism/manifest(format=mpd-time-cmaf,startTime=2019-12-21T00:00:00Z,endTime=2019-12-21T00:01:00Z).mpd", &[]);
    assert_eq!(st, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/dash+xml"));
    let (st, _, body) = get(
        a,
        "/cam/content.ism/manifest(format=m3u8-aapl,endTime=2019-12-21T00:01:00Z).m3u8",
        &[],
    );
    assert_eq!(st, 400);
    json_error(&body);
    let (st, _, body) = get(a, "/cam/content.ism/manifest(format=m3u8-aapl,startTime=2019-12-21T05:00:00Z,endTime=2019-12-21T06:00:00Z).m3u8", &[]);
    assert_eq!(st, 404);
    json_error(&body);
    // Paths that try to leave the media directory never reach a file.
    for p in [
        "/cam/content.ism/media/..%2F..%2Fetc%2Fpasswd",
        "/cam/content.ism/media/../../../etc/passwd",
        "/cam/content.ism/media/%2e%2e",
        "/cam/content.ism/media/-1.mp4",
        "/..%2F/content.ism/media/1.mp4",
    ] {
        let (st, _, body) = get(a, p, &[]);
        assert!(st == 400 || st == 404, "{p}: {st}");
        assert!(!body.contains("root:"), "{p}");
        json_error(&body);
    }
    // Segment 1's file does not exist (synthetic index): a clean JSON 404.
    let (st, _, body) = get(a, "/cam/content.ism/media/1.mp4", &[]);
    assert_eq!(st, 404);
    assert_eq!(json_error(&body)["error"]["code"], "SegmentGone");
    let (st, _, body) = get(a, "/api/cameras", &[]);
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["cameras"][0]["id"], "cam");
    assert_eq!(
        v["cameras"][0]["firstMediaTime"],
        "2019-12-21T00:00:00.000Z"
    );
    assert_eq!(v["cameras"][0]["segments"], 120);
    let (st, _, body) = get(a, "/metrics", &[]);
    assert_eq!(st, 200);
    assert!(
        body.contains("edgerec_storage_limit_bytes 67108864"),
        "{body}"
    );
    assert!(
        body.contains("edgerec_camera_segments{camera=\"cam\"} 120"),
        "{body}"
    );
}

#[test]
fn http_access_tokens() {
    let srv = server(Some("# viewers\nsecret-1\nsecret-2\n"));
    let a = srv.addr;
    assert_eq!(get(a, "/healthz", &[]).0, 200);
    for p in [
        "/api/cameras",
        "/metrics",
        "/cam/content.ism/availableMedia?precision=year",
    ] {
        let (st, head, body) = get(a, p, &[]);
        assert_eq!(st, 401, "{p}");
        assert!(head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"));
        json_error(&body);
        assert_eq!(get(a, p, &["Authorization: Bearer wrong"]).0, 401);
        assert_eq!(
            get(
                a,
                &format!("{p}{}token=nope", if p.contains('?') { "&" } else { "?" }),
                &[]
            )
            .0,
            401
        );
        assert_eq!(get(a, p, &["Authorization: Bearer secret-2"]).0, 200, "{p}");
    }
    let (st, _, body) = get(
        a,
        "/cam/content.ism/manifest(format=m3u8-aapl,startTime=2019-12-21T00:00:00Z,endTime=2019-12-21T00:01:00Z).m3u8?token=secret-1",
        &[],
    );
    assert_eq!(st, 200);
    // The manifest carries the token into every media URL.
    let uris: Vec<&str> = body.lines().filter(|l| l.starts_with("media/")).collect();
    assert_eq!(uris.len(), 30);
    assert!(uris.iter().all(|u| u.ends_with("?token=secret-1")));
    assert!(body.contains("#EXT-X-MAP:URI=\"media/"));
    assert!(body.contains(".mp4?token=secret-1\",BYTERANGE="));
    let (_, _, mpd) = get(
        a,
        "/cam/content.ism/manifest(format=mpd-time-cmaf,startTime=2019-12-21T00:00:00Z,endTime=2019-12-21T00:01:00Z).mpd",
        &["Authorization: Bearer secret-1"],
    );
    assert!(mpd.contains(".mp4?token=secret-1\" mediaRange="), "{mpd}");
}
