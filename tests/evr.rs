//! Event-based recording end to end (issue: "EVR: the signal gate, clips, and a store that knows
//! what to keep"): the real recorder, the RTSP test camera playing real footage
//! (`../shared/testdata/vtest.avi`, a fixed street camera) with irregular GOPs, events over HTTP
//! and MQTT (a real mosquitto), uploads to moto's S3, playback through ffmpeg. The tests record in
//! real time and run side by side.

mod common;

use std::time::{Duration, Instant};

use common::broker::{Broker, Kind, Peer};
use common::stores::Moto;
use common::*;
use serde_json::Value;

const S: i64 = 1_000_000_000;

/// GOPs of the footage camera, in frames at 10 fps: 0.7 s to 3.1 s.
const GOP_PATTERN: &str = "7,23,12,31,5";
const MAX_GOP_NS: i64 = 3_100_000_000;

fn footage_cam() -> TestCam {
    let file = footage();
    TestCam::start(&[
        "--file",
        file.to_str().unwrap(),
        "--width",
        "768",
        "--height",
        "576",
        "--fps",
        "10",
        "--bitrate",
        "800",
        "--gop-pattern",
        GOP_PATTERN,
    ])
}

const SMALL: &[&str] = &["--width", "320", "--height", "240", "--bitrate", "400"];

/// A site with one camera `id` (`camera`: its extra lines) and more top-level TOML (`more`:
/// `[upload]`, `[mqtt]`) appended to the config.
fn site_with(cam: &TestCam, id: &str, camera: &str, more: &str) -> Site {
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[(id, cam.url(), camera)],
    );
    let mut text = std::fs::read_to_string(&site.config).unwrap();
    text += more;
    std::fs::write(&site.config, text).unwrap();
    site
}

/// `[camera.signal_gate]` with an offset and minimum = maximum, in seconds.
fn gate(offset_s: i64, len_s: i64) -> String {
    format!(
        "[camera.signal_gate]\nactivation_signal_offset = \"-PT{offset_s}S\"\n\
         minimum_activation_time = \"PT{len_s}S\"\nmaximum_activation_time = \"PT{len_s}S\"\n"
    )
}

/// Media seconds recorded so far (complete and open segments).
fn media_s(site: &Site) -> f64 {
    site.segments().iter().map(|s| s.duration_ns).sum::<i64>() as f64 / 1e9
}

