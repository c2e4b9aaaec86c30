//! Cloud playback benchmark (issue 15): one camera-month at PT30S (31 days, 89,280 segment
//! objects and 744 hour index objects, as gateways upload them) in a local moto S3 server.
//! `edgerec serve`'s router answers availableMedia at day precision over 31 days and at full
//! precision over 25 hours, and a 24-hour HLS manifest; each is timed (p50, p99) next to a plain
//! listing of the same key range in the same run: object_store's paginated `list` in this
//! process, and `aws s3api list-objects-v2` (awscli, paginated).
//!
//! Also: media bytes through the server next to the same byte ranges read straight from the
//! store with presigned S3 URLs, over copies of a real recorded segment (`BENCH_SEGMENT`); and
//! the gateway's storage transactions per camera-hour (the uploader's batching rule over a
//! simulated week at PT30S, PT60S, PT120S and PT5M).
//!
//! `bash bench/cloud.sh` (needs `.ci/deps.sh`: moto and awscli in target/ci-venv; it records the
//! segment first with bench/segment.sh). BENCH_DAYS (default 31), BENCH_RUNS (default 20) and
//! BENCH_MEDIA_SEGMENTS (default 40) change the size and the samples.

#[path = "util.rs"]
mod util;
use util::{env_or, free_port, venv};

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgerec::cloud::catalog::CloudStore;
use edgerec::cloud::serve::{router, CloudState};
use edgerec::config::{UploadConfig, UploadTarget};
use edgerec::index::{FragmentEntry, SegmentRow, SegmentState};
use edgerec::playback::time::format_full;
use edgerec::upload::hour_index::{self, Batcher, HourIndex, IndexEntry};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const S: i64 = 1_000_000_000;
const SEG: i64 = 30 * S;
/// Bytes of each benchmark segment object (the content is never read: index objects list them).
const OBJECT_BYTES: usize = 256;

/// A segment row as the uploader would describe it: 15 fragments of 2 s.
fn row(start: i64) -> SegmentRow {
    SegmentRow {
        id: 0,
        camera: "cam".into(),
        run_id: 1,
        start_utc_ns: start,
        duration_ns: SEG,
        size_bytes: OBJECT_BYTES as i64,
        alloc_bytes: 0,
        init_size_bytes: 16,
        fragments: (0..15)
            .map(|_| FragmentEntry {
                size_bytes: 16,
                duration_us: 2_000_000,
            })
            .collect(),
        codec: "avc1".into(),
        audio_codec: None,
        path: String::new(),
        state: SegmentState::Complete,
        uploaded_utc_ns: None,
        timescale: 90_000,
        decode_time: 0,
        media_seq: 0,
        disc_seq: 0,
        disc_start: false,
    }
}

