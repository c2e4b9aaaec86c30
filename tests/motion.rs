//! Motion detection end to end (issue "Motion detection on the gateway"): the real recorder, the
//! RTSP test camera playing real footage (`../shared/testdata/vtest.avi`, people walking past a
//! fixed camera) or a still frame of it with sensor-like noise, MQTT through a real mosquitto.
//! The tests record in real time and run side by side. The detector itself is tested on the
//! same footage frame by frame in `tests/motion_detector.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::{Broker, Kind, Peer};
use common::*;

const S: i64 = 1_000_000_000;

/// The test camera options for a 768×576, 10 fps stream with a key frame every second.
fn cam_args(file: &Path) -> Vec<String> {
    [
        "--file",
        file.to_str().unwrap(),
        "--width",
        "768",
        "--height",
        "576",
        "--fps",
        "10",
        "--gop",
        "10",
        "--bitrate",
        "800",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_cam(file: &Path, codec: &str) -> TestCam {
    let mut args = cam_args(file);
    args.extend(["--codec".to_string(), codec.to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestCam::start(&refs)
}

/// A still frame of the footage for 60 s with temporal noise (a new draw every frame).
fn still_scene(dir: &Path) -> PathBuf {
    let png = footage_still(dir);
    let out = dir.join("still.mp4");
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-loop",
            "1",
            "-framerate",
            "10",
            "-t",
            "60",
            "-i",
        ])
        .arg(&png)
        .args([
            "-vf",
            "noise=alls=12:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .arg(&out)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg still scene");
    out
}

/// A counter or gauge of `/metrics` for `camera`.
fn metric(site: &Site, name: &str, camera: &str) -> f64 {
    let (status, _, body) = http_get(("127.0.0.1", site.http_port), "/metrics", &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let key = format!("{name}{{camera=\"{camera}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("{key} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

const MOTION: &str = "[camera.motion]\nenabled = true\nevent_aggregation_window = \"PT2S\"\n\
                      off_delay = \"PT5S\"\n\
                      zones = { lawn = [[[0.0,0.55],[0.4,0.62],[0.7,0.78],[1.0,0.95],[1.0,1.0],[0.0,1.0]]] }\n";

const GATE: &str = "[camera.signal_gate]\nactivation_signal_offset = \"-PT5S\"\n\
                    minimum_activation_time = \"PT10S\"\nmaximum_activation_time = \"PT10S\"\n";

/// Two EVR cameras with motion as their trigger: one sees people walking, one a still noisy
/// scene. The first records a clip around the first person's appearance, announced over MQTT
/// (LVA-shaped `Inference` events with a box, a retained `R/<camera>/motion`, a Home Assistant
/// motion sensor); the still scene gives no event, no clip, and its motion state stays `OFF`.
/// The footage comes as H.264, the still scene as H.265: the analysis decodes both.
/// A third, CVR camera records the still scene but analyses a substream that sees people (2 fps):
/// its motion comes from the substream, and makes clips on a CVR camera too.
#[test]
fn motion_records_a_clip_around_people_and_none_over_a_still_scene() {
    let dir = tempfile::tempdir().unwrap();
    let still_file = still_scene(dir.path());
    let walk = start_cam(&footage(), "h264");
    // H.265 here: the analysis decodes either codec.
    let still = start_cam(&still_file, "h265");
    let broker = Broker::start(Kind::Plain);
    let camera = format!("mode = \"evr\"\n{GATE}{MOTION}");
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[
            ("walk", walk.url(), &camera),
            ("still", still.url(), &camera),
            (
                "sub",
                still.url(),
                &format!(
                    "{GATE}{MOTION}sample = \"substream\"\nsubstream_url = \"{}\"\nsubstream_fps = 2\n",
                    walk.url()
                ),
            ),
        ],
    );
    let mut text = std::fs::read_to_string(&site.config).unwrap();
    text += &format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nhome_assistant_discovery = true\n",
        broker.port
    );
    std::fs::write(&site.config, text).unwrap();
    let root = "edgerec/test-gw";
    let peer = Peer::connect(
        broker.port,
        "motion-watch",
        &[&format!("{root}/#"), "homeassistant/#"],
    );
    let started = now_utc_ns();
    let rec = Recorder::start(&site);
    let sensor = peer.wait(Duration::from_secs(20), "HA motion sensor", |m| {
        m.topic.ends_with("_walk_motion/config")
    });
    assert_eq!(sensor.json()["device_class"], "motion");
    assert_eq!(sensor.json()["state_topic"], format!("{root}/walk/motion"));
    let inference = peer.wait(Duration::from_secs(30), "an Inference event of walk", |m| {
        m.topic == format!("{root}/events")
            && m.json()["eventType"] == "Inference"
            && m.json()["body"]["camera"] == "walk"
    });
    let body = &inference.json()["body"];
    assert_eq!(inference.json()["subject"], "/cameras/walk/motion");
    let first = &body["inferences"][0];
    assert_eq!(first["type"], "motion", "{body}");
    for k in ["l", "t", "w", "h"] {
        let v = first["motion"]["box"][k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{body}");
    }
    // People walk on the walkway: the box lies below the building fronts.
    assert!(
        first["motion"]["box"]["t"].as_f64().unwrap() > 0.1,
        "{body}"
    );
    let t_event = t_of(&body["timestamp"]);
    let now = now_utc_ns();
    assert!(
        t_event > started && t_event < now,
        "event at {} outside the test's span {}..{}: {body}",
        iso_ns(t_event),
        iso_ns(started),
        iso_ns(now)
    );
    peer.wait(Duration::from_secs(10), "walk motion ON", |m| {
        m.topic == format!("{root}/walk/motion") && m.text() == "ON"
    });
    // The clip around the first person: open from the first event, closed 10 s later.
    let deadline = Instant::now() + Duration::from_secs(60);
    let clip = loop {
        let c = clips(&site, "walk", started - 60 * S, now_utc_ns() + 60 * S);
        if let Some(c) = c.iter().find(|c| c["state"] == "closed") {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "no closed clip: {c:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let (start, end) = (t_of(&clip["start"]), t_of(&clip["end"]));
    assert!(
        start <= t_event && end >= t_event + 5 * S,
        "{clip} event {t_event}"
    );
    let events = clip["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["label"] == "motion"),
        "only motion feeds this gate: {clip}"
    );
    // The still scene: analysed all along, never motion.
    wait_for(Duration::from_secs(30), "20 still frames analysed", || {
        metric(
            &site,
            "edgerec_camera_motion_frames_analysed_total",
            "still",
        ) >= 20.0
    });
    assert_eq!(
        metric(&site, "edgerec_camera_motion_events_total", "still"),
        0.0
    );
    assert!(metric(&site, "edgerec_camera_motion_events_total", "walk") >= 3.0);
    let cpu = metric(&site, "edgerec_camera_motion_cpu_seconds_total", "walk");
    assert!(cpu > 0.0, "analysis CPU is counted");
    assert!(clips(&site, "still", started - 60 * S, now_utc_ns() + 60 * S).is_empty());
    // The substream camera: its frames came from the walking people at about 2 per second.
    let sub_frames = metric(&site, "edgerec_camera_motion_frames_analysed_total", "sub");
    let secs = (now_utc_ns() - started) as f64 / 1e9;
    assert!(
        sub_frames > secs,
        "{sub_frames} substream frames in {secs:.0} s"
    );
    assert!(metric(&site, "edgerec_camera_motion_events_total", "sub") >= 3.0);
    let sub_clips = clips(&site, "sub", started - 60 * S, now_utc_ns() + 60 * S);
    assert!(
        !sub_clips.is_empty(),
        "motion makes clips on a CVR camera too"
    );
    let still_state = peer.wait(Duration::from_secs(5), "still motion state", |m| {
        m.topic == format!("{root}/still/motion")
    });
    assert_eq!(still_state.text(), "OFF");
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert_all_decode(&site);
}

/// An analysis slowed on purpose (2.5 s per frame against a key frame every second) drops
/// frames and leaves every recorded fragment as it is: the same durations as a twin camera
/// without motion detection on the same test camera. `--unshared` (one encoder per client): once
/// in CI, ffmpeg reported non-monotonic DTS in the twin's first segment. The likely cause is the
/// known fault of gst-rtsp-server 1.22's shared media with two clients joining at once (the late
/// one gets frames whose first PTS runs ahead of their DTS), which this test is not about.
#[test]
fn a_slow_analysis_leaves_every_fragment_unchanged() {
    let cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--bitrate",
        "400",
        "--unshared",
    ]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[
            ("twin", cam.url(), ""),
            ("slow", cam.url(), "[camera.motion]\nenabled = true\n"),
        ],
    );
    let rec = Recorder::start_env(&site, &[("EDGEREC_MOTION_TEST_DELAY_MS", "2500".into())]);
    let started = Instant::now();
    wait_for(Duration::from_secs(60), "20 s of media from both", || {
        ["twin", "slow"].iter().all(|c| {
            site.segments()
                .iter()
                .filter(|s| s.camera == *c)
                .map(|s| s.duration_ns)
                .sum::<i64>()
                > 20 * S
        })
    });
    let analysed = metric(&site, "edgerec_camera_motion_frames_analysed_total", "slow");
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, _) = rec.terminate();
    assert!(ok);
    // Slowed: far fewer frames analysed than key frames went by (one a second).
    assert!(
        analysed >= 2.0 && analysed < elapsed / 2.0,
        "{analysed} in {elapsed:.0} s"
    );
    let durations = |camera: &str| -> Vec<u64> {
        let mut files: Vec<PathBuf> = site
            .media_files()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&format!("/{camera}/")))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let scan = edgerec::mp4::scan_file(f).unwrap();
                let ts = scan.timescale as u64;
                scan.fragments
                    .into_iter()
                    .map(move |f| f.duration_ticks * 1000 / ts)
            })
            .collect()
    };
    let (twin, slow) = (durations("twin"), durations("slow"));
    assert!(slow.len() >= 20, "{slow:?}");
    // Every fragment but the last holds one 1 s GOP, on both cameras.
    for (name, d) in [("twin", &twin), ("slow", &slow)] {
        let whole = &d[..d.len() - 1];
        assert!(
            whole.iter().all(|ms| (960..=1040).contains(ms)),
            "{name}: {d:?}"
        );
    }
    assert_all_decode(&site);
}

