//! Upload to real object stores started here on 127.0.0.1: moto's S3 server behind a proxy that
//! throttles some PUTs with 503 SlowDown and can be cut (an uplink outage), Azurite, and a
//! mounted directory. Objects are compared byte for byte with the segment files.

mod common;

use std::time::Duration;

use common::stores::{Azurite, Moto, Proxy, AZURITE_ACCOUNT, AZURITE_KEY};
use common::*;
use edgerec::index::SegmentRow;

const SMALL: &[&str] = &["--width", "320", "--height", "240", "--bitrate", "500"];

fn upload_site(cam: &TestCam, storage: &str, upload: &str) -> Site {
    let site = Site::new(storage, &[("cam", cam.url(), "")]);
    let mut text = std::fs::read_to_string(&site.config).unwrap();
    text += &format!("[upload]\n{upload}\n");
    std::fs::write(&site.config, text).unwrap();
    site
}

fn metric(site: &Site, name: &str) -> f64 {
    let (code, _, body) = http_get(("127.0.0.1", site.http_port), "/metrics", &[]);
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

fn key_of(prefix: &str, s: &SegmentRow) -> String {
    edgerec::upload::target::object_key(prefix, s).to_string()
}

/// Uploads happened in start order (oldest first), each once.
fn assert_oldest_first(rows: &[SegmentRow]) {
    let times: Vec<i64> = rows.iter().map(|s| s.uploaded_utc_ns.unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "uploads out of start order: {times:?}"
    );
}

#[test]
fn s3_through_an_outage_and_throttling() {
    let moto = Moto::start("edge");
    let mut proxy = Proxy::start(moto.port, 2);
    let cam = TestCam::start(SNOW_4M); // about 15 MB per segment: multipart uploads
    let site = upload_site(
        &cam,
        "max_size_mib = 200\nmin_free_mib = 0",
        &format!(
            "url = \"s3://edge/site-a\"\nendpoint = \"http://127.0.0.1:{}\"\npath_style = true\n\
             region = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing-secret\"\n\
             multipart_threshold_mib = 5",
            proxy.port
        ),
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "a first upload", || {
        !site.uploaded().is_empty()
    });
    assert_eq!(metric(&site, "edgerec_upload_online"), 1.0);

    // 60 s without uplink: segments wait on the card.
    proxy.stop();
    std::thread::sleep(Duration::from_secs(60));
    assert_eq!(
        metric(&site, "edgerec_upload_online"),
        0.0,
        "{}",
        rec.log_text()
    );
    assert!(metric(&site, "edgerec_upload_backlog_segments") >= 1.0);
    assert!(metric(&site, "edgerec_upload_oldest_pending_age_seconds") > 0.0);
    proxy.restart();
    wait_for(Duration::from_secs(120), "the backlog uploaded", || {
        let c = site.complete();
        c.len() >= 3 && c.iter().all(|s| s.uploaded_utc_ns.is_some())
    });
    let log = rec.log.clone();
    let (ok, _) = rec.terminate();
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(ok, "{log}");
    assert!(
        !log.contains("testing-secret"),
        "credentials must never be logged"
    );

    let rows = site.uploaded();
    assert!(rows.len() >= 3);
    assert_oldest_first(&rows);
    let keys = moto.keys("edge");
    assert_eq!(keys.len(), rows.len(), "one object per segment: {keys:?}");
    for s in &rows {
        let key = key_of("site-a", s);
        assert!(
            key.starts_with("site-a/cam/")
                && key.ends_with(&format!("_{}.mp4", s.duration_ns / 1_000_000)),
            "{key}"
        );
        assert!(
            s.size_bytes > 5 << 20,
            "{key} is too small to test multipart"
        );
        let (body, headers) = moto.get("edge", &key);
        let local = std::fs::read(site.store().join(&s.path)).unwrap();
        assert!(body == local, "{key}: object differs from {}", s.path);
        assert_eq!(headers["ContentType"], "video/mp4", "{headers}");
        assert_eq!(headers["Metadata"]["camera"], "cam", "{headers}");
        assert_eq!(headers["Metadata"]["codec"], "avc1", "{headers}");
        assert_eq!(
            headers["Metadata"]["durationms"],
            (s.duration_ns / 1_000_000).to_string(),
            "{headers}"
        );
    }
    assert!(
        proxy.slowdowns() > 0,
        "the proxy should have throttled some PUTs"
    );
}

#[test]
fn overflow_evicts_the_oldest_unuploaded_and_resumes_from_the_oldest_left() {
    let moto = Moto::start("edge");
    let mut proxy = Proxy::start(moto.port, 0);
    proxy.stop(); // the uplink is down from the start
    let cam = TestCam::start(SNOW_4M);
    let site = upload_site(
        &cam,
        "max_size_mib = 40\nmin_free_mib = 0",
        &format!(
            "url = \"s3://edge/site-b\"\nendpoint = \"http://127.0.0.1:{}\"\npath_style = true\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"",
            proxy.port
        ),
    );
    let rec = Recorder::start(&site);
    let mut evicted: Vec<(String, i64)> = Vec::new();
    let mut seen: Vec<SegmentRow> = Vec::new();
    wait_for(
        Duration::from_secs(200),
        "an eviction before upload",
        || {
            let now = site.complete();
            for s in &seen {
                if !now.iter().any(|n| n.path == s.path) && !evicted.iter().any(|e| e.0 == s.path) {
                    evicted.push((s.path.clone(), s.start_utc_ns));
                }
            }
            for n in now {
                if !seen.iter().any(|s| s.path == n.path) {
                    seen.push(n);
                }
            }
            !evicted.is_empty()
        },
    );
    // The writer counts and logs an eviction just after it dropped the rows: wait for it.
    wait_for(Duration::from_secs(10), "the loss counted", || {
        metric(
            &site,
            "edgerec_camera_evicted_unuploaded_bytes_total{camera=\"cam\"}",
        ) > 0.0
    });
    assert!(
        metric(
            &site,
            "edgerec_camera_evicted_unuploaded_seconds_total{camera=\"cam\"}"
        ) > 20.0
    );
    wait_for(
        Duration::from_secs(10),
        "the loss logged with its range",
        || rec.log_text().contains("uploaded=false"),
    );
    // The uplink returns: upload starts from the oldest segment still on the card.
    let oldest_left = site
        .complete()
        .iter()
        .map(|s| s.start_utc_ns)
        .min()
        .unwrap();
    proxy.restart();
    wait_for(Duration::from_secs(90), "uploads after the outage", || {
        !site.uploaded().is_empty()
    });
    let (ok, _) = rec.terminate();
    assert!(ok);
    let rows = site.uploaded();
    assert_oldest_first(&rows);
    let first = rows.iter().min_by_key(|s| s.uploaded_utc_ns).unwrap();
    assert!(
        first.start_utc_ns <= oldest_left,
        "the first upload after the outage must be the oldest segment left"
    );
    let newest_evicted = evicted.iter().map(|e| e.1).max().unwrap();
    let keys = moto.keys("edge");
    for k in &keys {
        // Nothing evicted was uploaded: every object starts after the newest evicted segment.
        let stem = k.rsplit('/').next().unwrap().split('_').next().unwrap();
        let t = edgerec::store::layout::parse_segment_name(&format!("{stem}.mp4")).unwrap();
        assert!(t > newest_evicted, "{k} is older than an evicted segment");
    }
}

#[test]
fn azure_blob_storage_via_azurite() {
    let az = Azurite::start();
    az.python("svc.create_container('edge')");
    let cam = TestCam::start(SMALL);
    let site = upload_site(
        &cam,
        "max_size_mib = 200\nmin_free_mib = 0",
        &format!(
            "url = \"az://edge/site-c\"\nendpoint = \"{}\"\naccount = \"{AZURITE_ACCOUNT}\"\naccess_key = \"{AZURITE_KEY}\"",
            az.endpoint()
        ),
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "an upload to Azurite", || {
        !site.uploaded().is_empty()
    });
    let log = rec.log.clone();
    let (ok, _) = rec.terminate();
    assert!(ok, "{}", std::fs::read_to_string(log).unwrap_or_default());
    for s in site.uploaded() {
        let key = key_of("site-c", &s);
        let out = az.python(&format!(
            "b = svc.get_blob_client('edge', {key:?})\np = b.get_blob_properties()\n\
             print(hashlib.sha256(b.download_blob().readall()).hexdigest(), p.content_settings.content_type, p.metadata.get('camera'))"
        ));
        let local = std::fs::read(site.store().join(&s.path)).unwrap();
        let want = sha256_hex(&local);
        assert_eq!(out.trim(), format!("{want} video/mp4 cam"), "{key}");
    }
}

#[test]
fn mounted_share() {
    let share = tempfile::tempdir().unwrap();
    let cam = TestCam::start(SMALL);
    let site = upload_site(
        &cam,
        "max_size_mib = 200\nmin_free_mib = 0",
        // 2000 kbit/s: a segment of about 2 MB takes about 8 s to go up.
        &format!(
            "url = \"file://{}\"\nmax_rate_kbps = 2000",
            share.path().display()
        ),
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "an upload to the share", || {
        !site.uploaded().is_empty()
    });
    let (ok, _) = rec.terminate();
    assert!(ok);
    for s in site.uploaded() {
        let obj = share.path().join(key_of("", &s));
        let local = std::fs::read(site.store().join(&s.path)).unwrap();
        assert!(std::fs::read(&obj).unwrap() == local, "{}", obj.display());
        // The object plays on its own: start 0, its own duration (issue 14).
        assert_plays_alone(&obj, &s);
        // The rate cap: recorded as uploaded no sooner than size / rate after the segment ended.
        let due_ns = (s.size_bytes as f64 * 8.0 / 2_000_000.0 * 1e9) as i64;
        let took = s.uploaded_utc_ns.unwrap() - s.end_utc_ns();
        assert!(
            took >= due_ns * 9 / 10,
            "{} bytes uploaded {} ms after the end, the cap needs {} ms",
            s.size_bytes,
            took / 1_000_000,
            due_ns / 1_000_000
        );
    }
}

fn sha256_hex(b: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(f.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_missing_bucket_is_an_error_for_an_operator_and_recording_goes_on() {
    let moto = Moto::start("edge");
    let cam = TestCam::start(SMALL);
    let site = upload_site(
        &cam,
        "max_size_mib = 200\nmin_free_mib = 0",
        &format!(
            "url = \"s3://no-such-bucket/x\"\nendpoint = \"http://127.0.0.1:{}\"\npath_style = true\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"",
            moto.port
        ),
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "the error reported", || {
        rec.log_text().contains("needs attention")
    });
    assert!(rec.log_text().contains("ERROR"), "{}", rec.log_text());
    assert_eq!(metric(&site, "edgerec_upload_online"), 0.0);
    assert_eq!(
        metric(&site, "edgerec_upload_failures_total"),
        1.0,
        "retried slowly, not at once"
    );
    assert!(metric(&site, "edgerec_upload_backlog_segments") >= 1.0);
    let before = site.complete().len();
    wait_for(Duration::from_secs(60), "recording goes on", || {
        site.complete().len() > before
    });
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert!(site.uploaded().is_empty());
}
