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
    record_with(url, id, extra, secs, |_| {})
}

/// [`record`], calling `during` with the site while the recorder runs (after the first media).
fn record_with(
    url: String,
    id: &str,
    extra: &str,
    secs: u64,
    during: impl FnOnce(&Site),
) -> (Site, String) {
    let site = Site::new("max_size_mib = 64\nmin_free_mib = 0", &[(id, url, extra)]);
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        !site.segments().is_empty()
    });
    during(&site);
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

/// `ffmpeg -c copy` of every stream of a (closed, VoD) manifest at `url` into `out`; panics if
/// ffmpeg fails. At most 60 s, and a 10 s read timeout, so a mistake cannot hang the test.
fn ffmpeg_copy(url: &str, out: &Path) {
    let st = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "10000000",
            "-i",
            url,
        ])
        .args(["-map", "0", "-t", "60", "-c", "copy", "-y"])
        .arg(out)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg reads {url}");
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
    let (site, log) = record_with(cam.url(), "aac", "audio = \"auto\"", 5, |site| {
        let cams = get_json(site, "/api/cameras");
        assert_eq!(
            cams["cameras"][0]["audioCodec"], "MPEG4-GENERIC/48000",
            "{cams}"
        );
    });
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
        let (site, _) = record_with(cam.url(), codec, "audio = \"auto\"", 4, |site| {
            let cams = get_json(site, "/api/cameras");
            let want = format!("{}/8000", codec.to_ascii_uppercase());
            assert_eq!(cams["cameras"][0]["audioCodec"], want.as_str(), "{cams}");
        });
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

/// Audio that stops for 20 s while video goes on: the video has no gap and no new run, `fsck`
/// is clean, every file decodes, and the sound is recorded again once it comes back.
#[test]
fn audio_that_stops_for_20_s_leaves_the_video_whole() {
    let cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--audio",
        "aac",
        "--audio-gap",
        "2,20",
    ]);
    let (site, log) = record(cam.url(), "mute", "audio = \"auto\"", 25);
    assert!(log.contains("audio stopped"), "{log}");
    assert!(log.contains("audio is back"), "{log}");
    let segs = site.complete();
    assert_eq!(
        segs.iter()
            .map(|s| s.run_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "one run: {segs:?}"
    );
    let video_s: f64 = segs.iter().map(|s| s.duration_ns as f64 / 1e9).sum();
    assert!(video_s >= 24.0, "{video_s} s of video: {segs:?}");
    for w in segs.windows(2) {
        let hole = w[1].start_utc_ns - (w[0].start_utc_ns + w[0].duration_ns);
        assert!(hole.abs() < 50_000_000, "a {hole} ns hole: {segs:?}");
    }
    let (ok, out) = site.fsck(&[]);
    assert!(ok, "fsck: {out}");
    assert_all_decode(&site);
    // Sound before the gap and again after it, none in between.
    let last = site.store().join(&segs.last().unwrap().path);
    let (n, _) = audio_packets(&last);
    assert!(
        n > 40,
        "audio after the gap: {n} packets in {}",
        last.display()
    );
}

/// A camera without audio, recorded with `audio = "auto"`, gives the same init segment and the
/// same fragment layout as with audio off: one track, nothing added.
#[test]
fn a_camera_without_audio_records_the_same_files_either_way() {
    let cam = TestCam::start(&["--width", "320", "--height", "240"]);
    let (auto, log) = record_with(cam.url(), "auto", "audio = \"auto\"", 2, |site| {
        let cams = get_json(site, "/api/cameras");
        assert!(cams["cameras"][0]["audioCodec"].is_null(), "{cams}");
    });
    assert!(log.contains("offers no audio"), "{log}");
    let (off, _) = record(cam.url(), "off", "", 2);
    let init_of = |site: &Site| {
        let row = site.complete().remove(0);
        let bytes = std::fs::read(site.store().join(&row.path)).unwrap();
        assert_eq!(row.audio_codec, None);
        bytes[..row.init_size_bytes as usize].to_vec()
    };
    let (a, o) = (init_of(&auto), init_of(&off));
    assert_eq!(edgerec::mp4::tracks(&a).len(), 1);
    // The init segments differ only in the creation/modification times of mvhd/tkhd/mdhd.
    assert_eq!(a.len(), o.len());
    let differing = a.iter().zip(&o).filter(|(x, y)| x != y).count();
    assert!(differing <= 24, "{differing} bytes differ");
}