/// A decoder that is not installed: `check-config` refuses the file naming the key, and `run`
/// records anyway, with motion detection off and a warning that says why.
#[test]
fn a_missing_decoder_is_named_and_recording_goes_on() {
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--bitrate", "400"]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[(
            "cam",
            cam.url(),
            "[camera.motion]\nenabled = true\ndecoder = \"nosuchdecoder\"\n",
        )],
    );
    let out = Command::new(EDGEREC)
        .args(["check-config", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("camera[0].motion.decoder") && err.contains("nosuchdecoder"),
        "{err}"
    );
    let rec = Recorder::start(&site);
    wait_port(site.http_port, "the recorder's HTTP server");
    // About 4 s of a 400 kbit/s stream handed to the storage writer.
    wait_for(Duration::from_secs(30), "200 kB received", || {
        metric(&site, "edgerec_camera_received_bytes_total", "cam") > 200_000.0
    });
    assert_eq!(
        metric(&site, "edgerec_camera_motion_frames_analysed_total", "cam"),
        0.0
    );
    let log = rec.log_text();
    assert!(
        log.contains("motion detection off for this run")
            && log.contains("\"nosuchdecoder\" is not installed"),
        "{log}"
    );
    let (ok, _) = rec.terminate();
    assert!(ok);
    let media = site.segments().iter().map(|s| s.duration_ns).sum::<i64>();
    assert!(media > 3 * S, "{media} ns recorded");
    assert_all_decode(&site);
}