fn post_event(site: &Site, camera: &str, body: &str) -> Value {
    let (status, b) = http_post_json(
        ("127.0.0.1", site.http_port),
        &format!("/api/cameras/{camera}/events"),
        body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
    serde_json::from_slice(&b).unwrap()
}

/// Frames ffmpeg decodes from `url` (an HLS manifest on the site's server).
fn frames(site: &Site, path: &str) -> u64 {
    require("ffprobe");
    let url = format!("http://127.0.0.1:{}{path}", site.http_port);
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // HLS shows the stream once per program and once by itself: the first count is the one.
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    first.parse().unwrap_or_else(|_| {
        panic!(
            "ffprobe {url}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The seed's policy (30 s before the event, 2 minutes in all) on real footage with irregular
/// GOPs: one clip, keyframe-exact start in (t - 30 s - one GOP, t - 30 s], end in
/// [t + 90 s, t + 90 s + one GOP], full pre-roll, an HLS manifest that ffmpeg plays with every
/// frame, and availableMedia that shows the clip alone.
#[test]
fn seed_policy_clip_from_real_footage_is_keyframe_exact() {
    let cam = footage_cam();
    let site = Site::new(
        "max_size_mib = 256\nmin_free_mib = 0",
        &[(
            "gate",
            cam.url(),
            "mode = \"evr\"\nfragment_duration = \"PT0.1S\"",
        )],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "35 s of pre-roll ring", || {
        media_s(&site) > 35.0
    });
    let t = now_utc_ns();
    let r = post_event(
        &site,
        "gate",
        &format!(
            r#"{{"id": "door-1", "label": "door", "time": "{}"}}"#,
            iso_ns(t)
        ),
    );
    assert_eq!(r["id"], "door-1");
    let open = clips(&site, "gate", t - 60 * S, t + 60 * S);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["state"], "open");
    assert_eq!(open[0]["preRollRequestedMs"], 30_000);
    assert_eq!(open[0]["preRollAchievedMs"], 30_000, "{:?}", open[0]);
    let deadline = Instant::now() + Duration::from_secs(130);
    let clip = loop {
        let c = clips(&site, "gate", t - 60 * S, t + 200 * S);
        if c.len() == 1 && c[0]["state"] == "closed" {
            break c[0].clone();
        }
        assert!(Instant::now() < deadline, "the clip did not close: {c:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let (start, end) = (t_of(&clip["start"]), t_of(&clip["end"]));
    let (want_start, want_end) = (t - 30 * S, t + 90 * S);
    println!(
        "clip boundary errors: start {} ms before the requested start, end {} ms after the requested end",
        (want_start - start) / 1_000_000,
        (end - want_end) / 1_000_000
    );
    assert!(
        start <= want_start && start > want_start - MAX_GOP_NS,
        "start {} vs requested {}",
        iso_ns(start),
        iso_ns(want_start)
    );
    assert!(
        end >= want_end && end <= want_end + MAX_GOP_NS,
        "end {} vs requested {}",
        iso_ns(end),
        iso_ns(want_end)
    );
    assert_eq!(clip["closedBy"], "minimum");
    assert_eq!(clip["events"][0]["label"], "door");
    let hls = clip["urls"]["hls"].as_str().unwrap();
    let expected = ((end - start) as f64 / 1e8).round() as i64; // 10 fps
    let got = frames(&site, hls) as i64;
    assert!(
        (got - expected).abs() <= 1,
        "ffmpeg decoded {got} frames of the clip, expected {expected}"
    );
    // The clip as one MP4 download: the same frames, from the clip's first key frame.
    let mp4 = clip["urls"]["mp4"].as_str().unwrap();
    let (status, head, body) = http_get(("127.0.0.1", site.http_port), mp4, &[]);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains(&format!(
            "x-actual-start-time: {}",
            iso_ns(start).to_ascii_lowercase()
        )),
        "{head}"
    );
    let file = site.dir.path().join("clip.mp4");
    std::fs::write(&file, &body).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let n: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        (n - expected).abs() <= 1,
        "clip MP4: {n} frames, expected {expected}"
    );
    assert!(ffmpeg_errors(&file).is_empty());
    let (status, _, _) = http_get(
        ("127.0.0.1", site.http_port),
        "/api/cameras/gate/clips/999999/export.mp4",
        &[],
    );
    assert_eq!(status, 404);
    // A range export of the EVR camera holds only the clip, whatever the ring holds around it.
    let (status, head, _) = http_request(
        ("127.0.0.1", site.http_port),
        "HEAD",
        &format!(
            "/gate/content.ism/export.mp4?startTime={}&endTime={}",
            iso_ns(t - 120 * S),
            iso_ns(t + 120 * S)
        ),
        &[],
    );
    assert_eq!(status, 200, "{head}");
    for (h, v) in [("x-actual-start-time", start), ("x-actual-end-time", end)] {
        assert!(
            head.contains(&format!("{h}: {}", iso_ns(v).to_ascii_lowercase())),
            "{h} should be the clip's: {head}"
        );
    }
    // An EVR camera's availableMedia is its clips: exactly this one, whatever the ring holds.
    let am = get_json(
        &site,
        &format!(
            "/gate/content.ism/availableMedia?precision=full&startTime={}&endTime={}",
            iso_ns(t - 120 * S),
            iso_ns(t + 120 * S)
        ),
    );
    let ranges = am["timeRanges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{am}");
    assert_eq!(
        (t_of(&ranges[0]["start"]), t_of(&ranges[0]["end"])),
        (start, end)
    );
    let (_, _, m) = http_get(("127.0.0.1", site.http_port), "/metrics", &[]);
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains("edgerec_camera_clips_opened_total{camera=\"gate\"} 1"),
        "{m}"
    );
    // Card writes of the whole process (media, index, WAL) per byte of media received.
    let media: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("edgerec_recorded_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let io = std::fs::read_to_string(format!("/proc/{}/io", rec.pid())).unwrap();
    let written: f64 = io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    println!(
        "card writes: {written} bytes for {media} bytes of media: write amplification {:.4}",
        written / media
    );
    let (ok, _) = rec.terminate();
    assert!(ok);
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "fsck: {out}");
}

/// Three idle minutes on an EVR camera keep at most the pre-roll horizon plus two segments on the
/// card and upload nothing; one event then uploads exactly the clip's fragments (byte for byte as
/// on the card) and its description to moto's S3.
#[test]
fn idle_evr_camera_keeps_its_ring_and_uploads_only_the_clip() {
    let moto = Moto::start("edge");
    let cam = TestCam::start(SMALL);
    let upload = format!(
        "[upload]\nurl = \"s3://edge/site\"\nendpoint = \"http://127.0.0.1:{}\"\npath_style = true\n\
         access_key_id = \"testing\"\nsecret_access_key = \"testing\"\n",
        moto.port
    );
    let site = site_with(
        &cam,
        "gate",
        &format!("mode = \"evr\"\n{}", gate(5, 10)),
        &upload,
    );
    let rec = Recorder::start(&site);
    // Horizon: 5 s offset + 1 s window + one 30 s segment; plus two segments.
    let bound_s = 36.0 + 60.0;
    let started = Instant::now();
    let mut most = 0.0f64;
    while started.elapsed() < Duration::from_secs(180) {
        most = most.max(media_s(&site));
        assert!(
            most <= bound_s,
            "{most} s of media on the card after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(most > 30.0, "the ring never held a segment: {most} s");
    assert!(
        moto.keys("edge").is_empty(),
        "an idle EVR camera uploaded: {:?}",
        moto.keys("edge")
    );
    let t = now_utc_ns();
    post_event(
        &site,
        "gate",
        r#"{"id": "e1", "label": "person", "objects": ["person", "bicycle"]}"#,
    );
    wait_for(Duration::from_secs(30), "the clip to close", || {
        clips(&site, "gate", t - 60 * S, t + 60 * S)[0]["state"] == "closed"
    });
    let clip = &clips(&site, "gate", t - 60 * S, t + 60 * S)[0];
    let (start, end) = (t_of(&clip["start"]), t_of(&clip["end"]));
    wait_for(Duration::from_secs(120), "the clip's upload", || {
        let covering: Vec<_> = site
            .segments()
            .into_iter()
            .filter(|s| s.start_utc_ns < end && s.end_utc_ns() > start)
            .collect();
        !covering.is_empty()
            && covering.iter().all(|s| s.uploaded_utc_ns.is_some())
            && moto.keys("edge").iter().any(|k| k.ends_with(".json"))
    });
    // Every piece equals the init segment and the covered fragments of a segment on the card.
    let segs = site.complete();
    // The API's times are in ms: 1 ms inside them is inside the first and last fragments.
    let spans = edgerec::evr::clip::covered(&segs, start + 1_000_000, end - 1_000_000);
    let mut card_bytes = 0;
    let mut keys: Vec<String> = moto
        .keys("edge")
        .into_iter()
        .filter(|k| k.ends_with(".mp4"))
        .collect();
    keys.sort();
    assert_eq!(keys.len(), spans.len(), "{keys:?} vs {spans:?}");
    for (k, sp) in keys.iter().zip(&spans) {
        let seg = segs.iter().find(|s| s.id == sp.segment_id).unwrap();
        let file = std::fs::read(site.store().join(&seg.path)).unwrap();
        let mut want = file[..seg.init_size_bytes as usize].to_vec();
        want.extend_from_slice(&file[sp.byte_start as usize..sp.byte_end as usize]);
        let (got, _) = moto.get("edge", k);
        let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            got == want,
            "{k} differs from the card's clip fragments: {} vs {} bytes, first difference at {first_diff:?}, span {sp:?}, init {}",
            got.len(),
            want.len(),
            seg.init_size_bytes
        );
        card_bytes += sp.byte_end - sp.byte_start;
        assert!(k.starts_with("site/gate/"), "{k}");
    }
    let uploaded: usize = keys.iter().map(|k| moto.get("edge", k).0.len()).sum();
    println!(
        "clip of {} ms: {uploaded} bytes uploaded for {card_bytes} bytes of clip fragments",
        (end - start) / 1_000_000
    );
    let json_key = moto
        .keys("edge")
        .into_iter()
        .find(|k| k.ends_with(".json"))
        .unwrap();
    let (doc, _) = moto.get("edge", &json_key);
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["camera"], "gate");
    assert_eq!(doc["events"][0]["label"], "person");
    assert_eq!(doc["events"][0]["objects"][1], "bicycle");
    assert_eq!(t_of(&doc["start"]), start);
    let (ok, _) = rec.terminate();
    assert!(ok);
}

/// `kill -9` five seconds after an event: after the restart the clip keeps its full pre-roll,
/// closes on time, and MQTT brings `RecordingStarted`, `RecordingAvailable` and
/// `RecordingStopped` with a retained `R/<camera>/clip` that ends `OFF`.
#[test]
fn kill_9_after_an_event_keeps_the_clip_whole() {
    let broker = Broker::start(Kind::Plain);
    let cam = TestCam::start(SMALL);
    let mqtt = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nhome_assistant_discovery = true\n",
        broker.port
    );
    let site = site_with(
        &cam,
        "gate",
        &format!("mode = \"evr\"\n{}", gate(10, 20)),
        &mqtt,
    );
    let root = "edgerec/test-gw";
    let peer = Peer::connect(
        broker.port,
        "evr-watch",
        &[&format!("{root}/#"), "homeassistant/#"],
    );
    let rec = Recorder::start(&site);
    peer.wait(Duration::from_secs(20), "HA clip sensor", |m| {
        m.topic.ends_with("_clip/config") && m.json()["state_topic"] == format!("{root}/gate/clip")
    });
    wait_for(Duration::from_secs(60), "15 s of media", || {
        media_s(&site) > 15.0
    });
    let t = now_utc_ns();
    peer.publish(
        &format!("{root}/gate/event"),
        format!(r#"{{"id": "k9", "label": "car", "time": "{}"}}"#, iso_ns(t)),
    );
    // Clip events carry the clip's subject (RecordingStarted of the camera itself has the
    // camera's).
    let clip_event = |m: &common::broker::Msg, kind: &str| {
        m.topic == format!("{root}/events")
            && m.json()["eventType"] == kind
            && m.json()["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("/cameras/gate/clips/"))
    };
    let started = peer.wait(Duration::from_secs(10), "RecordingStarted", |m| {
        clip_event(m, "RecordingStarted")
    });
    let subject = started.json()["subject"].as_str().unwrap().to_owned();
    assert!(subject.starts_with("/cameras/gate/clips/"), "{subject}");
    peer.wait(Duration::from_secs(10), "RecordingAvailable", |m| {
        clip_event(m, "RecordingAvailable")
    });
    peer.wait(Duration::from_secs(5), "clip ON", |m| {
        m.topic == format!("{root}/gate/clip") && m.text() == "ON"
    });
    peer.clear();
    std::thread::sleep(Duration::from_secs(5));
    rec.kill9();
    let rec = Recorder::start(&site);
    let stopped = peer.wait(Duration::from_secs(60), "RecordingStopped", |m| {
        clip_event(m, "RecordingStopped")
    });
    assert_eq!(stopped.json()["subject"], subject.as_str());
    assert_eq!(stopped.json()["body"]["closedBy"], "minimum");
    peer.wait(Duration::from_secs(5), "clip OFF", |m| {
        m.topic == format!("{root}/gate/clip") && m.text() == "OFF"
    });
    let c = &clips(&site, "gate", t - 60 * S, t + 60 * S)[0];
    assert_eq!(c["state"], "closed");
    assert_eq!(c["preRollAchievedMs"], 10_000, "{c}");
    let end = t_of(&c["end"]);
    assert!(end >= t + 20 * S, "{c}");
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert_all_decode(&site);
}

/// Events every 10 s for 3 minutes with 15 s of pre-roll and clips of at most 30 s: back-to-back
/// clips (each new clip's pre-roll reaches into the previous one) whose media is stored once (no
/// two segment files share a moment) and plays as one continuous range.
#[test]
fn events_every_10_s_give_back_to_back_clips_stored_once() {
    let cam = TestCam::start(SMALL);
    let site = site_with(
        &cam,
        "gate",
        &format!("mode = \"evr\"\n{}", gate(15, 30)),
        "",
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(60), "20 s of media", || {
        media_s(&site) > 20.0
    });
    let t0 = now_utc_ns();
    for k in 0..18 {
        post_event(
            &site,
            "gate",
            &format!(r#"{{"id": "tick-{k}", "label": "tick"}}"#),
        );
        std::thread::sleep(Duration::from_secs(10));
    }
    let t1 = now_utc_ns();
    wait_for(Duration::from_secs(60), "every clip closed", || {
        clips(&site, "gate", t0 - 60 * S, t1 + 60 * S)
            .iter()
            .all(|c| c["state"] == "closed")
    });
    let cl = clips(&site, "gate", t0 - 60 * S, t1 + 60 * S);
    assert!(cl.len() >= 4, "{} clips", cl.len());
    for w in cl.windows(2) {
        assert!(
            t_of(&w[1]["start"]) <= t_of(&w[0]["end"]),
            "clips are not back to back: {} then {}",
            w[0],
            w[1]
        );
    }
    let am = get_json(
        &site,
        &format!(
            "/gate/content.ism/availableMedia?precision=full&startTime={}&endTime={}",
            iso_ns(t0 - 60 * S),
            iso_ns(t1 + 60 * S)
        ),
    );
    assert_eq!(am["timeRanges"].as_array().unwrap().len(), 1, "{am}");
    let segs = site.segments();
    for w in segs.windows(2) {
        assert!(
            w[1].start_utc_ns >= w[0].end_utc_ns() - 1_000_000,
            "media stored twice: {} overlaps {}",
            w[0].path,
            w[1].path
        );
    }
    let (ok, _) = rec.terminate();
    assert!(ok);
}

/// A CVR camera with `retention = "PT1M"` and `clip_retention = "PT1H"`: retention removes the
/// media around the clip, the clip's segment stays.
#[test]
fn cvr_clip_retention_keeps_the_clip_past_retention() {
    let cam = TestCam::start(SMALL);
    let camera = format!(
        "retention = \"PT1M\"\n{}clip_retention = \"PT1H\"\n",
        gate(2, 5)
    );
    let site = site_with(&cam, "yard", &camera, "");
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(90), "the first segment closed", || {
        !site.complete().is_empty()
    });
    // Well inside the second segment, so that the clip (2 s before to 5 s after) misses the first.
    std::thread::sleep(Duration::from_secs(5));
    let t = now_utc_ns();
    post_event(&site, "yard", r#"{"id": "keep-me", "label": "fox"}"#);
    // Bad input gets a clear answer and changes nothing; recording goes on (the waits below
    // need new segments).
    let addr = ("127.0.0.1", site.http_port);
    let post = |path: &str, body: &str| {
        let (status, b) = http_post_json(addr, path, body);
        (status, String::from_utf8_lossy(&b).into_owned())
    };
    let (st, msg) = post("/api/cameras/yard/events", r#"{"label": 7}"#);
    assert!(st == 400 && msg.contains("label"), "{st} {msg}");
    let (st, msg) = post("/api/cameras/yard/events", "not json");
    assert!(st == 400 && msg.contains("JSON"), "{st} {msg}");
    let (st, msg) = post("/api/cameras/nope/events", r#"{"label": "x"}"#);
    assert_eq!(st, 404, "{msg}");
    let (st, msg) = post(
        "/api/cameras/yard/events",
        r#"{"id": "keep-me", "label": "badger"}"#,
    );
    assert_eq!(st, 409, "{msg}");
    let (st, _, b) = http_get(
        addr,
        "/api/cameras/yard/clips?startTime=noon&endTime=later",
        &[],
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&b));
    assert_eq!(clips(&site, "yard", t - 60 * S, t + 60 * S).len(), 1);
    let clip_seg = |site: &Site| {
        site.segments()
            .into_iter()
            .find(|s| s.start_utc_ns <= t && s.end_utc_ns() > t)
    };
    let first = site.complete()[0].clone();
    wait_for(
        Duration::from_secs(150),
        "retention of the media before the clip",
        || !site.segments().iter().any(|s| s.id == first.id),
    );
    // Wait until the clip's segment itself ended more than a minute ago.
    let seg = clip_seg(&site).expect("the clip's segment");
    wait_for(
        Duration::from_secs(150),
        "the clip's segment to pass retention",
        || {
            now_utc_ns()
                > site
                    .segments()
                    .iter()
                    .find(|s| s.id == seg.id)
                    .map_or(i64::MAX, |s| s.end_utc_ns())
                    + 75 * S
        },
    );
    let segs = site.segments();
    assert!(
        segs.iter().any(|s| s.id == seg.id),
        "retention deleted clip media"
    );
    assert!(
        segs.iter()
            .filter(|s| s.id != seg.id)
            .all(|s| s.end_utc_ns() > now_utc_ns() - 75 * S),
        "retention left non-clip media older than PT1M: {segs:?}"
    );
    let (ok, _) = rec.terminate();
    assert!(ok);
}
