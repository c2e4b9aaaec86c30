//! Recording end to end, with a real RTSP camera (`edgerec-testcam`), the real recorder process,
//! ffmpeg and `edgerec fsck` (issue: "Record cameras continuously to the card"). These tests record
//! in real time; they are written to run side by side (`make test` runs them in parallel).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const GOP_NS: i64 = 1_000_000_000; // the test cameras send a keyframe every 25 frames at 25 fps

/// testcam → recorder for 70 s at PT30S: two complete segments of 30 s ± one GOP, every file
/// decodes, fsck is clean, SIGTERM exits 0 within 10 s with the last fragment kept.
#[test]
fn records_segments_of_segment_length() {
    let cam = TestCam::start(&["--width", "640", "--height", "360", "--gop", "25"]);
    let site = Site::new(
        "max_size_mib = 512\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[("front-door", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    let first_media = Instant::now();
    wait_for(Duration::from_secs(20), "the first segment row", || {
        !site.segments().is_empty()
    });
    std::thread::sleep(Duration::from_secs(70).saturating_sub(first_media.elapsed()));
    let stop_at = now_utc_ns();
    let (ok, secs) = rec.terminate();
    assert!(ok, "recorder exit status");
    assert!(secs < 10.0, "shutdown took {secs} s");

    let segs = site.complete();
    assert_eq!(
        segs.len(),
        site.segments().len(),
        "every row is complete after a clean stop"
    );
    assert!(
        segs.len() >= 3,
        "expected two full segments and the tail: {segs:?}"
    );
    for s in &segs[..2] {
        let d = s.duration_ns;
        assert!(
            (30_000_000_000..=30_000_000_000 + GOP_NS + 50_000_000).contains(&d),
            "segment {} lasts {} ms, not 30 s + at most one GOP",
            s.path,
            d / 1_000_000
        );
        assert!(s.path.starts_with("media/front-door/"), "{}", s.path);
    }
    for w in segs.windows(2) {
        let gap = (w[1].start_utc_ns - w[0].end_utc_ns()).abs();
        assert!(
            gap < 50_000_000,
            "segments of one run must be contiguous, gap {gap} ns"
        );
        assert_eq!(w[0].run_id, w[1].run_id);
    }
    let last_end = segs.last().unwrap().end_utc_ns();
    assert!(
        stop_at - last_end < 2 * GOP_NS + 500_000_000,
        "the last fragment was not flushed: {} ms short",
        (stop_at - last_end) / 1_000_000
    );
    assert_all_decode(&site);
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "fsck: {out}");
    // The index can be rebuilt from the files alone, with the same segments.
    let (ok, out) = site.fsck(&["--rebuild"]);
    assert!(ok, "fsck --rebuild: {out}");
    let rebuilt = site.complete();
    assert_eq!(rebuilt.len(), segs.len());
    for (a, b) in rebuilt.iter().zip(&segs) {
        assert_eq!(
            (a.path.as_str(), a.size_bytes, a.fragments.len()),
            (b.path.as_str(), b.size_bytes, b.fragments.len())
        );
        assert!(
            (a.duration_ns - b.duration_ns).abs() < 100_000_000,
            "{} vs {}",
            a.duration_ns,
            b.duration_ns
        );
    }
}

