//! The browser page (`GET /`, cargo feature `ui`) in headless Debian chromium, driven by
//! `tests/browser/ui.mjs` through playwright-core, against a real recorder, test camera and
//! camera outage: it asks for the token once, lists the camera with its state, shows the gap
//! the outage made, plays from a click after the gap (frames decoded, the playing time after the
//! gap), downloads an MP4 export that ffprobe reads, and shows an EVR camera's clip and event on
//! its timeline. The screenshots are kept as `target/ui-page.png` and `target/ui-page-evr.png`
//! (CI artifacts).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const TOKEN: &str = "ui-secret-1";

fn api(site: &Site, path: &str) -> serde_json::Value {
    let (st, head, body) = http_get(
        ("127.0.0.1", site.http_port),
        path,
        &[&format!("Authorization: Bearer {TOKEN}")],
    );
    assert_eq!(st, 200, "{path}: {head} {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn spans(site: &Site) -> Vec<(i64, i64)> {
    let now = now_utc_ns();
    let path = format!(
        "/cam/content.ism/availableMedia?precision=full&startTime={}&endTime={}",
        iso_ns(now - 3_600_000_000_000),
        iso_ns(now + 60_000_000_000)
    );
    api(site, &path)["timeRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (t_of(&r["start"]), t_of(&r["end"])))
        .collect()
}

fn camera(site: &Site) -> serde_json::Value {
    api(site, "/api/cameras")["cameras"][0].clone()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

#[test]
fn the_page_lists_cameras_shows_the_gap_plays_after_it_and_exports() {
    for t in ["chromium", "node", "ffprobe"] {
        require(t);
    }
    let browser = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` (make deps does)"
    );
    // Two recorder cameras on this test camera: one encoder per client, since gst-rtsp-server
    // 1.22's shared media can abort when the second PLAY comes as the first one's media starts.
    let mut cam = TestCam::start(&["--gop", "25", "--unshared"]);
    let site = Site::new(
        "max_size_mib = 512\nmin_free_mib = 0\nsegment_length = \"PT30S\"",
        &[
            ("cam", cam.url(), ""),
            ("gate", cam.url(), "mode = \"evr\""),
        ],
    );
    let tokens = site.dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let mut cfg = std::fs::read_to_string(&site.config).unwrap();
    cfg += &format!("token_file = \"{}\"\n", tokens.display());
    std::fs::write(&site.config, cfg).unwrap();
    let _rec = Recorder::start(&site);
    wait_port(site.http_port, "recorder HTTP");

    // The page and its files need no token; the API does.
    let addr = ("127.0.0.1", site.http_port);
    let (st, head, body) = http_get(addr, "/", &[]);
    assert_eq!(st, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("ui/app.js"));
    for f in ["/ui/app.js", "/ui/app.css", "/ui/hls.light.min.js"] {
        let (st, head, body) = http_get(addr, f, &[]);
        assert_eq!(st, 200, "{f}: {head}");
        assert!(body.len() > 1000, "{f}: {} bytes", body.len());
    }
    let (st, _, _) = http_get(addr, "/api/cameras", &[]);
    assert_eq!(st, 401);

    // Media, an outage the recorder notices, media again.
    wait_for(Duration::from_secs(40), "6 s of media", || {
        spans(&site)
            .last()
            .is_some_and(|s| s.1 - s.0 >= 6_000_000_000)
    });
    let c = camera(&site);
    assert_eq!(c["mode"], "cvr");
    assert_eq!(c["clipOpen"], false);
    assert!(c["uploadBacklog"].is_null(), "{c}");
    cam.stop();
    wait_for(Duration::from_secs(40), "the camera reported lost", || {
        camera(&site)["connected"] == false
    });
    cam.restart();
    wait_for(
        Duration::from_secs(60),
        "a second span of 8 s after the gap",
        || {
            let s = spans(&site);
            s.len() == 2 && s[1].1 - s[1].0 >= 8_000_000_000
        },
    );
    let s = spans(&site);
    let (gap_start, gap_end) = (s[0].1, s[1].0);
    // An event on the EVR camera: a clip and an event marker for its timeline.
    let (st, body) = http_post_json_with(
        addr,
        "/api/cameras/gate/events",
        r#"{"label":"door"}"#,
        &[&format!("Authorization: Bearer {TOKEN}")],
    );
    assert!(
        st == 200 || st == 201,
        "{st} {}",
        String::from_utf8_lossy(&body)
    );
    wait_for(Duration::from_secs(20), "the gate's clip open", || {
        api(&site, "/api/cameras")["cameras"][1]["clipOpen"] == true
    });

    let downloads = site.dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let shot = site.dir.path().join("ui-page.png");
    let out = Command::new("node")
        .arg(browser.join("ui.mjs"))
        .arg(format!("http://127.0.0.1:{}", site.http_port))
        .arg(TOKEN)
        .arg(&shot)
        .arg(&downloads)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "ui.mjs: no result; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    for name in ["ui-page.png", "ui-page-evr.png"] {
        let from = site.dir.path().join(name);
        if from.exists() {
            let keep = target_dir().join(name);
            let _ = std::fs::create_dir_all(target_dir());
            std::fs::copy(&from, &keep).unwrap();
            eprintln!("screenshot: {}", keep.display());
        }
    }
    assert!(r.get("error").is_none(), "ui.mjs: {r}");
    assert_eq!(r["steps"][0], "asked for a token", "{r}");
    assert!(
        r["consoleErrors"].as_array().unwrap().is_empty(),
        "console errors: {r}"
    );

    // The camera list, with its state.
    let cams = r["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 2, "{r}");
    assert_eq!(cams[0]["id"], "cam");
    let text = cams[0]["text"].as_str().unwrap();
    assert!(
        text.contains("recording") && text.contains("connected") && text.contains("CVR"),
        "{text}"
    );
    let gate = cams[1]["text"].as_str().unwrap();
    assert!(gate.contains("EVR") && gate.contains("clip open"), "{gate}");
    // The EVR camera's timeline: its clip and the event that opened it.
    assert!(
        r["gateClips"].as_u64() == Some(1) && r["gateEvents"].as_u64() == Some(1),
        "{r}"
    );

    // The timeline: two spans of media and the outage between them, where availableMedia says.
    let t = |v: &serde_json::Value| t_of(v);
    let gaps = r["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{r}");
    let ms = 1_000_000;
    assert!(
        (t(&gaps[0][0]) - gap_start).abs() <= ms && (t(&gaps[0][1]) - gap_end).abs() <= ms,
        "gap {gaps:?} vs availableMedia {}..{}",
        iso_ns(gap_start),
        iso_ns(gap_end)
    );
    assert!(gap_end - gap_start >= 1_000_000_000, "outage too short");

    // The click after the gap plays from after the gap.
    assert!(r["advanced"].as_f64().unwrap() >= 2.0, "{r}");
    assert!(r["frames"].as_u64().unwrap() > 0, "{r}");
    let requested = r["requested"].as_f64().unwrap() as i64 * 1_000_000;
    let playing = t(&r["playingDate"]);
    assert!(
        requested > gap_end && playing > gap_end && playing <= s[1].1 + 3_000_000_000,
        "clicked {} and playing {} after the gap ending {}",
        iso_ns(requested),
        iso_ns(playing),
        iso_ns(gap_end)
    );
    assert!(
        r["playingText"].as_str().unwrap().contains("playing 20"),
        "{r}"
    );

    // The export downloaded, named after the camera, and it is an MP4 ffprobe reads.
    assert!(r["exportError"].as_str().unwrap().is_empty(), "{r}");
    let file = PathBuf::from(r["download"].as_str().unwrap());
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("cam_"),
        "{}",
        file.display()
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration,format_name",
        ])
        .args(["-of", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let dur: f64 = j["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        j["format"]["format_name"].as_str().unwrap().contains("mp4") && dur >= 2.0,
        "{j}"
    );
    assert!(shot.metadata().unwrap().len() > 10_000, "screenshot");
}
