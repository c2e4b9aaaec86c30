//! Playback with real clients (issue: playback): a real test camera, the real recorder with its
//! HTTP server, and ffmpeg/ffprobe, GStreamer playbin3, and hls.js and dash.js in headless Debian
//! chromium (driven by `tests/browser/play.mjs` through playwright-core).

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::browser::browser_play;
use common::*;

/// HTTP GET on the recorder: (status, lower-cased head, body bytes).
fn get(port: u16, path: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
    http_get(("127.0.0.1", port), path, headers)
}

fn get_text(port: u16, path: &str) -> String {
    let (st, _, body) = get(port, path, &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(st, 200, "{path}: {body}");
    body
}

fn base(site: &Site) -> String {
    format!("http://127.0.0.1:{}/cam/content.ism", site.http_port)
}

/// `availableMedia` at full precision over the last hour: the continuous ranges, in seconds
/// since the epoch.
fn ranges(site: &Site) -> Vec<(f64, f64)> {
    try_ranges(site).expect("availableMedia answers")
}

/// [`ranges`], or `None` while the recorder's server is not up yet.
fn try_ranges(site: &Site) -> Option<Vec<(f64, f64)>> {
    TcpStream::connect(("127.0.0.1", site.http_port)).ok()?;
    let now = now_utc_ns();
    let fmt = edgerec::playback::time::format_full;
    let body = get_text(
        site.http_port,
        &format!(
            "/cam/content.ism/availableMedia?precision=full&startTime={}&endTime={}",
            fmt(now - 3600 * 1_000_000_000),
            fmt(now + 60 * 1_000_000_000)
        ),
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = v["timeRanges"].as_array()?;
    Some(
        list.iter()
            .map(|r| {
                let p = |k: &str| {
                    edgerec::playback::time::parse_datetime(r[k].as_str().unwrap()).unwrap() as f64
                        / 1e9
                };
                (p("start"), p("end"))
            })
            .collect(),
    )
}

fn iso(s: f64) -> String {
    edgerec::playback::time::format_full((s * 1e9) as i64)
}

fn ffprobe_duration(url: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe {url}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// GStreamer playbin3 plays `url` to the end (EOS) without an error.
/// GStreamer playbin3 plays `url` to EOS with no error; returns the video frames it rendered
/// (the fake video sink reports every buffer it gets).
fn playbin3_frames(url: &str) -> usize {
    let out = Command::new("timeout")
        .args(["120", "gst-launch-1.0", "-v", "playbin3"])
        .arg(format!("uri={url}"))
        .args([
            "video-sink=fakesink name=vsink sync=false silent=false",
            "audio-sink=fakesink",
        ])
        .output()
        .expect("run gst-launch-1.0");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("Got EOS") && !text.contains("ERROR"),
        "playbin3 {url}: {text}"
    );
    text.lines()
        .filter(|l| l.contains("vsink: last-message = chain"))
        .count()
}

fn assert_browser_plays(lib: &str, url: &str, shot: &std::path::Path) {
    browser_play(lib, url, shot);
}

fn extinf_sum(m3u8: &str) -> f64 {
    m3u8.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
        .sum()
}

#[test]
fn vod_across_an_outage_plays_in_every_client() {
    for t in ["ffmpeg", "ffprobe", "gst-launch-1.0"] {
        require(t);
    }
    let mut cam = TestCam::start(&["--gop", "50"]);
    let site = Site::new(
        "max_size_mib = 512\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[("cam", cam.url(), "")],
    );
    let _rec = Recorder::start(&site);
    // The first run spans two segment files: HLS and DASH must see one timeline across them.
    wait_for(Duration::from_secs(80), "34 s of media", || {
        try_ranges(&site).is_some_and(|r| r.last().is_some_and(|r| r.1 - r.0 >= 34.0))
    });
    cam.stop();
    std::thread::sleep(Duration::from_secs(8)); // the outage itself
    cam.restart();
    wait_for(
        Duration::from_secs(60),
        "a second run with 16 s of media",
        || {
            let r = ranges(&site);
            r.len() == 2 && r[1].1 - r[1].0 >= 16.0
        },
    );
    let r = ranges(&site);
    let (from, to) = (iso(r[0].0), iso(r[1].1 - 2.0));
    let b = base(&site);

    // HLS: one discontinuity, every frame decodes, the duration adds up.
    let hls_path =
        format!("/cam/content.ism/manifest(format=m3u8-aapl,startTime={from},endTime={to}).m3u8");
    let m3u8 = get_text(site.http_port, &hls_path);
    assert_eq!(m3u8.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{m3u8}");
    assert!(m3u8.ends_with("#EXT-X-ENDLIST\n"));
    let dur = extinf_sum(&m3u8);
    let media = (r[0].1 - r[0].0) + (r[1].1 - 2.0 - r[1].0);
    assert!(
        (dur - media).abs() <= 2.1,
        "playlist {dur} s vs media {media} s"
    );
    let hls_url = format!("http://127.0.0.1:{}{hls_path}", site.http_port);
    let (frames, err) = ffmpeg_frames(&hls_url);
    assert!(err.is_empty(), "ffmpeg HLS: {err}");
    // Every frame of both runs: the media time (tfdt) continues across the outage, so ffmpeg's
    // HLS demuxer (one MP4 demuxer across EXT-X-DISCONTINUITY) never sees decode time go back.
    let expected = dur * 25.0;
    assert!(
        (frames as f64 - expected).abs() <= 2.0,
        "HLS decoded {frames} frames for {dur} s at 25 fps"
    );
    let probed = ffprobe_duration(&hls_url);
    assert!(
        (probed - dur).abs() <= 0.5,
        "ffprobe HLS {probed} s vs {dur} s"
    );

    // DASH: one Period per run.
    let dash_path = format!(
        "/cam/content.ism/manifest(format=mpd-time-cmaf,startTime={from},endTime={to}).mpd"
    );
    let mpd = get_text(site.http_port, &dash_path);
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    assert!(mpd.contains("codecs=\"avc1.") && mpd.contains("type=\"static\""));
    let dash_url = format!("http://127.0.0.1:{}{dash_path}", site.http_port);
    // ffmpeg's DASH demuxer reads one Period, the longest ("at now we can handle only one
    // period", libavformat/dashdec.c): it must decode that one cleanly and whole. Every frame of
    // both Periods is counted with GStreamer's dashdemux2 below.
    let (frames, err) = ffmpeg_frames(&dash_url);
    let longest = (r[0].1 - r[0].0).max(r[1].1 - 2.0 - r[1].0);
    assert!(
        err.is_empty() && (frames as f64 - longest * 25.0).abs() <= 2.0,
        "ffmpeg DASH: {frames} frames for the longest Period of {longest} s, {err}"
    );
    // A range inside one run: every frame and the duration.
    let one = format!(
        "{b}/manifest(format=mpd-time-cmaf,startTime={},endTime={}).mpd",
        iso(r[1].0),
        iso(r[1].1 - 2.0)
    );
    let (frames, err) = ffmpeg_frames(&one);
    let run = r[1].1 - 2.0 - r[1].0;
    assert!(err.is_empty(), "ffmpeg DASH: {err}");
    let probed = ffprobe_duration(&one);
    assert!(
        (probed - run).abs() <= 2.1,
        "ffprobe DASH {probed} s vs {run} s"
    );
    assert!(
        (frames as f64 - probed * 25.0).abs() <= 2.0,
        "DASH decoded {frames} frames for {probed} s at 25 fps"
    );
    // The same run as HLS: every frame.
    let one_hls = one
        .replace("mpd-time-cmaf", "m3u8-aapl")
        .replace(").mpd", ").m3u8");
    let (frames, err) = ffmpeg_frames(&one_hls);
    assert!(err.is_empty(), "ffmpeg HLS: {err}");
    assert!(
        (frames as f64 - probed * 25.0).abs() <= 2.0,
        "HLS decoded {frames} frames for {probed} s at 25 fps"
    );

    // GStreamer playbin3, both protocols, to the end, every frame of both runs.
    for url in [&hls_url, &dash_url] {
        let frames = playbin3_frames(url);
        assert!(
            (frames as f64 - expected).abs() <= 2.0,
            "playbin3 rendered {frames} frames for {dur} s at 25 fps: {url}"
        );
    }

    // Browsers: hls.js and dash.js.
    assert_browser_plays("hls", &hls_url, &site.dir.path().join("hls-vod.png"));
    assert_browser_plays("dash", &dash_url, &site.dir.path().join("dash-vod.png"));

    // Segment bytes with Range.
    let media_uri = m3u8
        .lines()
        .find(|l| l.starts_with("media/"))
        .unwrap()
        .to_owned();
    let (st, head, body) = get(
        site.http_port,
        &format!("/cam/content.ism/{media_uri}"),
        &[],
    );
    assert_eq!(st, 200);
    let len = body.len();
    assert!(
        head.contains("accept-ranges: bytes") && head.contains("content-type: video/mp4"),
        "{head}"
    );
    assert!(head.contains("etag: \""), "{head}");
    let (st, head, part) = get(
        site.http_port,
        &format!("/cam/content.ism/{media_uri}"),
        &["Range: bytes=100-199"],
    );
    assert_eq!(st, 206, "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 100-199/{len}")),
        "{head}"
    );
    assert_eq!(part, body[100..200]);
    let (st, _, _) = get(site.http_port, "/cam/content.ism/media/999999.mp4", &[]);
    assert_eq!(st, 404);

    // Each segment file on the card plays on its own, from its first frame: ffprobe (start and
    // duration), playbin3 (every frame) and chromium opening the file itself. The one checked
    // in players is the second file of the first run, whose media time the muxer counted from
    // the run's start.
    let rows = site.complete();
    assert!(rows.len() >= 2, "two segments in the first run: {rows:?}");
    for row in &rows {
        assert_plays_alone(&site.store().join(&row.path), row);
    }
    let second = &rows[1];
    assert_eq!(second.run_id, rows[0].run_id);
    let file = site.store().join(&second.path);
    let url = format!("file://{}", file.display());
    let want = second.duration_ns as f64 / 1e9;
    let frames = playbin3_frames(&url);
    assert!(
        (frames as f64 - want * 25.0).abs() <= 1.0,
        "playbin3 rendered {frames} frames of a {want} s file"
    );
    let r = browser_play("file", &url, &site.dir.path().join("file.png"));
    assert!(
        r["playedFrom"].as_f64().is_some_and(|t| t < 0.05)
            && (r["duration"].as_f64().unwrap_or(0.0) - want).abs() <= 0.05,
        "chromium opening {url}: {r}"
    );
    // The playback URL of the same segment serves the muxer's times: its first fragment's tfdt
    // is the index's base, the file's is 0.
    let (_, _, served) = get(
        site.http_port,
        &format!("/cam/content.ism/media/{}.mp4", second.id),
        &[],
    );
    let on_card = std::fs::read(&file).unwrap();
    let first_tfdt = |b: &[u8]| {
        edgerec::mp4::fragment_decode_time(&b[second.init_size_bytes as usize..]).unwrap()
    };
    assert_eq!(first_tfdt(&on_card), 0);
    assert_eq!(first_tfdt(&served), second.decode_time);
    assert_eq!(served.len(), on_card.len());
}

#[test]
fn live_playback_follows_the_camera() {
    let _cam = TestCam::start(&["--gop", "50"]);
    let cam_url = _cam.url();
    let site = Site::new(
        "max_size_mib = 512\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[("cam", cam_url, "")],
    );
    let _rec = Recorder::start(&site);
    wait_for(Duration::from_secs(60), "8 s of media", || {
        try_ranges(&site).is_some_and(|r| r.last().is_some_and(|r| r.1 - r.0 >= 8.0))
    });
    // Mid-way through the first 30 s segment, the live playlist already lists its fragments,
    // and its edge trails the camera by about one fragment (2 s), not a segment length.
    let m3u8 = get_text(
        site.http_port,
        "/cam/content.ism/manifest(format=m3u8-aapl).m3u8",
    );
    assert!(
        !m3u8.contains("#EXT-X-ENDLIST") && !m3u8.contains("PLAYLIST-TYPE"),
        "{m3u8}"
    );
    assert!(site.complete().is_empty(), "no segment is complete yet");
    assert!(m3u8.matches("#EXTINF:").count() >= 3, "{m3u8}");
    let pdt = m3u8
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .unwrap();
    let edge =
        edgerec::playback::time::parse_datetime(pdt).unwrap() as f64 / 1e9 + extinf_sum(&m3u8);
    let lag = now_utc_ns() as f64 / 1e9 - edge;
    assert!(lag < 5.0, "live edge {lag:.1} s behind the wall clock");
    let mpd = get_text(
        site.http_port,
        "/cam/content.ism/manifest(format=mpd-time-cmaf).mpd",
    );
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
    let b = base(&site);
    assert_browser_plays(
        "hls",
        &format!("{b}/manifest(format=m3u8-aapl).m3u8"),
        &site.dir.path().join("hls-live.png"),
    );
    assert_browser_plays(
        "dash",
        &format!("{b}/manifest(format=mpd-time-cmaf).mpd"),
        &site.dir.path().join("dash-live.png"),
    );
}

/// A card written by edgerec 0.2 (segment files with media time from 1970) keeps playing beside
/// files written now (media time from each file's start), before and after `fsck --rebuild`.
#[test]
fn a_card_from_0_2_plays_beside_new_files() {
    require("ffmpeg");
    let cam = TestCam::start(&["--gop", "50"]);
    let site = Site::new(
        "max_size_mib = 512\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[("cam", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(60), "10 s of media", || {
        try_ranges(&site).is_some_and(|r| r.last().is_some_and(|r| r.1 - r.0 >= 10.0))
    });
    assert!(rec.terminate().0);
    // Turn the card into what 0.2 wrote: every file with the muxer's absolute times, which is
    // exactly what the playback view serves.
    let old = site.complete();
    assert!(!old.is_empty());
    for row in &old {
        let path = site.store().join(&row.path);
        let view = edgerec::store::timebase::PlaybackView::open(&path, row).unwrap();
        let mut bytes = vec![0u8; view.len() as usize];
        view.read_at(0, &mut bytes).unwrap();
        drop(view);
        let first = |b: &[u8]| {
            edgerec::mp4::fragment_decode_time(&b[row.init_size_bytes as usize..]).unwrap()
        };
        assert_eq!(first(&bytes), row.decode_time);
        assert!(row.decode_time > 1 << 32, "tfdt counts from 1970");
        std::fs::write(&path, &bytes).unwrap();
    }
    // New files next to them (a new run: the recorder was stopped meanwhile).
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(60), "a second span of 10 s", || {
        try_ranges(&site).is_some_and(|r| r.len() == 2 && r[1].1 - r[1].0 >= 10.0)
    });
    let every_frame = |site: &Site, what: &str| {
        let r = ranges(site);
        let path = format!(
            "/cam/content.ism/manifest(format=m3u8-aapl,startTime={},endTime={}).m3u8",
            iso(r[0].0),
            iso(r[1].0 + 8.0)
        );
        let m3u8 = get_text(site.http_port, &path);
        assert_eq!(m3u8.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{m3u8}");
        let dur = extinf_sum(&m3u8);
        let (frames, err) = ffmpeg_frames(&format!("http://127.0.0.1:{}{path}", site.http_port));
        assert!(err.is_empty(), "{what}: ffmpeg HLS: {err}");
        assert!(
            (frames as f64 - dur * 25.0).abs() <= 2.0,
            "{what}: HLS decoded {frames} frames for {dur} s at 25 fps"
        );
    };
    every_frame(&site, "old and new files");
    assert!(rec.terminate().0);
    let (ok, text) = site.fsck(&[]);
    assert!(ok, "fsck: {text}");
    let (code, text) = site.fsck_code(&["--rebuild"]);
    assert_eq!(code, 0, "fsck --rebuild: {text}");
    // The rebuilt index gives the old files their own base and the new ones one that goes on.
    let rebuilt = site.complete();
    let old_row = rebuilt.iter().find(|r| r.path == old[0].path).unwrap();
    assert_eq!(old_row.decode_time, old[0].decode_time);
    let _rec = Recorder::start(&site);
    wait_for(Duration::from_secs(30), "serving after the rebuild", || {
        try_ranges(&site).is_some_and(|r| r.len() >= 2)
    });
    every_frame(&site, "after fsck --rebuild");
    // Every file decodes; the old ones still start in 1970's terms (they are not migrated).
    for f in site.media_files() {
        let e = ffmpeg_errors(&f);
        assert!(e.is_empty(), "{}: {e}", f.display());
    }
}
