//! The cloud side end to end (docs/cloud.md): real gateways record from the RTSP test camera and
//! upload to real stores (moto's S3 server, Azurite, a directory); `edgerec serve` then answers
//! from the store alone, with the gateways stopped and their cards deleted, and ffmpeg, hls.js
//! and dash.js play what it serves.

mod common;

use std::time::Duration;

use common::cloud::{gateway, s3_lines, Serve};
use common::stores::{Azurite, Moto, Proxy, AZURITE_ACCOUNT, AZURITE_KEY};
use common::*;
use edgerec::index::SegmentRow;

/// A light camera: 640x360 at 1 Mbit/s, one encoder per client (two gateways read it).
const CAM: &[&str] = &[
    "--width",
    "640",
    "--height",
    "360",
    "--bitrate",
    "1000",
    "--unshared",
];
/// 30-second segments, a card big enough not to evict.
const STORAGE: &str = "segment_length = \"PT30S\"\nmax_size_mib = 200\nmin_free_mib = 0";
/// Frames per second of the test camera.
const FPS: i64 = 25;

fn frames_of(rows: &[SegmentRow]) -> usize {
    let ns: i64 = rows.iter().map(|r| r.duration_ns).sum();
    ((ns as f64) / (1e9 / FPS as f64)).round() as usize
}

fn manifest(fmt: &str, from: i64, to: i64) -> String {
    let ext = if fmt == "m3u8-aapl" { "m3u8" } else { "mpd" };
    format!(
        "manifest(format={fmt},startTime={},endTime={}).{ext}",
        iso_ns(from),
        iso_ns(to)
    )
}

fn available(base: &str, precision: &str, s: &str, e: &str) -> String {
    format!("{base}/availableMedia?precision={precision}&startTime={s}&endTime={e}")
}

/// The year, month and day answers for media that lies within one day.
fn assert_units(serve: &Serve, base: &str, t: i64) {
    let day = &iso_ns(t)[..10];
    let (year, month) = (&day[..4], &day[..7]);
    let one = |s: &str| serde_json::json!({"timeRanges": [{"start": s, "end": s}]});
    assert_eq!(
        serve.json(&format!("{base}/availableMedia?precision=year")),
        one(year)
    );
    assert_eq!(
        serve.json(&available(base, "month", month, month)),
        one(month)
    );
    assert_eq!(serve.json(&available(base, "day", day, day)), one(day));
}