/// `kill -9` at random moments, at least 10 times, while writing, rolling and evicting: after each
/// restart recovery keeps every complete fragment, fsck is clean, every file decodes and per kill
/// at most one fragment (one GOP plus pipeline latency) is lost.
#[test]
fn survives_kill_9_at_random_moments() {
    let cam = TestCam::start(&[
        "--width",
        "640",
        "--height",
        "360",
        "--gop",
        "25",
        "--bitrate",
        "6000",
        "--pattern",
        "snow",
    ]);
    let site = Site::new(
        "max_size_mib = 48\nmin_free_mib = 0",
        &[("yard", cam.url(), "")],
    );
    let mut seed = (now_utc_ns() as u64) | 1;
    let mut rand = move |lo: u64, hi: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + seed % (hi - lo)
    };
    let started = Instant::now();
    let mut kills = Vec::new();
    while kills.len() < 10 || started.elapsed() < Duration::from_secs(150) {
        let rec = Recorder::start(&site);
        let before = site
            .segments()
            .iter()
            .map(|s| s.end_utc_ns())
            .max()
            .unwrap_or(0);
        wait_for(Duration::from_secs(30), "media after restart", || {
            site.segments().iter().any(|s| s.start_utc_ns > before)
        });
        std::thread::sleep(Duration::from_millis(rand(1_000, 14_000)));
        let t = now_utc_ns();
        rec.kill9();
        kills.push(t);
    }
    // One last start recovers the last kill, then a clean stop.
    let rec = Recorder::start(&site);
    wait_for(
        Duration::from_secs(30),
        "recovery and media after the last kill",
        || {
            site.segments()
                .iter()
                .any(|s| s.start_utc_ns > *kills.last().unwrap())
        },
    );
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok, "clean stop after recovery: {log}");

    let (clean, out) = site.fsck(&[]);
    assert!(clean, "fsck after kills: {out}");
    assert_all_decode(&site);
    let segs = site.complete();
    let evictions_happened = segs.first().map(|s| s.start_utc_ns).unwrap_or(0) > kills[0];
    for &k in &kills {
        // Media recorded before the kill that is still on the card must reach within one fragment
        // (1 GOP) plus pipeline latency of the kill; eviction may have removed older media.
        let Some(end) = segs
            .iter()
            .filter(|s| s.start_utc_ns < k)
            .map(|s| s.end_utc_ns())
            .max()
        else {
            continue;
        };
        if end < k - 60_000_000_000 {
            continue; // that part of the timeline was evicted since
        }
        let lost = k - end;
        assert!(
            lost <= GOP_NS + 1_500_000_000,
            "kill at {k}: {} ms of media lost",
            lost / 1_000_000
        );
    }
    assert!(kills.len() >= 10);
    assert!(
        evictions_happened,
        "the test should have evicted while being killed"
    );
}

