//! Playback benchmark (issue: playback): one camera-year of 30 s segments (about 1.05 million
//! index rows, 2 s fragments, a new run every day) in a real SQLite index, then p50/p99 latency of
//! `availableMedia` at each precision and of a 24-hour HLS and DASH manifest, and the peak RSS.
//! Targets: availableMedia <= 2 ms, 24-hour manifest <= 50 ms. The peer, measured in the same run,
//! is one full scan of the camera's rows (what any approach that reads every row would cost).
//!
//! Run: `bash bench/playback.sh` (release build).

use std::time::Instant;

use edgerec::index::{FragmentEntry, Index, SegmentRow, SegmentState};
use edgerec::playback::available::available_media;
use edgerec::playback::catalog::Catalog;
use edgerec::playback::filter::{parse_manifest_name, select};
use edgerec::playback::time::{format_full, Unit};
use edgerec::playback::{dash, hls};
use edgerec::store::live::LiveSegments;

const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;
const START: i64 = 1_704_067_200 * S; // 2024-01-01T00:00:00Z

fn rss_peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A small deterministic PRNG (xorshift) for query positions.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

fn stats(name: &str, mut v: Vec<f64>, target_ms: Option<f64>) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let t = target_ms.map_or(String::new(), |t| {
        format!(
            "  target <= {t} ms: {}",
            if p(0.99) <= t { "met" } else { "NOT met" }
        )
    });
    println!(
        "{name:<34} n={:<4} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms{t}",
        v.len(),
        p(0.5),
        p(0.99),
        v[v.len() - 1]
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64() * 1000.0, r)
}

fn main() {
    let days: i64 = std::env::var("BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(365);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite3");
    let mut ix = Index::open(&path).unwrap();
    let t0 = Instant::now();
    let frags = vec![
        FragmentEntry {
            size_bytes: 250_000,
            duration_us: 2_000_000
        };
        15
    ];
    let mut rows = 0usize;
    for d in 0..days {
        // Each day is one run that starts 5 s after midnight (a reconnect gap every day).
        let run_start = START + d * DAY + 5 * S;
        let run = ix.insert_run("cam", run_start, "reconnect").unwrap();
        let batch: Vec<SegmentRow> = (0..2880 - 1)
            .map(|i| SegmentRow {
                id: 0,
                camera: "cam".into(),
                run_id: run,
                start_utc_ns: run_start + i * 30 * S,
                duration_ns: 30 * S,
                size_bytes: 700 + 15 * 250_000,
                alloc_bytes: 3_754_000,
                init_size_bytes: 700,
                fragments: frags.clone(),
                codec: "avc1".into(),
                audio_codec: None,
                path: format!("media/cam/{d}/{i}.mp4"),
                state: SegmentState::Complete,
                uploaded_utc_ns: None,
                timescale: 90_000,
                decode_time: (i * 30 * 90_000) as u64,
                media_seq: 0,
                disc_seq: 0,
                disc_start: false,
            })
            .collect();
        rows += batch.len();
        ix.insert_segments(&batch).unwrap();
    }
    drop(ix);
    println!(
        "index: {rows} segment rows ({days} days of 30 s segments, 2 s fragments), {:.0} MiB, filled in {:.1} s",
        std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );
    let rss_before = rss_peak_kib();
    let cat = Catalog::open(&path, LiveSegments::new()).unwrap();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let end_all = START + days * DAY;

    let mut v = Vec::new();
    for _ in 0..200 {
        v.push(time(|| available_media(&cat, "cam", Some("year"), None, None, false).unwrap()).0);
    }
    stats("availableMedia year (all)", v, Some(2.0));

    let mut v = Vec::new();
    for _ in 0..200 {
        let m = Unit::Month.of(START + rng.below(end_all - START));
        let (s, e) = (Unit::Month.format(m - 6), Unit::Month.format(m + 6));
        v.push(
            time(|| {
                available_media(&cat, "cam", Some("month"), Some(&s), Some(&e), false).unwrap()
            })
            .0,
        );
    }
    stats("availableMedia month (12 months)", v, Some(2.0));

    let mut v = Vec::new();
    for _ in 0..200 {
        let d = Unit::Day.of(START + rng.below(end_all - START));
        let (s, e) = (Unit::Day.format(d - 15), Unit::Day.format(d + 16));
        v.push(
            time(|| available_media(&cat, "cam", Some("day"), Some(&s), Some(&e), false).unwrap())
                .0,
        );
    }
    stats("availableMedia day (31 days)", v, Some(2.0));

    let mut v = Vec::new();
    let mut n_ranges = 0;
    for _ in 0..200 {
        let a = START + rng.below(end_all - START - 25 * 3600 * S);
        let (s, e) = (format_full(a), format_full(a + 25 * 3600 * S));
        let (ms, r) =
            time(|| available_media(&cat, "cam", Some("full"), Some(&s), Some(&e), false).unwrap());
        n_ranges += r.len();
        v.push(ms);
    }
    stats("availableMedia full (25 hours)", v, Some(2.0));
    assert!(n_ranges >= 200, "every 25 h window crosses a daily gap");

    for (fmt, ext) in [("m3u8-aapl", "m3u8"), ("mpd-time-cmaf", "mpd")] {
        let mut v = Vec::new();
        let mut bytes = 0;
        for _ in 0..50 {
            let a = START + rng.below(end_all - START - DAY);
            let name = format!(
                "manifest(format={fmt},startTime={},endTime={}).{ext}",
                format_full(a),
                format_full(a + DAY)
            );
            let (ms, body) = time(|| {
                let req = parse_manifest_name(&name).unwrap().unwrap();
                let sel = select(&cat, "cam", &req, false).unwrap();
                if ext == "m3u8" {
                    hls::render(&sel, &hls::MediaUrls::default())
                } else {
                    dash::render(&sel, &hls::MediaUrls::default(), &[], end_all)
                }
            });
            bytes = body.len();
            v.push(ms);
        }
        stats(
            &format!("24 h manifest {ext} ({} KiB)", bytes / 1024),
            v,
            Some(50.0),
        );
    }

    let rss_queries = rss_peak_kib();
    let mut v = Vec::new();
    for _ in 0..5 {
        v.push(
            time(|| {
                cat.segments("cam", i64::MIN / 2, i64::MAX / 2)
                    .unwrap()
                    .len()
            })
            .0,
        );
    }
    let scan = {
        let mut s = v.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        s[s.len() / 2]
    };
    stats("peer: read every row of the camera", v, None);
    println!(
        "peer / availableMedia full p50 and manifest figures above: a full scan costs {scan:.0} ms"
    );
    println!(
        "peak RSS: {:.1} MiB after the queries and manifests (before them: {:.1} MiB; with the peer's full scan: {:.1} MiB)",
        rss_queries as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_peak_kib() as f64 / 1024.0
    );
}