#[test]
fn two_gateways_play_from_the_cloud_after_their_cards_are_gone() {
    let moto = Moto::start("fleet");
    let cam = TestCam::start(CAM);
    let devices = ["gw-a", "gw-b"];
    let upload = s3_lines("s3://fleet/site/{device_id}", moto.port);
    let sites: Vec<Site> = devices
        .iter()
        .map(|d| gateway(d, STORAGE, &[("lot", cam.url(), "")], &upload))
        .collect();
    let recs: Vec<Recorder> = sites.iter().map(Recorder::start).collect();
    wait_for(
        Duration::from_secs(150),
        "two segments uploaded by each gateway",
        || sites.iter().all(|s| s.uploaded().len() >= 2),
    );
    // What each gateway answers for what it uploaded, while it still has its card.
    let mut expect = Vec::new();
    for s in &sites {
        let up = s.uploaded();
        let (from, to) = (up[0].start_utc_ns, up[up.len() - 1].end_utc_ns());
        let am = get_json(
            s,
            &available("/lot/content.ism", "full", &iso_ns(from), &iso_ns(to)),
        );
        assert_eq!(am["timeRanges"].as_array().unwrap().len(), 1, "{am}");
        expect.push((from, to, frames_of(&up), am));
    }
    for r in recs {
        assert!(r.terminate().0);
    }
    // The cards are gone: everything below comes from the store.
    for s in &sites {
        std::fs::remove_dir_all(s.store()).unwrap();
    }
    let store = s3_lines("s3://fleet/site", moto.port);
    let (a, b) = (Serve::start(&store, ""), Serve::start(&store, ""));
    assert_eq!(
        a.json("/api/devices"),
        serde_json::json!({"devices": [{"id": "gw-a"}, {"id": "gw-b"}]})
    );
    for (dev, (from, to, frames, am)) in devices.iter().zip(&expect) {
        let base = format!("/{dev}/lot/content.ism");
        // availableMedia: the gateway's own answer, at full precision, and the unit answers.
        let full = available(&base, "full", &iso_ns(*from), &iso_ns(*to));
        assert_eq!(a.json(&full), *am, "{dev}");
        assert_units(&a, &base, *from);
        let cams = a.json(&format!("/api/devices/{dev}/cameras"));
        let c = &cams["cameras"][0];
        assert_eq!(c["id"], "lot", "{cams}");
        assert!(c["firstMediaTime"].as_str().unwrap() <= iso_ns(*from).as_str());
        assert!(c["bytesStored"].as_u64().unwrap() > 1_000_000, "{cams}");
        // Manifests: byte-identical from both replicas, and ffmpeg decodes every frame.
        for fmt in ["m3u8-aapl", "mpd-time-cmaf"] {
            let path = format!("{base}/{}", manifest(fmt, *from, *to));
            let (sa, ma) = a.get(&path);
            let (sb, mb) = b.get(&path);
            assert_eq!((sa, sb), (200, 200), "{path}: {ma}");
            assert_eq!(ma, mb, "{path}: the replicas differ");
            let (n, err) = ffmpeg_frames(&a.url(&path));
            assert_eq!(n, *frames, "{dev} {fmt}: {err}");
            assert!(err.trim().is_empty(), "{dev} {fmt}: {err}");
        }
    }
    // MP4 export from the cloud: every frame of gateway B's range in one file.
    let (from, to, frames, _) = &expect[1];
    let (st, _, body) = http_get(
        ("127.0.0.1", a.port),
        &format!(
            "/gw-b/lot/content.ism/export.mp4?startTime={}&endTime={}",
            iso_ns(*from),
            iso_ns(*to)
        ),
        &[],
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    let (n, err) = ffmpeg_frames(&file.path().display().to_string());
    assert_eq!(n, *frames, "export: {err}");
    // Real players in a browser, from the cloud.
    let work = tempfile::tempdir().unwrap();
    let (from, to, _, _) = expect[0];
    for (lib, fmt) in [("hls", "m3u8-aapl"), ("dash", "mpd-time-cmaf")] {
        let url = a.url(&format!(
            "/gw-a/lot/content.ism/{}",
            manifest(fmt, from, to)
        ));
        common::browser::browser_play(lib, &url, &work.path().join(format!("{lib}.png")));
    }
    // Bad input: JSON errors, and the server goes on.
    let (st, body) = a.get("/gw-a/lot/content.ism/availableMedia?precision=week");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("InvalidPrecision"), "{body}");
    assert_eq!(a.get("/gw-a/nosuch/content.ism/availableMedia").0, 404);
    assert_eq!(a.get("/gw-a/lot/content.ism/media/12x.mp4").0, 400);
    assert_eq!(a.get("/gw%2Fa/lot/content.ism/availableMedia").0, 400);
    assert_eq!(a.get("/healthz").0, 200);
}