/// A small limit with a high-bitrate camera: usage never passes the limit, the oldest media goes
/// first, recording goes on.
#[test]
fn eviction_keeps_usage_under_the_limit() {
    let cam = TestCam::start(&[
        "--width",
        "640",
        "--height",
        "360",
        "--bitrate",
        "8000",
        "--pattern",
        "snow",
    ]);
    let limit: u64 = 40 * 1024 * 1024;
    let site = Site::new(
        "max_size_mib = 40\nmin_free_mib = 0",
        &[("lot", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut evicted: Vec<String> = Vec::new();
    let mut durations: std::collections::HashMap<String, i64> = Default::default();
    let mut max_used = 0;
    while start.elapsed() < Duration::from_secs(130) {
        let used = site.used_bytes();
        max_used = max_used.max(used);
        assert!(used <= limit, "usage {used} passed the limit {limit}");
        let rows = site.segments();
        for r in &rows {
            durations.insert(r.path.clone(), r.duration_ns);
        }
        let now: Vec<String> = rows.into_iter().map(|s| s.path).collect();
        for p in &seen {
            if !now.contains(p) && !evicted.contains(p) {
                evicted.push(p.clone());
            }
        }
        for p in now {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let segs_before_stop = site.segments();
    // /metrics counts them per camera: at least what the polling saw go, at most that plus the
    // segments rolled since; none had been uploaded (there is no uploader here).
    let evicted_seen = evicted.len() as f64;
    let (code, _, body) = common::http_get(("127.0.0.1", site.http_port), "/metrics", &[]);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(code, 200);
    let metric = |name: &str| -> f64 {
        let key = format!("{name}{{camera=\"lot\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("{key} missing: {text}"))
            .parse()
            .unwrap()
    };
    let n = metric("edgerec_camera_evicted_segments_total");
    assert!(
        n >= evicted_seen && n <= evicted_seen + 3.0,
        "metrics say {n} evicted, the test saw {evicted_seen}"
    );
    let bytes = metric("edgerec_camera_evicted_bytes_total");
    assert!(bytes > 0.0);
    assert_eq!(
        metric("edgerec_camera_evicted_unuploaded_bytes_total"),
        bytes
    );
    // One per-camera family: the global eviction totals are gone.
    assert!(!text.contains("edgerec_evicted_segments_total"), "{text}");
    // Operator health: build, process and the card's sync latency.
    let plain = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
            .parse()
            .unwrap()
    };
    assert!(text.contains(&format!(
        "edgerec_build_info{{version=\"{}\",features=\"upload,mqtt,ui\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(plain("process_resident_memory_bytes") > 1e6);
    assert!(plain("process_open_fds") >= 3.0);
    assert!(plain("process_threads") >= 2.0);
    let syncs: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("edgerec_storage_sync_seconds_bucket{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(syncs.len(), 11, "10 buckets and +Inf: {text}");
    assert!(
        syncs.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {syncs:?}"
    );
    assert!(syncs[10] > 0.0, "segments were synced");
    let secs = metric("edgerec_camera_evicted_unuploaded_seconds_total");
    let seen_secs: f64 = evicted.iter().map(|p| durations[p] as f64 / 1e9).sum();
    let longest = durations.values().max().copied().unwrap_or(0) as f64 / 1e9;
    assert!(
        secs >= seen_secs - 0.01 && secs <= seen_secs + 3.0 * longest,
        "metrics say {secs} s evicted, the test saw {seen_secs} s go"
    );
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert!(
        !evicted.is_empty(),
        "nothing was evicted (max usage {max_used})"
    );
    // Oldest first: file names sort by start time, every evicted one is older than every remaining one.
    let remaining: Vec<String> = site.segments().into_iter().map(|s| s.path).collect();
    let newest_evicted = evicted.iter().max().unwrap();
    assert!(
        remaining.iter().all(|r| r > newest_evicted),
        "evicted {evicted:?} but kept {remaining:?}"
    );
    // Recording went on after the first eviction.
    let last = segs_before_stop
        .iter()
        .map(|s| s.start_utc_ns)
        .max()
        .unwrap();
    assert!(
        now_utc_ns() - last < 40_000_000_000,
        "no new segment for 40 s"
    );
    assert!(
        site.complete()
            .iter()
            .map(|s| s.end_utc_ns())
            .max()
            .unwrap()
            > now_utc_ns() - 5_000_000_000
    );
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "{out}");
}

/// A small tmpfs that another process fills (the size limit is larger than the filesystem, the
/// free-space floor is zero): the recorder evicts its oldest media and goes on recording.
#[test]
fn disk_full_evicts_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "edgerec-test"])
        .arg(dir.path())
        .status()
        .expect("run mount");
    assert!(
        st.success(),
        "mounting a tmpfs needs root: run the tests as root (CI does)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _u = Unmount(dir.path().to_owned());
    let cam = TestCam::start(SNOW_4M);
    let site = Site::in_dir(
        dir,
        "max_size_mib = 4096\nmin_free_mib = 0",
        &[("dock", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(60), "a complete segment", || {
        !site.complete().is_empty()
    });
    // Another process takes all but 1 MiB of the free space.
    let free = edgerec::store::fsutil::fs_stats(&site.store())
        .unwrap()
        .free_bytes;
    let filler = site.dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5a_u8; 1 << 20];
        let mut left = free.saturating_sub(1 << 20);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break; // the recorder took some of it meanwhile: the disk is full either way
            }
            left -= n as u64;
        }
        let _ = f.sync_all();
    }
    let full_at = now_utc_ns();
    wait_for(
        Duration::from_secs(60),
        "eviction of the oldest media",
        || rec.log_text().contains("evicted"),
    );
    wait_for(
        Duration::from_secs(60),
        "recording to go on after the disk filled",
        || {
            site.segments()
                .iter()
                .any(|s| s.start_utc_ns > full_at && s.duration_ns > 0)
                || site
                    .complete()
                    .iter()
                    .any(|s| s.end_utc_ns() > full_at + 10_000_000_000)
        },
    );
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok, "{log}");
    let last_end = site
        .complete()
        .iter()
        .map(|s| s.end_utc_ns())
        .max()
        .unwrap();
    assert!(
        last_end > full_at + 5_000_000_000,
        "no media recorded after the disk filled:\n{log}"
    );
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "{out}");
    assert_all_decode(&site);
}

/// A 15 s camera outage: recording resumes within 5 s of the camera's return, in a new run; the
/// recorded gap covers the outage (no media is invented) and is not longer than outage + 5 s.
#[test]
fn camera_outage_leaves_a_matching_gap() {
    let mut cam = TestCam::start(&["--width", "320", "--height", "240", "--gop", "25"]);
    let site = Site::new(
        "max_size_mib = 256\nmin_free_mib = 0",
        &[("gate", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        !site.segments().is_empty()
    });
    std::thread::sleep(Duration::from_secs(8));
    let down = now_utc_ns();
    cam.stop();
    std::thread::sleep(Duration::from_secs(15));
    cam.restart();
    let up = now_utc_ns();
    wait_for(
        Duration::from_secs(20),
        "a new run after the outage",
        || {
            site.segments()
                .iter()
                .any(|s| s.start_utc_ns > up - 1_000_000_000)
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let (ok, _) = rec.terminate();
    assert!(ok);
    let segs = site.complete();
    let before = segs
        .iter()
        .filter(|s| s.start_utc_ns < down)
        .max_by_key(|s| s.end_utc_ns())
        .unwrap();
    let after = segs
        .iter()
        .filter(|s| s.start_utc_ns > down)
        .min_by_key(|s| s.start_utc_ns)
        .unwrap();
    assert_ne!(
        before.run_id, after.run_id,
        "the outage must start a new run"
    );
    let resumed_in = after.start_utc_ns - up;
    assert!(
        resumed_in < 5_000_000_000,
        "resumed {} ms after the camera returned",
        resumed_in / 1_000_000
    );
    let gap = after.start_utc_ns - before.end_utc_ns();
    let outage = up - down;
    assert!(
        gap >= outage - GOP_NS,
        "gap {} ms shorter than the outage {} ms",
        gap / 1_000_000,
        outage / 1_000_000
    );
    assert!(
        gap <= outage + 5_000_000_000 + GOP_NS,
        "gap {} ms, outage {} ms",
        gap / 1_000_000,
        outage / 1_000_000
    );
    assert_all_decode(&site);
}

/// `time_source = "rtcp"`: fragments are stamped from the camera's sender-report clock (the test
/// camera's is the real-time clock, so the times agree with the wall clock within a second), the
/// fragments held until the first report are kept, and the run stays one continuous timeline.
#[test]
fn rtcp_time_source_stamps_from_sender_reports() {
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--gop", "25"]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[("sr", cam.url(), "time_source = \"rtcp\"")],
    );
    let started = now_utc_ns();
    let rec = Recorder::start(&site);
    wait_for(
        Duration::from_secs(20),
        "anchoring on the sender-report clock",
        || rec.log_text().contains("anchored to the camera's RTCP"),
    );
    std::thread::sleep(Duration::from_secs(4));
    let stopped = now_utc_ns();
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok, "{log}");
    let segs = site.complete();
    assert_eq!(segs.len(), 1, "one run, one segment: {segs:?}");
    let s = &segs[0];
    assert!(
        s.start_utc_ns > started - 1_000_000_000 && s.start_utc_ns < started + 5_000_000_000,
        "start {} vs {started}",
        s.start_utc_ns
    );
    assert!(
        s.fragments.len() >= 5,
        "fragments held before the first report were lost: {}",
        s.fragments.len()
    );
    assert!(
        (s.end_utc_ns() - stopped).abs() < 3_000_000_000,
        "end {} vs stop {stopped}",
        s.end_utc_ns()
    );
    assert_all_decode(&site);
}

/// Records camera `id` at `url` (64 MiB store) until it has media, then `secs` seconds more,
/// and stops the recorder, which must stop cleanly. Returns the site and the recorder's log.
fn record_for(url: String, id: &str, secs: u64) -> (Site, String) {
    let site = Site::new("max_size_mib = 64\nmin_free_mib = 0", &[(id, url, "")]);
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

/// H.265 is recorded and decodes.
#[test]
fn records_h265() {
    let cam = TestCam::start(&["--codec", "h265", "--width", "320", "--height", "240"]);
    let (site, _) = record_for(cam.url(), "hevc", 5);
    let segs = site.complete();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].duration_ns > 3_000_000_000);
    let scan = edgerec::mp4::scan_file(&site.store().join(&segs[0].path)).unwrap();
    assert!(
        scan.codec == "hvc1" || scan.codec == "hev1",
        "codec {}",
        scan.codec
    );
    assert_all_decode(&site);
}

