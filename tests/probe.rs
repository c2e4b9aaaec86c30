//! `edgerec probe` against real RTSP servers (edgerec-testcam) and real failures: a wrong
//! password, an unknown path, a server that never answers, a closed port, a codec edgerec does
//! not record. Every camera of one config is probed side by side, so the whole file takes one
//! sample (about 6 s) plus the slowest failure (the timeout, twice the 2 s stall timeout).

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::*;

const SMALL: &[&str] = &["--width", "320", "--height", "240", "--bitrate", "400"];

fn cam(extra: &[&str]) -> TestCam {
    let mut args = SMALL.to_vec();
    args.extend_from_slice(extra);
    TestCam::start(&args)
}

fn probe(site: &Site, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(EDGEREC)
        .args(["probe", "--config"])
        .arg(&site.config)
        .args(extra)
        .output()
        .expect("run edgerec probe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probe_measures_cameras_and_explains_failures() {
    let auth = ["--user", "op", "--password", "s3cret-pw"];
    let h264 = cam(&[&["--fps", "25", "--gop", "25"][..], &auth].concat());
    let h265 = cam(&["--codec", "h265", "--fps", "15", "--gop", "30"]);
    let mjpeg = cam(&["--codec", "mjpeg", "--fps", "10"]);
    // Accepts TCP connections and never says a word: a camera that hangs.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed_port = free_port();
    let creds = "username = \"op\"\npassword = \"s3cret-pw\"\nstall_timeout = \"PT2S\"";
    let quick = "stall_timeout = \"PT2S\"";
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[
            ("h264", h264.url(), creds),
            ("h265", h265.url(), quick),
            (
                "badpw",
                h264.url().replace("rtsp://", "rtsp://op:wrong-pw@"),
                quick,
            ),
            ("nopath", h264.url().replace("/stream", "/nothing"), creds),
            (
                "silent",
                format!("rtsp://127.0.0.1:{silent_port}/stream"),
                quick,
            ),
            (
                "refused",
                format!("rtsp://127.0.0.1:{closed_port}/stream"),
                quick,
            ),
            ("mjpeg", mjpeg.url(), quick),
        ],
    );
    let (code, out, err) = probe(&site, &["--seconds", "6", "--json"]);
    assert_eq!(code, 1, "some cameras fail: exit 1\n{out}\n{err}");
    for secret in ["s3cret-pw", "wrong-pw"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "credentials in the output: {out}{err}"
        );
    }
    let reports: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ids: Vec<&str> = reports
        .iter()
        .map(|r| r["camera"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["h264", "h265", "badpw", "nopath", "silent", "refused", "mjpeg"],
        "config order"
    );
    let of = |id: &str| reports.iter().find(|r| r["camera"] == id).unwrap();

    let v = &of("h264")["video"];
    assert!(of("h264")["problem"].is_null(), "{}", of("h264"));
    assert_eq!(v["codec"], "H.264");
    // x264's ultrafast preset leaves out CABAC, so its SPS says constrained-baseline.
    assert_eq!(v["profile"], "constrained-baseline", "{v}");
    assert!(v["level"].is_string(), "{v}");
    assert_eq!(
        (v["width"].as_i64(), v["height"].as_i64()),
        (Some(320), Some(240))
    );
    let fps = v["fps"].as_f64().unwrap();
    assert!((fps - 25.0).abs() < 1.0, "fps {fps}");
    let gop = v["gopSeconds"].as_f64().unwrap();
    assert!(
        (gop - 1.0).abs() < 0.1,
        "GOP {gop} s, the camera makes one every 1 s"
    );
    let gop_frames = v["gopFrames"].as_f64().unwrap();
    assert!((gop_frames - 25.0).abs() < 2.0, "GOP {gop_frames} frames");
    let bps = v["bitrateBps"].as_u64().unwrap();
    assert!((50_000..2_000_000).contains(&bps), "bitrate {bps}");
    assert!(v["frames"].as_u64().unwrap() >= 100, "{v}");
    assert_eq!(
        v["rtcpSenderReports"], true,
        "gst-rtsp-server sends sender reports: {v}"
    );
    assert_eq!(of("h264")["streams"][0]["encoding"], "H264");
    assert_eq!(of("h264")["url"], h264.url(), "no credentials in the URL");

    let v = &of("h265")["video"];
    assert_eq!(v["codec"], "H.265", "{}", of("h265"));
    let gop = v["gopSeconds"].as_f64().unwrap();
    assert!((gop - 2.0).abs() < 0.2, "H.265 GOP {gop} s, expected 2 s");
    assert!((v["fps"].as_f64().unwrap() - 15.0).abs() < 1.0, "{v}");

    let problem = |id: &str| of(id)["problem"].as_str().unwrap_or_default().to_string();
    let p = problem("badpw");
    assert!(p.contains("RTSP 401") && p.contains("password"), "{p}");
    assert!(
        of("badpw")["url"].as_str().unwrap().contains("***@"),
        "{}",
        of("badpw")
    );
    let p = problem("nopath");
    assert!(p.contains("404") && p.contains("/nothing"), "{p}");
    let p = problem("silent");
    assert!(
        p.contains("timeout") && p.contains(&format!("127.0.0.1:{silent_port}")),
        "{p}"
    );
    let p = problem("refused");
    assert!(
        p.contains("connection refused") && p.contains(&closed_port.to_string()),
        "{p}"
    );
    let p = problem("mjpeg");
    assert!(p.contains("JPEG") && p.contains("H.264 or H.265"), "{p}");
    for id in ["badpw", "nopath", "silent", "refused", "mjpeg"] {
        assert!(of(id)["video"].is_null(), "{}", of(id));
    }

    // One camera, text: exit 0 and one line with every measurement.
    let (code, out, err) = probe(&site, &["--camera", "h264", "--seconds", "3"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out.trim();
    assert_eq!(line.lines().count(), 1, "{out}");
    for part in [
        "h264: H.264 constrained-baseline level ",
        "320x240",
        "fps",
        "GOP 1.0",
        "Mbit/s",
        "audio: none",
        "RTCP sender reports:",
    ] {
        assert!(line.contains(part), "{part:?} missing in {line:?}");
    }
    // A failing camera in text: FAIL and the advice on one line.
    let (code, out, _) = probe(&site, &["--camera", "refused", "--seconds", "1"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("refused: FAIL ") && out.trim().lines().count() == 1,
        "{out}"
    );
    // No such camera: a config error.
    let (code, _, err) = probe(&site, &["--camera", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no camera \"nope\""), "{err}");
    drop(silent);
}

/// A camera with a microphone: the probe lists the audio it offers (AAC as RTP MPEG4-GENERIC at
/// 48 kHz, G.711 A-law as PCMA at 8 kHz) beside the video, and the video is measured as ever.
#[test]
fn probe_lists_the_audio_a_camera_offers() {
    let aac = cam(&["--audio", "aac"]);
    let pcma = cam(&["--audio", "pcma"]);
    let quick = "stall_timeout = \"PT2S\"";
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[("aac", aac.url(), quick), ("pcma", pcma.url(), quick)],
    );
    let (code, out, err) = probe(&site, &["--seconds", "3", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let reports: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for (r, encoding, rate) in [
        (&reports[0], "MPEG4-GENERIC", 48_000),
        (&reports[1], "PCMA", 8_000),
    ] {
        assert_eq!(r["video"]["codec"], "H.264", "{r}");
        let streams = r["streams"].as_array().unwrap();
        let audio: Vec<&serde_json::Value> =
            streams.iter().filter(|s| s["media"] == "audio").collect();
        assert_eq!(audio.len(), 1, "{r}");
        assert_eq!(audio[0]["encoding"], encoding, "{r}");
        assert_eq!(audio[0]["clockRate"], rate, "{r}");
    }
    let (code, out, _) = probe(&site, &["--camera", "aac", "--seconds", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audio: MPEG4-GENERIC 48000 Hz"), "{out}");
}
