//! MP4 export from real recordings: a camera with an outage in the middle is recorded, then
//! `edgerec::export` turns a range into one progressive MP4 that ffprobe and ffmpeg read in full,
//! with one chapter per continuous span, `moov` before `mdat`, and every byte range equal to the
//! same bytes of the whole.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn ffprobe_json(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["format=duration,format_name:stream=codec_name,nb_read_frames,width,height"])
        .args(["-show_chapters", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The camera's media as availableMedia lists it (the open segment included): (start, end) UTC ns.
fn ranges(site: &Site) -> Vec<(i64, i64)> {
    if std::net::TcpStream::connect(("127.0.0.1", site.http_port)).is_err() {
        return Vec::new();
    }
    let now = now_utc_ns();
    let (status, _, body) = http_get(
        ("127.0.0.1", site.http_port),
        &format!(
            "/cam/content.ism/availableMedia?precision=full&startTime={}&endTime={}",
            iso_ns(now - 3_600_000_000_000),
            iso_ns(now + 60_000_000_000)
        ),
        &[],
    );
    if status != 200 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["timeRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (t_of(&r["start"]), t_of(&r["end"])))
        .collect()
}

fn write_out(x: &edgerec::export::Export, path: &std::path::Path) -> Vec<u8> {
    let mut all = vec![0u8; x.file.len() as usize];
    // Read in odd-sized pieces, as HTTP ranges would.
    let mut at = 0usize;
    while at < all.len() {
        let n = 77_777.min(all.len() - at);
        x.file.read_at(at as u64, &mut all[at..at + n]).unwrap();
        at += n;
    }
    std::fs::write(path, &all).unwrap();
    all
}

#[test]
fn export_closes_gaps_marks_chapters_and_plays() {
    require("ffprobe");
    let mut cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--bitrate",
        "300",
        "--fps",
        "25",
        "--gop",
        "25",
    ]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[(
            "cam",
            cam.url(),
            "fragment_duration = \"PT1S\"\nstall_timeout = \"PT2S\"",
        )],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(30), "4 s of media", || {
        ranges(&site).iter().map(|r| r.1 - r.0).sum::<i64>() >= 4_000_000_000
    });
    cam.stop();
    std::thread::sleep(Duration::from_secs(3));
    cam.restart();
    wait_for(Duration::from_secs(40), "a second span of 3 s", || {
        let r = ranges(&site);
        r.len() >= 2 && r[r.len() - 1].1 - r[r.len() - 1].0 >= 3_000_000_000
    });
    http_checks(&site);
    let (ok, _) = rec.terminate();
    assert!(ok, "recorder stopped cleanly");
    let segs: Vec<_> = site.complete();
    assert!(segs.len() >= 2, "{segs:?}");
    let first = segs.first().unwrap().start_utc_ns;
    let last = segs
        .iter()
        .map(|s| s.start_utc_ns + s.duration_ns)
        .max()
        .unwrap();

    // Everything: two chapters, the gap closed up.
    let x = edgerec::export::open(&site.store(), &segs, first - 10_000_000_000, last + 1)
        .expect("export");
    assert_eq!(x.start_utc_ns, first);
    assert_eq!(x.chapters.len(), 2, "one chapter per run: {:?}", x.chapters);
    let media: i64 = segs.iter().map(|s| s.duration_ns).sum();
    assert!(
        (x.duration_ns as i64 - media).abs() < 100_000_000,
        "export {} ns, index {} ns",
        x.duration_ns,
        media
    );
    assert!(
        (x.end_utc_ns - x.start_utc_ns) as u64 > x.duration_ns + 2_000_000_000,
        "the outage lies between start and end but not in the file"
    );
    let out = site.dir.path().join("all.mp4");
    let bytes = write_out(&x, &out);
    assert_eq!(&bytes[4..8], b"ftyp");
    let moov_at = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    assert_eq!(
        &bytes[moov_at + 4..moov_at + 8],
        b"moov",
        "moov before mdat"
    );
    let p = ffprobe_json(&out);
    let s = &p["streams"][0];
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(
        (s["width"].as_i64(), s["height"].as_i64()),
        (Some(320), Some(240))
    );
    let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert_eq!(frames, x.samples, "every frame decodes: {p}");
    let dur: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (dur - x.duration_ns as f64 / 1e9).abs() < 0.1,
        "ffprobe duration {dur}"
    );
    let chapters = p["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2, "{p}");
    assert_eq!(
        chapters[0]["tags"]["title"],
        edgerec::playback::time::format_full(first)
    );
    let second_start: f64 = chapters[1]["start_time"].as_str().unwrap().parse().unwrap();
    assert!(
        (second_start - x.chapters[1].0 as f64 / 1e9).abs() < 0.01,
        "{p}"
    );
    let errors = ffmpeg_errors(&out);
    assert!(errors.is_empty(), "ffmpeg decode errors: {errors}");

    // Byte ranges read alone equal the same bytes of the whole file.
    for (a, n) in [
        (0u64, 1usize),
        (3, 5000),
        (x.file.len() - 10, 10),
        (x.file.len() / 2, 123_456),
    ] {
        let n = n.min((x.file.len() - a) as usize);
        let mut buf = vec![0u8; n];
        x.file.read_at(a, &mut buf).unwrap();
        assert_eq!(buf, bytes[a as usize..a as usize + n], "range at {a}");
    }
    let mut past = [0u8; 2];
    assert!(x.file.read_at(x.file.len() - 1, &mut past).is_err());

    // A range starting mid-GOP starts at the key frame before it (a fragment start) and decodes.
    let from = first + 2_500_000_000;
    let y = edgerec::export::open(&site.store(), &segs, from, from + 1_000_000_000).unwrap();
    assert!(
        y.start_utc_ns <= from && from - y.start_utc_ns < 1_100_000_000,
        "{y:?}"
    );
    assert!(y.end_utc_ns >= from + 1_000_000_000);
    assert_eq!(y.chapters.len(), 1);
    let part = site.dir.path().join("part.mp4");
    write_out(&y, &part);
    let frames: u64 = ffprobe_json(&part)["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(frames, y.samples);
    assert!(ffmpeg_errors(&part).is_empty());

    // The command line, as for a card pulled from a gateway: the same bytes.
    let cli = site.dir.path().join("cli.mp4");
    let run = |from: i64, to: i64| {
        Command::new(EDGEREC)
            .args(["export", "--config"])
            .arg(&site.config)
            .args([
                "--camera",
                "cam",
                "--start",
                &iso_ns(from),
                "--end",
                &iso_ns(to),
                "-o",
            ])
            .arg(&cli)
            .output()
            .unwrap()
    };
    let o = run(first - 10_000_000_000, last + 1_000_000);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 chapter(s)"));
    assert_eq!(std::fs::read(&cli).unwrap(), bytes, "CLI and library agree");
    let o = run(first - 60_000_000_000, first - 30_000_000_000);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no media"));

    // Wholly before the recording: nothing.
    assert!(matches!(
        edgerec::export::open(
            &site.store(),
            &segs,
            first - 20_000_000_000,
            first - 10_000_000_000
        ),
        Err(edgerec::export::ExportError::NoMedia)
    ));
    // The files may go while the export is read: it opened them when planned.
    let z = edgerec::export::open(&site.store(), &segs, first, last).unwrap();
    for s in &segs {
        std::fs::remove_file(site.store().join(&s.path)).unwrap();
    }
    let after = site.dir.path().join("after.mp4");
    assert_eq!(
        write_out(&z, &after),
        bytes,
        "same bytes after the files were deleted"
    );
}

/// The HTTP route on the running recorder: the download plays, HEAD and Range agree with it,
/// and bad requests get 400/404 with a JSON message.
fn http_checks(site: &Site) {
    let addr = ("127.0.0.1", site.http_port);
    let r = ranges(site);
    let (first, last) = (r[0].0, r[r.len() - 1].1);
    let path = |from: i64, to: i64| {
        format!(
            "/cam/content.ism/export.mp4?startTime={}&endTime={}",
            iso_ns(from),
            iso_ns(to)
        )
    };
    let full = path(first - 5_000_000_000, last);
    let (status, head, body) = http_get(addr, &full, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    for h in [
        "content-type: video/mp4",
        "accept-ranges: bytes",
        "content-disposition: attachment; filename=\"cam_",
        &format!("content-length: {}", body.len()),
        &format!(
            "x-actual-start-time: {}",
            iso_ns(first).to_ascii_lowercase()
        ),
        "etag: \"x",
    ] {
        assert!(head.contains(h), "{h:?} missing in {head}");
    }
    let out = site.dir.path().join("http.mp4");
    std::fs::write(&out, &body).unwrap();
    let p = ffprobe_json(&out);
    assert_eq!(p["chapters"].as_array().unwrap().len(), 2, "{p}");
    let e = ffmpeg_errors(&out);
    if !e.is_empty() {
        let _ = std::fs::copy(&out, "/tmp/export-fail.mp4");
    }
    assert!(e.is_empty(), "the export does not decode cleanly: {e}");

    let (status, head, part) = http_get(addr, &full, &["Range: bytes=1000-1999"]);
    assert_eq!(status, 206, "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 1000-1999/{}", body.len())),
        "{head}"
    );
    assert_eq!(part, body[1000..2000]);
    let (status, _, tail) = http_get(addr, &full, &["Range: bytes=-100"]);
    assert_eq!((status, tail.as_slice()), (206, &body[body.len() - 100..]));
    let (status, head, _) = http_get(addr, &full, &[&format!("Range: bytes={}-", body.len())]);
    assert_eq!(status, 416, "{head}");
    let (status, head, nothing) = http_request(addr, "HEAD", &full, &[]);
    assert_eq!(status, 200);
    assert!(head.contains(&format!("content-length: {}", body.len())) && nothing.is_empty());

    let bad = |path: &str, want: u16, code: &str| {
        let (status, _, body) = http_get(addr, path, &[]);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, want, "{path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], code, "{text}");
    };
    bad(
        &format!("/cam/content.ism/export.mp4?startTime={}", iso_ns(first)),
        400,
        "MissingTimeRange",
    );
    bad(&path(last, first), 400, "InvalidTimeRange");
    bad(
        &path(first, first + 7 * 3_600_000_000_000),
        400,
        "TimeRangeTooLong",
    );
    bad(
        "/cam/content.ism/export.mp4?startTime=yesterday&endTime=today",
        400,
        "InvalidTimeFormat",
    );
    bad(
        &path(first - 60_000_000_000, first - 30_000_000_000),
        404,
        "NoMedia",
    );
}