/// A camera that changes its resolution mid-stream (new SPS/PPS, so a new init segment): the open
/// segment closes at once, a new run (`codec_change`) starts without a reconnect, every segment
/// decodes, and each file's own `moov` gives the size its fragments were encoded at.
#[test]
fn resolution_change_starts_a_codec_change_run() {
    let cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--switch-size",
        "480x272",
    ]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[("lobby", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "first media", || {
        site.segments().iter().any(|s| s.duration_ns > 0)
    });
    std::thread::sleep(Duration::from_secs(3));
    cam.switch_size();
    wait_for(Duration::from_secs(20), "a second run", || {
        site.segments().len() >= 2
    });
    std::thread::sleep(Duration::from_secs(3));
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert!(
        !log.contains("camera lost"),
        "the change must not be handled as a lost camera: {log}"
    );
    let segs = site.complete();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_ne!(segs[0].run_id, segs[1].run_id);
    let ix = edgerec::index::Index::open_read_only(&site.index_path()).unwrap();
    let reasons: Vec<String> = ix.runs("lobby").unwrap().into_iter().map(|r| r.2).collect();
    assert_eq!(reasons, ["connect", "codec_change"]);
    let sizes: Vec<String> = segs
        .iter()
        .map(|s| {
            let out = std::process::Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
                .args(["stream=width,height", "-of", "csv=p=0"])
                .arg(site.store().join(&s.path))
                .output()
                .expect("ffprobe");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    assert_eq!(sizes, ["320,240", "480,272"]);
    // The change shows as a gap of at most a fragment: the runs meet.
    assert!((segs[1].start_utc_ns - segs[0].end_utc_ns()).abs() < 2 * GOP_NS);
    assert_all_decode(&site);
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "fsck: {out}");
}

/// A camera that answers 401 is retried with backoff and never disturbs another camera; its
/// credentials never reach the log.
#[test]
fn unauthorized_camera_does_not_disturb_others() {
    let cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--user",
        "op",
        "--password",
        "s3cret-pw",
    ]);
    let url = cam.url().replace("rtsp://", "rtsp://op:wrong-pw@");
    let good = "username = \"op\"\npassword = \"s3cret-pw\"".to_string();
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[("bad", url, ""), ("good", cam.url(), &good)],
    );
    let rec = Recorder::start(&site);
    wait_for(
        Duration::from_secs(20),
        "media from the good camera",
        || site.segments().iter().any(|s| s.camera == "good"),
    );
    wait_for(Duration::from_secs(20), "a second 401 retry", || {
        rec.log_text().matches("Unauthorized").count() >= 2
    });
    let log = rec.log_text();
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert!(
        !log.contains("wrong-pw") && !log.contains("s3cret-pw"),
        "credentials logged:\n{log}"
    );
    assert!(site.segments().iter().all(|s| s.camera == "good"));
}