/// One plain HTTP/1.1 GET of `path` (with its query) on 127.0.0.1:`port`, a new connection
/// each time, with `Range: bytes=a-b` when `range` is given: (status, body, seconds).
fn request(port: u16, path: &str, range: Option<(u64, u64)>) -> (u16, Vec<u8>, f64) {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let range = range.map_or(String::new(), |(a, b)| format!("Range: bytes={a}-{b}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{range}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here"
    );
    (status, buf.split_off(head_end + 4), secs)
}

/// [`request`] without a range: (status, body length, seconds).
fn get(port: u16, path: &str) -> (u16, usize, f64) {
    let (st, body, secs) = request(port, path, None);
    (st, body.len(), secs)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// Copies of a real segment in the store, back to back: [`put_media`] writes them.
struct Media {
    /// Start of the first copy, ns since 1970 (UTC).
    t0: i64,
    /// Copies.
    copies: i64,
    /// Distance between copies (the segment's duration rounded up to a millisecond), ns.
    dur: i64,
    /// Fragments per copy.
    fragments: usize,
    /// Object key of each copy by its start in ms.
    keys: std::collections::HashMap<i64, String>,
}

/// Writes `copies` copies of the real segment `BENCH_SEGMENT` (bench/segment.sh records it),
/// back to back from `t_media`, as camera `media` of device `gw` with their hour index objects.
/// Before `serve` starts: it reuses the device's camera listing for 60 s.
fn put_media(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    t_media: i64,
    copies: i64,
) -> Media {
    let seg = std::env::var("BENCH_SEGMENT")
        .expect("BENCH_SEGMENT (a recorded segment file) missing: run bash bench/cloud.sh");
    let bytes = std::fs::read(&seg).unwrap();
    let scan = edgerec::mp4::scan_file(std::path::Path::new(&seg)).unwrap();
    // Back to back, on whole milliseconds (the key names carry milliseconds).
    let dur = (scan.duration_ns().div_ceil(1_000_000) * 1_000_000) as i64;
    let mut by_hour: std::collections::BTreeMap<i64, Vec<IndexEntry>> = Default::default();
    let mut keys = std::collections::HashMap::new();
    let mut puts = Vec::new();
    for i in 0..copies {
        let start = t_media + i * dur;
        let r = SegmentRow {
            camera: "media".into(),
            start_utc_ns: start,
            duration_ns: scan.duration_ns() as i64,
            size_bytes: scan.valid_len as i64,
            init_size_bytes: scan.init_size as i64,
            fragments: edgerec::store::recover::fragment_entries(&scan),
            codec: scan.codec.clone(),
            audio_codec: scan.audio_codec.clone(),
            timescale: scan.timescale,
            ..row(start)
        };
        let e = IndexEntry::of(&r);
        let key = format!(
            "gw/{}{}",
            hour_index::day_folder("", "media", start),
            e.name
        );
        keys.insert(start / 1_000_000, key.clone());
        puts.push((key, bytes.clone()));
        by_hour
            .entry(hour_index::hour_of(start))
            .or_default()
            .push(e);
    }
    for (h, segments) in by_hour {
        let doc = HourIndex {
            version: hour_index::VERSION,
            camera: "media".into(),
            hour: hour_index::hour_label(h),
            segments,
        };
        let key = hour_index::index_key("gw", "media", h).to_string();
        puts.push((key, serde_json::to_vec(&doc).unwrap()));
    }
    for (k, b) in puts {
        rt.block_on(store.put(&object_store::path::Path::from(k), PutPayload::from(b)))
            .unwrap();
    }
    Media {
        t0: t_media,
        copies,
        dur,
        fragments: scan.fragments.len(),
        keys,
    }
}

/// Media through `serve` next to the same bytes straight from the store with signed URLs, over
/// the copies [`put_media`] wrote. Every fragment of the HLS playlist over them is fetched, one
/// request at a time on a new connection each: `media/<id>.mp4` with its byte range from
/// `serve`, and the same byte range of the object from a presigned S3 URL (what a player would
/// fetch if manifests pointed into the store).
fn media_vs_signed(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    http_port: u16,
    m: &Media,
    counters: &edgerec::cloud::catalog::StoreCounters,
) {
    let Media {
        t0: t_media,
        copies,
        dur,
        ref keys,
        ..
    } = *m;
    // The playlist's fragments: (media id, first byte, last byte).
    let m3u8 = format!(
        "/gw/media/content.ism/manifest(format=m3u8-aapl,startTime={},endTime={}).m3u8",
        format_full(t_media),
        format_full(t_media + copies * dur)
    );
    let (st, body, _) = request(http_port, &m3u8, None);
    assert_eq!(st, 200, "{m3u8}");
    let mut frags = Vec::new();
    let mut range = None;
    for line in String::from_utf8(body).unwrap().lines() {
        if let Some(r) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            let (n, o) = r.split_once('@').unwrap();
            let (n, o): (u64, u64) = (n.parse().unwrap(), o.parse().unwrap());
            range = Some((o, o + n - 1));
        } else if let (Some(id), Some((a, b))) = (line.strip_prefix("media/"), range.take()) {
            let id: i64 = id.trim_end_matches(".mp4").parse().unwrap();
            frags.push((id, a, b));
        }
    }
    let fragments_expected: usize = copies as usize * m.fragments;
    assert_eq!(
        frags.len(),
        fragments_expected,
        "one playlist entry per fragment"
    );

    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name("fleet")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let store_port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let (mut via_serve, mut via_url, mut differ) = (Vec::new(), Vec::new(), 0);
    let (mut cold, mut bytes_total) = (0.0, 0u64);
    let passes = 3;
    let ranged = || {
        counters
            .range_gets
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let mut warm_gets = 0;
    for pass in 0..passes {
        let before = ranged();
        for &(id, a, b) in &frags {
            let path = format!("/gw/media/content.ism/media/{id}.mp4");
            let (st, served, secs) = request(http_port, &path, Some((a, b)));
            assert_eq!(st, 206, "{path}");
            assert_eq!(served.len() as u64, b - a + 1);
            // Signing is the server's work in either design, not the fetch's: done untimed.
            let key = object_store::path::Path::from(keys[&(id / 1_000_000)].as_str());
            let url = rt
                .block_on(object_store::signer::Signer::signed_url(
                    &s3,
                    object_store::signer::Method::GET,
                    &key,
                    Duration::from_secs(600),
                ))
                .unwrap();
            let path_q = format!("{}?{}", url.path(), url.query().unwrap_or(""));
            let (st, raw, usecs) = request(store_port, &path_q, Some((a, b)));
            assert_eq!(st, 206, "presigned GET");
            assert_eq!(raw.len(), served.len());
            if pass == 0 {
                cold += secs;
                bytes_total += raw.len() as u64;
                differ += usize::from(raw != served);
            } else {
                via_serve.push(secs);
                via_url.push(usecs);
            }
        }
        if pass > 0 {
            warm_gets += ranged() - before;
        }
    }
    let (sum_s, sum_u): (f64, f64) = (via_serve.iter().sum(), via_url.iter().sum());
    let mbps = |secs: f64| (passes - 1) as f64 * bytes_total as f64 * 8.0 / secs / 1e6;
    println!(
        "\nmedia: {} fragments ({} segments of {:.1} s, {:.1} MB), each fetched {} times after a first (cold) pass of {:.2} s through serve",
        frags.len(),
        copies,
        dur as f64 / 1e9,
        bytes_total as f64 / 1e6,
        passes - 1,
        cold
    );
    println!(
        "\n| media path | p50 per fragment | p99 | throughput | ratio to the signed URL (p50) |"
    );
    println!("|---|---|---|---|---|");
    let (s50, s99) = (pct(&mut via_serve.clone(), 0.5), pct(&mut via_serve, 0.99));
    let (u50, u99) = (pct(&mut via_url.clone(), 0.5), pct(&mut via_url, 0.99));
    println!(
        "| serve media/<id>.mp4 | {:.2} ms | {:.2} ms | {:.0} Mbit/s | {:.2} |",
        s50 * 1e3,
        s99 * 1e3,
        mbps(sum_s),
        s50 / u50
    );
    println!(
        "| presigned S3 URL, same byte range | {:.2} ms | {:.2} ms | {:.0} Mbit/s | 1.00 |",
        u50 * 1e3,
        u99 * 1e3,
        mbps(sum_u)
    );
    println!(
        "fragments whose bytes differ between the two (serve adds the segment's base to tfdt): {differ} of {}",
        frags.len()
    );
    println!(
        "serve's ranged GETs to the store per fragment request (after the first pass): {:.2}",
        warm_gets as f64 / via_serve.len() as f64
    );
}

fn main() {
    let days = env_or("BENCH_DAYS", 31) as i64;
    let runs = env_or("BENCH_RUNS", 20);
    let port = free_port();
    let mut moto = Command::new(venv("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("curl")
        .args(["-s", "-X", "PUT", &format!("{endpoint}/fleet")])
        .status()
        .unwrap();
    let cfg = UploadConfig {
        target: UploadTarget::S3 {
            bucket: "fleet".into(),
        },
        prefix: String::new(),
        endpoint: Some(endpoint.clone()),
        region: None,
        path_style: true,
        s3_credentials: Some(("testing".into(), "testing".into())),
        azure_account: None,
        max_rate_kbps: 0,
        multipart_threshold_bytes: 16 << 20,
    };
    let store = edgerec::upload::target::build(&cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // One camera-month, uploaded as gateways do: one object per segment, the hour index
    // objects beside them.
    let t0 = 1_790_812_800 * S; // 2026-10-01T00:00:00Z
    let n = (days * 86_400 * S / SEG) as usize;
    let started = Instant::now();
    let mut by_hour: std::collections::BTreeMap<i64, Vec<IndexEntry>> = Default::default();
    let mut puts = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let r = row(t0 + i * SEG);
        let e = IndexEntry::of(&r);
        puts.push((
            format!(
                "gw/{}{}",
                hour_index::day_folder("", "cam", r.start_utc_ns),
                e.name
            ),
            vec![0u8; OBJECT_BYTES],
        ));
        by_hour
            .entry(hour_index::hour_of(r.start_utc_ns))
            .or_default()
            .push(e);
    }
    for (h, segments) in by_hour {
        let key = hour_index::index_key("gw", "cam", h).to_string();
        let doc = HourIndex {
            version: hour_index::VERSION,
            camera: "cam".into(),
            hour: hour_index::hour_label(h),
            segments,
        };
        puts.push((key, serde_json::to_vec(&doc).unwrap()));
    }
    let objects = puts.len();
    rt.block_on(
        stream::iter(puts.into_iter().map(|(k, b)| {
            let store = store.clone();
            async move {
                store
                    .put(&object_store::path::Path::from(k), PutPayload::from(b))
                    .await
            }
        }))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>(),
    )
    .unwrap();
    println!(
        "store: {objects} objects ({n} segments of 30 s over {days} days, {} hour index objects) put in {:.0} s",
        objects - n,
        started.elapsed().as_secs_f64()
    );

    let copies = env_or("BENCH_MEDIA_SEGMENTS", 40) as i64;
    let media = put_media(&rt, &store, t0 + days * 86_400 * S, copies);

    // The server: listings are not reused between requests (TTL 0), so every request lists
    // what it needs; index objects are kept by ETag (they are immutable until rewritten).
    let cloud = CloudStore::new(
        store.clone(),
        "",
        rt.handle().clone(),
        Duration::ZERO,
        256 << 20,
    );
    let state = Arc::new(CloudState::new(cloud, None));
    let http_port = free_port();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", http_port)))
        .unwrap();
    let app = router(state.clone());
    rt.spawn(async move { axum::serve(listener, app).await });

    let day = |d: i64| format_full(t0 + d * 86_400 * S)[..10].to_owned();
    let mid = t0 + (days / 2) * 86_400 * S;
    let base = "/gw/cam/content.ism";
    let cases: Vec<(&str, String, i64, i64)> = vec![
        (
            "availableMedia day, 31 days",
            format!(
                "{base}/availableMedia?precision=day&startTime={}&endTime={}",
                day(0),
                day(days - 1)
            ),
            t0,
            t0 + days * 86_400 * S,
        ),
        (
            "availableMedia full, 25 h",
            format!(
                "{base}/availableMedia?precision=full&startTime={}&endTime={}",
                format_full(mid),
                format_full(mid + 25 * 3600 * S)
            ),
            mid,
            mid + 25 * 3600 * S,
        ),
        (
            "HLS manifest, 24 h",
            format!(
                "{base}/manifest(format=m3u8-aapl,startTime={},endTime={}).m3u8",
                format_full(mid),
                format_full(mid + 24 * 3600 * S)
            ),
            mid,
            mid + 24 * 3600 * S,
        ),
    ];
    println!(
        "\n| request | serve p50 | serve p99 | first | serve listings per answer | day folders listed by the peers | list (object_store) p50 | list (aws s3api) p50 | serve p50 / list p50 | serve p50 / aws p50 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, path, from, to) in &cases {
        let mut t = Vec::new();
        let lists = || {
            state
                .store
                .counters
                .lists
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let lists_before = lists();
        for _ in 0..runs {
            let (st, len, secs) = get(http_port, path);
            assert_eq!(st, 200, "{path}");
            assert!(len > 10);
            t.push(secs);
        }
        let serve_lists = (lists() - lists_before) as f64 / runs as f64;
        let first = t[0];
        let (p50, p99) = (pct(&mut t.clone(), 0.5), pct(&mut t, 0.99));
        // The same key range, plainly listed: the day folders the range touches.
        let (d0, d1) = ((from - t0) / (86_400 * S), (to - 1 - t0) / (86_400 * S));
        let prefixes: Vec<String> = (d0..=d1)
            .map(|d| hour_index::day_folder("gw", "cam", t0 + d * 86_400 * S))
            .collect();
        // The peers are slow to run (a month of keys): five samples each.
        let mut l = Vec::new();
        for _ in 0..runs.min(5) {
            let t = Instant::now();
            let mut keys = 0;
            for p in &prefixes {
                let v: Vec<_> = rt
                    .block_on(
                        store
                            .list(Some(&object_store::path::Path::from(p.as_str())))
                            .try_collect::<Vec<_>>(),
                    )
                    .unwrap();
                keys += v.len();
            }
            assert!(keys > 0);
            l.push(t.elapsed().as_secs_f64());
        }
        let lp50 = pct(&mut l, 0.5);
        let mut a = Vec::new();
        for _ in 0..runs.min(5) {
            let t = Instant::now();
            for p in &prefixes {
                let out = Command::new(venv("aws"))
                    .args(["--endpoint-url", &endpoint, "s3api", "list-objects-v2"])
                    .args(["--bucket", "fleet", "--prefix", p])
                    .args(["--query", "KeyCount", "--output", "text"])
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .output()
                    .unwrap();
                assert!(out.status.success());
            }
            a.push(t.elapsed().as_secs_f64());
        }
        let ap50 = pct(&mut a, 0.5);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {serve_lists:.1} | {} | {:.1} ms | {:.1} ms | {:.2} | {:.2} |",
            p50 * 1e3,
            p99 * 1e3,
            first * 1e3,
            prefixes.len(),
            lp50 * 1e3,
            ap50 * 1e3,
            p50 / lp50,
            p50 / ap50
        );
    }
    media_vs_signed(&rt, &endpoint, http_port, &media, &state.store.counters);

    let c = &state.store.counters;
    println!(
        "\nserve store requests in all: {} listings, {} GETs",
        c.lists.load(std::sync::atomic::Ordering::Relaxed),
        c.gets.load(std::sync::atomic::Ordering::Relaxed)
    );

    // Gateway side: storage transactions per camera-hour under the uploader's rule.
    println!(
        "\n| segment length | segment PUTs per camera-hour | index PUTs per camera-hour | growth |"
    );
    println!("|---|---|---|---|");
    for seg_s in [30i64, 60, 120, 300] {
        let mut b = Batcher::default();
        let (mut segs, mut index) = (0u64, 0u64);
        let hours = 24 * 7;
        for i in 0..(hours * 3600 / seg_s) {
            b.add("cam", IndexEntry::of(&row(t0 + i * seg_s * S)));
            segs += 1;
            if b.due("cam") {
                for w in b.take("cam") {
                    let merged = HourIndex::merged(w.base.unwrap_or_default(), &w.new);
                    b.written("cam", w.hour, merged);
                    index += 1;
                }
            }
        }
        println!(
            "| PT{seg_s}S | {:.1} | {:.2} | {:.1} % |",
            segs as f64 / hours as f64,
            index as f64 / hours as f64,
            index as f64 * 100.0 / segs as f64
        );
    }
    let _ = moto.kill();
    let _ = moto.wait();
}