/// A camera with audio plays with sound everywhere: the HLS multivariant playlist names both
/// codecs, the MPD has an audio and a video adaptation set whose parts the server cuts out of
/// the muxed files, ffmpeg reads both tracks from the MPD, hls.js and dash.js in Chromium decode
/// sound and picture, and the MP4 export carries both tracks.
#[test]
fn audio_plays_in_hls_dash_and_export() {
    for t in ["ffmpeg", "ffprobe"] {
        require(t);
    }
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--audio", "aac"]);
    let work = tempfile::tempdir().unwrap();
    let (_site, _) = record_with(cam.url(), "av", "audio = \"auto\"", 0, |site| {
        std::thread::sleep(Duration::from_secs(7));
        let from = iso_ns(site.segments()[0].start_utc_ns);
        let to = iso_ns(now_utc_ns() - 1_000_000_000);
        let base = format!("http://127.0.0.1:{}/av/content.ism", site.http_port);
        let hls = format!("{base}/manifest(format=m3u8-aapl,startTime={from},endTime={to}).m3u8");
        let dash =
            format!("{base}/manifest(format=mpd-time-cmaf,startTime={from},endTime={to}).mpd");

        // HLS: a multivariant playlist with both codecs (RFC 8216 section 4.3.4.2).
        let path = hls.trim_start_matches(&format!("http://127.0.0.1:{}", site.http_port));
        let (st, _, body) = http_get(("127.0.0.1", site.http_port), path, &[]);
        let m3u8 = String::from_utf8_lossy(&body).to_string();
        assert_eq!(st, 200, "{m3u8}");
        assert!(
            m3u8.contains("#EXT-X-STREAM-INF:") && m3u8.contains(",mp4a.40.2\""),
            "{m3u8}"
        );
        assert!(m3u8.contains("CODECS=\"avc1."), "{m3u8}");

        // DASH: two adaptation sets; the audio parts are audio only.
        let path = dash.trim_start_matches(&format!("http://127.0.0.1:{}", site.http_port));
        let (st, _, body) = http_get(("127.0.0.1", site.http_port), path, &[]);
        let mpd = String::from_utf8_lossy(&body).to_string();
        assert_eq!(st, 200, "{mpd}");
        assert!(mpd.contains("contentType=\"audio\""), "{mpd}");
        assert!(mpd.contains("codecs=\"mp4a.40.2\""), "{mpd}");
        let seg = site.segments()[0].id;
        let (st, head, init) = http_get(
            ("127.0.0.1", site.http_port),
            &format!("/av/content.ism/media/{seg}.mp4?track=audio&at=init"),
            &[],
        );
        assert_eq!(st, 200);
        assert!(head.contains("content-type: audio/mp4"), "{head}");
        let t = edgerec::mp4::tracks(&init);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].kind, edgerec::mp4::TrackKind::Audio);
        // A bad part is a 400 with a JSON message.
        let (st, _, body) = http_get(
            ("127.0.0.1", site.http_port),
            &format!("/av/content.ism/media/{seg}.mp4?track=audio&at=12x"),
            &[],
        );
        assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));

        // ffmpeg through both manifests: both tracks, sound along the picture.
        for (name, url) in [("hls", &hls), ("dash", &dash)] {
            let copy = work.path().join(format!("{name}.mp4"));
            ffmpeg_copy(url, &copy);
            let s = streams(&copy);
            assert_eq!(s.len(), 2, "{name}: {s:?}");
            let (n, span) = audio_packets(&copy);
            assert!(
                n > 100 && span > 3.0,
                "{name}: {n} audio packets over {span} s"
            );
            assert!(
                ffmpeg_errors(&copy).is_empty(),
                "{name}: {}",
                ffmpeg_errors(&copy)
            );
        }

        // hls.js and dash.js in Chromium: picture and sound.
        for (lib, url) in [("hls", &hls), ("dash", &dash)] {
            let r =
                common::browser::browser_play(lib, url, &work.path().join(format!("{lib}.png")));
            assert!(
                r["audioDecodedBytes"].as_u64().unwrap_or(0) > 0,
                "{lib}: no sound decoded: {r}"
            );
        }

        // MP4 export: both tracks, the sound as long as the picture.
        let (st, _, body) = http_get(
            ("127.0.0.1", site.http_port),
            &format!("/av/content.ism/export.mp4?startTime={from}&endTime={to}"),
            &[],
        );
        assert_eq!(st, 200);
        let file = work.path().join("export.mp4");
        std::fs::write(&file, body).unwrap();
        let s = streams(&file);
        assert_eq!(s.len(), 2, "export: {s:?}");
        assert_eq!((s[1].0.as_str(), s[1].2), ("audio", 48_000), "{s:?}");
        assert!(ffmpeg_errors(&file).is_empty(), "{}", ffmpeg_errors(&file));
        let durations = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let d: Vec<f64> = String::from_utf8_lossy(&durations.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            (d[0] - d[1]).abs() < 0.3,
            "video {} s, audio {} s",
            d[0],
            d[1]
        );
    });
}