/// `check-config` exits non-zero naming the key and the rule.
#[test]
fn check_config_names_key_and_rule() {
    let cases = [
        ("segment_length = \"PT45S\"", "storage.segment_length"),
        ("segment_length = \"PT5M30S\"", "storage.segment_length"),
        ("segment_length = \"PT0S\"", "storage.segment_length"),
        ("max_size_mib = \"lots\"", "max_size_mib"),
        ("colour = \"red\"", "colour"),
    ];
    for (line, key) in cases {
        let site = Site::new(
            &format!("max_size_mib = 64\n{line}")
                .replace("max_size_mib = 64\nmax_size_mib", "max_size_mib"),
            &[("a", "rtsp://h/s".into(), "")],
        );
        let out = std::process::Command::new(EDGEREC)
            .args(["check-config", "--config"])
            .arg(&site.config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {err}");
        assert!(
            err.contains(key),
            "{line}: message {err:?} does not name {key}"
        );
    }
    for ok in ["PT30S", "PT5M"] {
        let site = Site::new(
            &format!("max_size_mib = 64\nsegment_length = \"{ok}\""),
            &[("a", "rtsp://h/s".into(), "")],
        );
        let out = std::process::Command::new(EDGEREC)
            .args(["check-config", "--config"])
            .arg(&site.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{ok}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Operator errors get a clear message and lose nothing: a second recorder on the same store is
/// refused (the first keeps recording), and a damaged index names the fix, which works: moved
/// aside, `fsck --rebuild` recreates it from the media files. `fsck` exits as fsck(8) does: 8
/// beside a recorder, 0 clean, 4 with a file gone, 1 after `--repair` corrected it.
#[test]
fn store_misuse_gets_clear_errors() {
    let cam = TestCam::start(&["--width", "320", "--height", "240"]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[("shed", cam.url(), "")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "media", || {
        !site.segments().is_empty()
    });
    let second = std::process::Command::new(EDGEREC)
        .args(["run", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "a second recorder started on the same store"
    );
    assert!(err.contains("another edgerec process"), "{err}");
    let (code, out) = site.fsck_code(&[]);
    assert!(
        code == 8 && out.contains("another edgerec process"),
        "fsck beside a recorder: operational error (fsck(8) code 8): {code} {out}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (ok, _) = rec.terminate();
    assert!(ok, "the first recorder kept going and stopped cleanly");
    let before = site.complete();
    assert_eq!(before.len(), 1);

    // Damage the index.
    std::fs::write(site.index_path(), vec![0x42u8; 4096]).unwrap();
    let _ = std::fs::remove_file(site.store().join("index.sqlite3-wal"));
    let _ = std::fs::remove_file(site.store().join("index.sqlite3-shm"));
    let run = std::process::Command::new(EDGEREC)
        .args(["run", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("fsck --rebuild") && err.contains("index.sqlite3"),
        "{err}"
    );
    std::fs::rename(site.index_path(), site.store().join("index.damaged")).unwrap();
    let (ok, out) = site.fsck(&["--rebuild"]);
    assert!(ok, "{out}");
    let after = site.complete();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].path.as_str(), after[0].size_bytes),
        (before[0].path.as_str(), before[0].size_bytes)
    );
    // Exit codes as fsck(8): clean 0; a file gone is an error left (4) until --repair corrects
    // it (1); then clean again.
    assert_eq!(site.fsck_code(&[]).0, 0);
    std::fs::remove_file(site.store().join(&after[0].path)).unwrap();
    let (code, out) = site.fsck_code(&[]);
    assert!(code == 4 && out.contains("has no file"), "{code} {out}");
    let (code, out) = site.fsck_code(&["--repair"]);
    assert!(code == 1 && out.contains("1 corrected"), "{code} {out}");
    assert_eq!(site.fsck_code(&[]).0, 0);
}

/// A camera that sends B-frames (frames in decode order, PTS != DTS): every frame is kept, the
/// files carry B-frames with increasing decode times and presentation times after them, and
/// everything decodes. (A file then starts at its first frame's composition offset, the
/// B-frames' reorder delay, instead of 0.)
#[test]
fn records_b_frames_with_their_decode_times() {
    let cam = TestCam::start(&["--width", "320", "--height", "240", "--bframes", "2"]);
    let (site, _) = record_for(cam.url(), "b", 5);
    for f in site.media_files() {
        let e = ffmpeg_errors(&f);
        assert!(e.is_empty(), "{} does not decode cleanly: {e}", f.display());
    }
    let segs = site.complete();
    assert_eq!(segs.len(), 1, "one run, one segment");
    let path = site.store().join(&segs[0].path);
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts,dts:frame=pict_type", "-of", "json"])
        .arg(&path)
        .output()
        .expect("run ffprobe");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = j["packets_and_frames"].as_array().expect("ffprobe items");
    let of = |kind: &'static str| items.iter().filter(move |i| i["type"] == kind);
    let ts = |p: &serde_json::Value, k: &str| p[k].as_i64().expect("timestamp");
    let packets: Vec<&serde_json::Value> = of("packet").collect();
    let dts: Vec<i64> = packets.iter().map(|p| ts(p, "dts")).collect();
    assert_eq!(dts[0], 0, "the file's decode time starts at 0");
    assert!(
        dts.windows(2).all(|w| w[0] < w[1]),
        "decode times go back: {dts:?}"
    );
    assert!(
        packets.iter().all(|p| ts(p, "pts") >= ts(p, "dts")),
        "a frame is shown before it is decoded"
    );
    let reordered = packets
        .iter()
        .filter(|p| ts(p, "pts") != ts(p, "dts"))
        .count();
    let b = of("frame").filter(|f| f["pict_type"] == "B").count();
    assert!(
        b * 3 >= packets.len() && reordered * 4 >= packets.len(),
        "{b} B-frames and {reordered} reordered of {} packets",
        packets.len()
    );
    // Every frame of the recording's span: 25 fps, within two frames.
    let want = segs[0].duration_ns as f64 / 40_000_000.0;
    assert!(
        (packets.len() as f64 - want).abs() <= 2.0,
        "{} frames for {} ns",
        packets.len(),
        segs[0].duration_ns
    );
}

/// A camera that asks for digest authentication, with the credentials in the URL: recorded,
/// and neither the password nor the URL's credentials reach the log.
#[test]
fn digest_auth_records_and_logs_no_credentials() {
    let cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--user",
        "op",
        "--password",
        "d1gest-pw",
        "--digest",
    ]);
    let url = cam.url().replace("rtsp://", "rtsp://op:d1gest-pw@");
    let (site, log) = record_for(url, "d", 3);
    assert!(!log.contains("d1gest-pw"), "password logged:\n{log}");
    assert_all_decode(&site);
}

/// A camera that hangs with its connection open (SIGSTOP): no data for `stall_timeout` is a
/// loss, found within that time plus the supervisor's 100 ms poll; once the camera goes on, a new
/// run is recorded within the reconnect bound of issue 1 (5 s).
#[test]
fn a_hung_camera_is_a_stall_and_recording_resumes_when_it_goes_on() {
    let cam = TestCam::start(&["--width", "320", "--height", "240"]);
    let site = Site::new(
        "max_size_mib = 64\nmin_free_mib = 0",
        &[("hung", cam.url(), "stall_timeout = \"PT2S\"")],
    );
    let rec = Recorder::start(&site);
    wait_for(Duration::from_secs(20), "media", || {
        !site.segments().is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    cam.freeze();
    let frozen = Instant::now();
    wait_for(Duration::from_secs(10), "the stall", || {
        rec.log_text().contains("no data for 2s")
    });
    let found = frozen.elapsed();
    assert!(
        found <= Duration::from_millis(2_900),
        "stall found {found:?} after the camera hung (stall_timeout 2 s)"
    );
    std::thread::sleep(Duration::from_secs(1));
    cam.thaw();
    let thawed = Instant::now();
    wait_for(Duration::from_secs(15), "a second run", || {
        let segs = site.segments();
        segs.len() >= 2 && segs.iter().any(|s| s.run_id != segs[0].run_id)
    });
    let back = thawed.elapsed();
    let (ok, _) = rec.terminate();
    assert!(ok);
    assert!(
        back <= Duration::from_secs(6),
        "recording resumed {back:?} after the camera went on"
    );
    assert_all_decode(&site);
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "fsck: {out}");
}

/// A camera that also sends audio (AAC), whose audio stops for a while: its video is recorded
/// without a gap or a new run on either source, and every file decodes.
#[test]
fn a_camera_with_a_microphone_that_mutes_records_its_video_whole() {
    let cam = TestCam::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--audio",
        "aac",
        "--audio-gap",
        "2,3",
    ]);
    // Past the 3 s without audio that starts 2 s in.
    let (site, _) = record_for(cam.url(), "mic", 8);
    let segs = site.complete();
    assert_eq!(segs.len(), 1, "one run, one segment: {segs:?}");
    assert!(segs[0].duration_ns >= 7_000_000_000, "{segs:?}");
    assert_all_decode(&site);
}
