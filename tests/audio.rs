//! Audio (`audio = "auto"`): a camera's AAC recorded as it comes, G.711 re-encoded to AAC at its
//! own sample rate, a microphone that mutes, and a camera without audio unchanged. Real test
//! cameras (gst-rtsp-server), real ffprobe/ffmpeg.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Records `cam` as camera `id` with `extra` config lines for `secs` seconds after the first
/// media; returns the site and the recorder's log.
fn record(url: String, id: &str, extra: &str, secs: u64) -> (Site, String) {
    let site = Site::new("max_size_mib = 64\nmin_free_mib = 0", &[(id, url, extra)]);
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        !site.segments().is_empty()
    });
    std::thread::sleep(Duration::from_secs(secs));
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok, "the recorder stops cleanly");
    (site, log)
}

/// ffprobe's streams of a file: (codec_type, codec_name, sample_rate or 0).
fn streams(path: &Path) -> Vec<(String, String, u32)> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=codec_type,codec_name,sample_rate", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    j["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["codec_name"].as_str().unwrap_or("").to_string(),
                s["sample_rate"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect()
}

/// Decoded audio of a file as ffprobe counts it: (packets, seconds from the first to the end
/// of the last).
fn audio_packets(path: &Path) -> (usize, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["packet=pts_time,duration_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let rows: Vec<(f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    let span = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => b.0 + b.1 - a.0,
        _ => 0.0,
    };
    (rows.len(), span)
}

/// AAC from the camera is recorded as it comes, beside the video, in the same files; the index
/// and `/api/cameras` name it.
#[test]
fn records_aac_as_it_comes_beside_the_video() {
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--audio", "aac"]);
    let (site, log) = record(cam.url(), "aac", "audio = \"auto\"", 5);
    assert!(log.contains("recording audio"), "{log}");
    let segs = site.complete();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(segs[0].audio_codec.as_deref(), Some("mp4a.40.2"));
    let path = site.store().join(&segs[0].path);
    let s = streams(&path);
    assert_eq!(
        s,
        [
            ("video".to_string(), "h264".to_string(), 0),
            ("audio".to_string(), "aac".to_string(), 48_000)
        ],
        "{}",
        path.display()
    );
    // Sound all along the video (AAC frames of 1024 samples at 48 kHz: about 47 a second).
    let (n, span) = audio_packets(&path);
    let video_s = segs[0].duration_ns as f64 / 1e9;
    assert!(
        span >= video_s - 0.5 && n as f64 >= 40.0 * (video_s - 0.5),
        "{n} audio packets over {span} s, video {video_s} s"
    );
    assert_all_decode(&site);
}

/// G.711 (µ-law and A-law) is decoded and encoded to AAC at its own sample rate (8 kHz).
#[test]
fn g711_is_recorded_as_aac_at_its_own_sample_rate() {
    for codec in ["pcmu", "pcma"] {
        let cam = TestCam::start(&["--width", "320", "--height", "240", "--audio", codec]);
        let (site, _) = record(cam.url(), codec, "audio = \"auto\"", 4);
        let segs = site.complete();
        assert_eq!(segs.len(), 1, "{codec}: {segs:?}");
        assert_eq!(segs[0].audio_codec.as_deref(), Some("mp4a.40.2"), "{codec}");
        let path = site.store().join(&segs[0].path);
        assert_eq!(
            streams(&path),
            [
                ("video".to_string(), "h264".to_string(), 0),
                ("audio".to_string(), "aac".to_string(), 8_000)
            ],
            "{codec}"
        );
        let (n, span) = audio_packets(&path);
        let video_s = segs[0].duration_ns as f64 / 1e9;
        assert!(
            n > 0 && span >= video_s - 0.5,
            "{codec}: {n} audio packets over {span} s, video {video_s} s"
        );
        assert_all_decode(&site);
    }
}