/// Onsets in an ffmpeg `metadata`/`ametadata` print file: the `pts_time` of every entry whose
/// `key` value crosses above `above` after one at or below it (`-inf` counts as below).
fn onsets(file: &Path, key: &str, above: f64) -> Vec<f64> {
    let text = std::fs::read_to_string(file).unwrap();
    let (mut t, mut was_on, mut out) = (0.0f64, true, Vec::new());
    for line in text.lines() {
        if let Some(p) = line.split("pts_time:").nth(1) {
            t = p.trim().parse().unwrap_or(t);
        } else if let Some(v) = line.strip_prefix(&format!("{key}=")) {
            let v: f64 = v.trim().parse().unwrap_or(f64::NEG_INFINITY);
            let on = v > above;
            if on && !was_on {
                out.push(t);
            }
            was_on = on;
        }
    }
    out
}

/// Sound and picture stay in sync across segments and across a camera outage: a camera that
/// flashes white and beeps at the same instant every 5 s, recorded and played back through HLS
/// in ffmpeg; every beep lies within one AAC frame plus one video frame of its flash.
#[test]
fn sound_stays_with_the_picture_across_segments_and_an_outage() {
    for t in ["ffmpeg", "ffprobe"] {
        require(t);
    }
    let mut cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--audio",
        "aac",
        "--flash-beep",
        "5",
    ]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[("sync", cam.url(), "audio = \"auto\"")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        !site.segments().is_empty()
    });
    // Past the first segment's end (30 s), then the camera goes away and comes back.
    std::thread::sleep(Duration::from_secs(33));
    cam.stop();
    std::thread::sleep(Duration::from_secs(2));
    cam.restart();
    wait_for(Duration::from_secs(30), "a second run", || {
        site.segments()
            .iter()
            .map(|s| s.run_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2
    });
    std::thread::sleep(Duration::from_secs(11));
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("hls.mp4");
    let from = iso_ns(site.segments()[0].start_utc_ns);
    let to = iso_ns(now_utc_ns() - 1_000_000_000);
    let url = format!(
        "http://127.0.0.1:{}/sync/content.ism/manifest(format=m3u8-aapl,startTime={from},endTime={to}).m3u8",
        site.http_port
    );
    ffmpeg_copy(&url, &copy);
    let (ok, _) = rec.terminate();
    assert!(ok);
    let segs = site.complete();
    assert!(
        segs.len() >= 3,
        "two segments in the first run, one in the second: {segs:?}"
    );
    // Luma per frame and loudness per 5 ms of sound, on the file's own timestamps.
    let (v, a) = (work.path().join("v.txt"), work.path().join("a.txt"));
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-copyts", "-i"])
        .arg(&copy)
        .arg("-filter_complex")
        .arg(format!(
            "[0:v]signalstats,metadata=print:key=lavfi.signalstats.YAVG:file={}[vo];\
             [0:a]asetnsamples=n=240,astats=metadata=1:reset=1,\
             ametadata=print:key=lavfi.astats.Overall.RMS_level:file={}[ao]",
            v.display(),
            a.display()
        ))
        .args(["-map", "[vo]", "-map", "[ao]", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(st.success());
    // The file's first 0.2 s are left out: a recording starts on the first key frame, maybe
    // on a flash or in the middle of a beep.
    let settled = |v: Vec<f64>| v.into_iter().filter(|t| *t >= 0.2).collect::<Vec<_>>();
    let flashes = settled(onsets(&v, "lavfi.signalstats.YAVG", 128.0));
    let beeps = settled(onsets(&a, "lavfi.astats.Overall.RMS_level", -30.0));
    // One AAC frame (1024 samples at 48 kHz) plus one video frame (25 fps).
    let tolerance = 1024.0 / 48_000.0 + 1.0 / 25.0;
    let mut paired = 0;
    let mut worst = 0.0f64;
    for b in &beeps {
        let nearest = flashes
            .iter()
            .map(|f| (f - b).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            nearest <= tolerance,
            "a beep at {b:.3} s is {nearest:.3} s from the nearest flash; flashes {flashes:?}, beeps {beeps:?}"
        );
        worst = worst.max(nearest);
        paired += 1;
    }
    eprintln!("A/V sync: {paired} beeps, at most {worst:.3} s from their flashes (tolerance {tolerance:.3} s)");
    // About 44 s recorded in two runs: at least eight flash/beep pairs, and no flash without
    // its beep.
    assert!(paired >= 8, "flashes {flashes:?}, beeps {beeps:?}");
    assert_eq!(
        flashes.len(),
        beeps.len(),
        "flashes {flashes:?}, beeps {beeps:?}"
    );
}

/// Uploaded segments carry both tracks: a camera with audio uploaded to a directory store
/// (`file://`) gives objects in which ffprobe finds the video and the AAC track.
#[test]
fn uploaded_segments_carry_both_tracks() {
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--audio", "aac"]);
    let bucket = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let site = Site::in_dir(
        dir,
        &format!(
            "max_size_mib = 64\nmin_free_mib = 0\nsegment_length = \"PT30S\"\n\n[upload]\nurl = \"file://{}\"",
            bucket.path().display()
        ),
        &[("up", cam.url(), "audio = \"auto\"")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        !site.segments().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    // Stopping closes the open segment; the next start uploads it.
    let (ok, _) = rec.terminate();
    assert!(ok);
    let rec = Recorder::start(&site);
    let find = || {
        walk(bucket.path())
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "mp4"))
    };
    wait_for(Duration::from_secs(30), "an uploaded segment", || {
        find().is_some()
    });
    let object = find().unwrap();
    drop(rec);
    let s = streams(&object);
    assert_eq!(s.len(), 2, "{}: {s:?}", object.display());
    assert_eq!((s[1].0.as_str(), s[1].1.as_str()), ("audio", "aac"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A G.711 camera on a gateway without the AAC encoder: the video is recorded, with a warning
/// that names what is missing; the recorder does not fail the camera over its sound.
#[test]
fn g711_without_an_aac_encoder_records_the_video_and_says_why() {
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--audio", "pcmu"]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0\n\n[pipeline]\naac_encoder = \"no-such-aacenc\"",
        &[("noenc", cam.url(), "audio = \"auto\"")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        !site.segments().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert!(
        log.contains("no-such-aacenc") && log.contains("recording video only"),
        "{log}"
    );
    let segs = site.complete();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(segs[0].audio_codec, None);
    let s = streams(&site.store().join(&segs[0].path));
    assert_eq!(s.len(), 1, "{s:?}");
}