/// The seeds' overflow scenario (seed 000, "resilient recording"): the uplink fails, the card
/// fills and the oldest segment not uploaded is evicted, the uplink returns. The cloud shows
/// exactly the evicted span as a gap, and a manifest across it has a discontinuity.
#[test]
fn media_evicted_before_upload_is_a_gap_in_the_cloud() {
    let moto = Moto::start("fleet");
    let mut proxy = Proxy::start(moto.port, 0);
    // About 15 MB per segment: a 40 MiB card holds two and a half.
    let cam = TestCam::start(&["--pattern", "snow", "--bitrate", "4000"]);
    let site = gateway(
        "gw-o",
        "segment_length = \"PT30S\"\nmax_size_mib = 40\nmin_free_mib = 0",
        &[("cam", cam.url(), "")],
        &s3_lines("s3://fleet/{device_id}", proxy.port),
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "a first upload", || {
        !site.uploaded().is_empty()
    });
    proxy.stop(); // the uplink fails
    let mut seen: Vec<SegmentRow> = Vec::new();
    let mut evicted: Vec<SegmentRow> = Vec::new();
    wait_for(
        Duration::from_secs(200),
        "a segment evicted before its upload",
        || {
            let now = site.complete();
            for s in &seen {
                if s.uploaded_utc_ns.is_none()
                    && !now.iter().any(|n| n.id == s.id)
                    && !evicted.iter().any(|e| e.id == s.id)
                {
                    evicted.push(s.clone());
                }
            }
            for n in now {
                match seen.iter_mut().find(|s| s.id == n.id) {
                    Some(s) => *s = n,
                    None => seen.push(n),
                }
            }
            !evicted.is_empty()
        },
    );
    let evicted_from = evicted.iter().map(|e| e.start_utc_ns).min().unwrap();
    let evicted_to = evicted.iter().map(|e| e.end_utc_ns()).max().unwrap();
    proxy.restart(); // the uplink returns
    wait_for(
        Duration::from_secs(120),
        "an upload of media after the evicted span",
        || site.uploaded().iter().any(|s| s.start_utc_ns >= evicted_to),
    );
    let up = site.uploaded();
    assert!(rec.terminate().0);
    // From the first segment recorded (uploaded, then evicted as the card filled).
    let first = seen.iter().map(|s| s.start_utc_ns).min().unwrap();
    let last = up.iter().map(|s| s.end_utc_ns()).max().unwrap();
    let serve = Serve::start(&s3_lines("s3://fleet", moto.port), "");
    let base = "/gw-o/cam/content.ism";
    let am = serve.json(&available(base, "full", &iso_ns(first), &iso_ns(last)));
    let spans = am["timeRanges"].as_array().unwrap();
    let t = |v: &serde_json::Value| {
        edgerec::playback::time::parse_datetime(v.as_str().unwrap()).unwrap()
    };
    // The gap that holds the evicted span: within one segment of it.
    let gap = spans
        .windows(2)
        .map(|w| (t(&w[0]["end"]), t(&w[1]["start"])))
        .find(|(a, b)| *a <= evicted_to && *b >= evicted_from)
        .unwrap_or_else(|| {
            panic!(
                "no gap over the evicted span {}..{}: {am}",
                iso_ns(evicted_from),
                iso_ns(evicted_to)
            )
        });
    let seg = 30_000_000_000;
    assert!(
        (gap.0 - evicted_from).abs() <= seg && (gap.1 - evicted_to).abs() <= seg,
        "gap {}..{}, evicted {}..{}",
        iso_ns(gap.0),
        iso_ns(gap.1),
        iso_ns(evicted_from),
        iso_ns(evicted_to)
    );
    // Exactly: the evicted segments are the gap (nothing else went missing).
    assert_eq!(
        (gap.0, gap.1),
        (
            evicted_from / 1_000_000 * 1_000_000,
            evicted_to / 1_000_000 * 1_000_000
        )
    );
    // A manifest across the gap marks the discontinuity and plays both sides.
    let path = format!(
        "{base}/{}",
        manifest("m3u8-aapl", gap.0 - 10_000_000_000, gap.1 + 10_000_000_000)
    );
    let (st, m) = serve.get(&path);
    assert_eq!(st, 200, "{m}");
    assert_eq!(m.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{m}");
    let (n, err) = ffmpeg_frames(&serve.url(&path));
    assert!(n as i64 >= 19 * FPS, "{n} frames: {err}");
}

/// A backlog of 24 segments goes up after a long outage: the uploader writes hour index objects
/// (at most one per ten segments), `serve` reads what they list without reading the segments,
/// and `edgerec cloud-index` indexes the rest (as it does uploads from before index objects);
/// the answers are the same bytes either way. The store is a directory (a mounted share).
#[test]
fn index_objects_spare_the_cloud_reading_segments() {
    let share = tempfile::tempdir().unwrap();
    std::fs::create_dir(share.path().join("gw-d")).unwrap();
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--bitrate", "500"]);
    // One real segment, recorded without upload.
    let site = gateway(
        "gw-d",
        STORAGE,
        &[("cam", cam.url(), "")],
        &format!("url = \"file://{}/{{device_id}}\"", share.path().display()),
    );
    let text = std::fs::read_to_string(&site.config).unwrap();
    let (head, up) = text.split_once("[upload]").unwrap();
    std::fs::write(&site.config, head).unwrap();
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "a complete segment", || {
        !site.complete().is_empty()
    });
    assert!(rec.terminate().0);
    let seg = site.complete().remove(0);
    let media = std::fs::read(site.store().join(&seg.path)).unwrap();
    // A backlog of copies of it, back to back, across an hour boundary, a day in the past.
    let hour = 3_600_000_000_000i64;
    let t0 = (seg.start_utc_ns / hour - 24) * hour - 6 * seg.duration_ns;
    for f in site.media_files() {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_file(site.index_path()).unwrap();
    for k in 0..24 {
        let start = t0 + k * seg.duration_ns;
        let rel = edgerec::store::layout::segment_rel_path("cam", start);
        let p = site.store().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &media).unwrap();
    }
    let (ok, out) = site.fsck(&["--rebuild"]);
    assert!(ok, "{out}");
    // The camera is off; only the uploader works, through the backlog.
    let text = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("[[camera]]", "[[camera]]\nenabled = false");
    std::fs::write(&site.config, format!("{text}[upload]{up}")).unwrap();
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "the backlog uploaded", || {
        site.uploaded().len() == 24
    });
    let (_, _, m) = http_get(("127.0.0.1", site.http_port), "/metrics", &[]);
    let m = String::from_utf8_lossy(&m).into_owned();
    let index_puts: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("edgerec_upload_index_objects_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rec.terminate().0);
    // At most one index write per ten segments, and some were written.
    assert!(
        (1.0..=2.4).contains(&index_puts),
        "{index_puts} index objects"
    );
    let rows = site.uploaded();
    let (from, to) = (rows[0].start_utc_ns, rows[23].end_utc_ns());
    let store = format!("url = \"file://{}\"", share.path().display());
    let path = format!("/gw-d/cam/content.ism/{}", manifest("m3u8-aapl", from, to));
    let serve = Serve::start(&store, "");
    let (st, before) = serve.get(&path);
    assert_eq!(st, 200, "{before}");
    let (_, gets) = serve.store_requests();
    // Index objects for the two hours, and each segment they do not list read once.
    let unindexed = 24 - (index_puts as usize * 10).min(24);
    assert!(
        gets as usize <= 2 + unindexed + 1,
        "{gets} GETs, {unindexed} segments not indexed"
    );
    let r = std::process::Command::new(EDGEREC)
        .args(["cloud-index", "--config"])
        .arg(serve.log.parent().unwrap().join("cloud.toml"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(
        report["indexed"].as_u64(),
        Some(unindexed as u64),
        "{report}"
    );
    // A fresh server reads two index objects and no segment, and answers the same bytes; it
    // wants a token, as a gateway with a token file does, and carries it into media URLs.
    let fresh = Serve::start_with(&store, "", Some("s3cret"));
    assert_eq!(fresh.get(&path).0, 401);
    assert_eq!(fresh.get("/healthz").0, 200);
    let (st, after) = fresh.get(&format!("{path}?token=s3cret"));
    assert_eq!(st, 200, "{after}");
    assert!(after.contains(".mp4?token=s3cret"), "{after}");
    let after = after.replace("?token=s3cret", "");
    assert_eq!(before, after);
    let (_, gets) = Serve::store_requests_with(&fresh, "s3cret");
    assert_eq!(gets, 2.0);
    let (n, err) = ffmpeg_frames(&fresh.url(&format!("{path}?token=s3cret")));
    assert_eq!(n, frames_of(&rows), "{err}");
    assert!(err.trim().is_empty(), "{err}");
    // The manifest is one period (the copies continue each other), across the hour.
    assert!(!after.contains("#EXT-X-DISCONTINUITY\n"), "{after}");
}

/// Azure Blob Storage (Azurite): a gateway uploads, `serve` reads the container.
#[test]
fn serve_reads_azure_blob_storage() {
    let az = Azurite::start();
    az.python("svc.create_container('fleet')");
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--bitrate", "500"]);
    let lines = |url: &str| {
        format!(
            "url = \"{url}\"\nendpoint = \"{}\"\naccount = \"{AZURITE_ACCOUNT}\"\naccess_key = \"{AZURITE_KEY}\"",
            az.endpoint()
        )
    };
    let site = gateway(
        "gw-z",
        STORAGE,
        &[("cam", cam.url(), "")],
        &lines("az://fleet/{device_id}"),
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "an upload to Azurite", || {
        !site.uploaded().is_empty()
    });
    let up = site.uploaded();
    assert!(rec.terminate().0);
    let serve = Serve::start(&lines("az://fleet"), "");
    let (from, to) = (up[0].start_utc_ns, up[up.len() - 1].end_utc_ns());
    let base = "/gw-z/cam/content.ism";
    let am = serve.json(&available(base, "full", &iso_ns(from), &iso_ns(to)));
    assert_eq!(
        am,
        serde_json::json!({"timeRanges": [{"start": iso_ns(from), "end": iso_ns(to)}]})
    );
    let path = format!("{base}/{}", manifest("mpd-time-cmaf", from, to));
    let (n, err) = ffmpeg_frames(&serve.url(&path));
    assert_eq!(n, frames_of(&up), "{err}\n{}", serve.log_text());
}
