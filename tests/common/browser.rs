//! Playing manifests in headless Debian chromium with hls.js or dash.js (`tests/browser/play.mjs`
//! through playwright-core).

use std::path::PathBuf;
use std::process::Command;

use super::require;

pub fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Plays `url` with hls.js or dash.js (or, with `file`, as a file chromium opens itself) in
/// headless chromium: currentTime advances by at least 2 s, no player error, and the picture is
/// a picture. Returns what `play.mjs` reported.
pub fn browser_play(lib: &str, url: &str, shot: &std::path::Path) -> serde_json::Value {
    require("chromium");
    require("node");
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` (make deps does)"
    );
    let out = Command::new("node")
        .arg(browser_dir().join("play.mjs"))
        .args([lib, url])
        .arg(shot)
        .args(["2", "60"])
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "{lib} {url}: no result; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(
        r["errors"].as_array().unwrap().is_empty(),
        "{lib} {url}: {r}"
    );
    assert!(r["advanced"].as_f64().unwrap() >= 2.0, "{lib} {url}: {r}");
    assert!(r["videoWidth"].as_u64().unwrap() > 0, "{lib} {url}: {r}");
    assert!(
        r["distinctColours"].as_u64().unwrap() >= 8,
        "{lib} {url}: flat picture: {r}"
    );
    assert!(shot.metadata().unwrap().len() > 1000, "screenshot");
    r
}
