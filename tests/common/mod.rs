//! Test harness: starts real processes (the RTSP test camera, the recorder, ffmpeg) on 127.0.0.1
//! and free ports, and reads the index the way an operator would. Every process is killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod broker;
pub mod browser;
pub mod cloud;
pub mod stores;

use edgerec::index::SegmentRow;

pub const EDGEREC: &str = env!("CARGO_BIN_EXE_edgerec");
pub const TESTCAM: &str = env!("CARGO_BIN_EXE_edgerec-testcam");

/// Fails loudly if a tool the tests need is missing (never skip).
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is required by this test: install it (make deps / .ci/run do)"
    );
}

/// Test camera arguments for a high bitrate that fills a card quickly (640x360 noise, 4 Mbit/s).
pub const SNOW_4M: &[&str] = &[
    "--width",
    "640",
    "--height",
    "360",
    "--bitrate",
    "4000",
    "--pattern",
    "snow",
];

/// Waits until something listens on 127.0.0.1:`port` (at most 60 s).
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_utc_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A running `edgerec-testcam`.
pub struct TestCam {
    child: Child,
    pub port: u16,
    args: Vec<String>,
}

impl TestCam {
    /// Starts a camera with extra args (e.g. `["--codec", "h265"]`); waits until it listens.
    pub fn start(extra: &[&str]) -> TestCam {
        let port = free_port();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(port, &args);
        TestCam { child, port, args }
    }

    fn spawn(port: u16, args: &[String]) -> Child {
        let mut child = Command::new(TESTCAM)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start edgerec-testcam");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("READY "),
            "testcam did not start: {line:?}"
        );
        child
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/stream", self.port)
    }

    /// Kills the camera (an outage).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGUSR1 (with `--switch-size`: switch the picture size mid-stream).
    pub fn switch_size(&self) {
        let ok = Command::new("kill")
            .args(["-USR1", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -USR1 testcam");
    }

    /// Freezes the camera (SIGSTOP): its connections stay open and send nothing, as a hung
    /// camera's do. [`TestCam::thaw`] lets it go on.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen camera go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} testcam");
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.args);
    }
}

impl Drop for TestCam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The RTSP client the tests' cameras use: `EDGEREC_TEST_SOURCE` (`retina` or `rtspsrc`), or
/// the recorder's default when it is unset. `make test` runs the recording, playback, MQTT and
/// upload tests once with each.
pub fn test_source() -> Option<String> {
    let s = std::env::var("EDGEREC_TEST_SOURCE").ok()?;
    assert!(
        s == "retina" || s == "rtspsrc",
        "EDGEREC_TEST_SOURCE must be retina or rtspsrc, got {s:?}"
    );
    Some(s)
}

/// A `[[camera]]` block as [`Site`] writes it: `source` from [`test_source`] unless `extra`
/// chooses one (or UDP).
pub fn camera_block(id: &str, url: &str, extra: &str) -> String {
    let source = match test_source() {
        Some(s) if !extra.contains("source =") && !extra.contains("\"udp\"") => {
            format!("source = \"{s}\"\n")
        }
        _ => String::new(),
    };
    format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\n{source}{extra}\n")
}

/// A storage directory with a config file.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The recorder's HTTP port (127.0.0.1).
    pub http_port: u16,
}

impl Site {
    /// Writes a config with the given `[storage]` extra lines and cameras (id, url, extra lines).
    pub fn new(storage_extra: &str, cameras: &[(&str, String, &str)]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        Self::in_dir(dir, storage_extra, cameras)
    }

    pub fn in_dir(
        dir: tempfile::TempDir,
        storage_extra: &str,
        cameras: &[(&str, String, &str)],
    ) -> Site {
        let mut t = format!(
            "device_id = \"test-gw\"\n[storage]\npath = \"{}\"\n{}\n",
            dir.path().join("store").display(),
            storage_extra
        );
        for (id, url, extra) in cameras {
            t += &camera_block(id, url, extra);
        }
        let http_port = free_port();
        t += &format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n");
        let config = dir.path().join("edgerec.toml");
        std::fs::write(&config, t).unwrap();
        Site {
            dir,
            config,
            http_port,
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn index_path(&self) -> PathBuf {
        self.store().join("index.sqlite3")
    }

    /// Every segment row, through a read-only connection as playback would use (empty while
    /// the index does not exist yet).
    pub fn segments(&self) -> Vec<SegmentRow> {
        edgerec::index::Index::open_read_only(&self.index_path())
            .and_then(|ix| ix.all_segments())
            .unwrap_or_default()
    }

    pub fn complete(&self) -> Vec<SegmentRow> {
        self.segments()
            .into_iter()
            .filter(|s| s.state == edgerec::index::SegmentState::Complete)
            .collect()
    }

    /// Every `.mp4` under the store.
    pub fn media_files(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "mp4") {
                    out.push(p);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.store().join("media"), &mut v);
        v.sort();
        v
    }

    /// Allocated bytes of everything in the store but the lock file.
    pub fn used_bytes(&self) -> u64 {
        fn walk(d: &Path) -> u64 {
            use std::os::unix::fs::MetadataExt;
            let mut t = 0;
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => t += walk(&p),
                    Ok(m) => t += m.blocks() * 512,
                    Err(_) => {}
                }
            }
            t
        }
        walk(&self.store())
    }

    /// Runs `edgerec fsck` and returns (exit code, output).
    pub fn fsck_code(&self, extra: &[&str]) -> (i32, String) {
        let out = Command::new(EDGEREC)
            .args(["fsck", "--config"])
            .arg(&self.config)
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    /// Runs `edgerec fsck` and returns (success, output).
    pub fn fsck(&self, extra: &[&str]) -> (bool, String) {
        let (code, text) = self.fsck_code(extra);
        (code == 0, text)
    }
}

impl Site {
    /// The complete segments the uploader has uploaded (per the index), by start.
    pub fn uploaded(&self) -> Vec<SegmentRow> {
        let mut v: Vec<SegmentRow> = self
            .complete()
            .into_iter()
            .filter(|s| s.uploaded_utc_ns.is_some())
            .collect();
        v.sort_by_key(|s| s.start_utc_ns);
        v
    }
}

/// A running `edgerec run`.
pub struct Recorder {
    pub child: Child,
    pub log: PathBuf,
}

impl Recorder {
    pub fn start(site: &Site) -> Recorder {
        Self::start_env(site, &[])
    }

    /// Starts the recorder with extra environment variables.
    pub fn start_env(site: &Site, env: &[(&str, String)]) -> Recorder {
        let n = std::fs::read_dir(site.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = site.dir.path().join(format!("recorder-{n}.log"));
        // As systemd does, WATCHDOG_PID names the recorder itself: `sh` sets it to its own pid
        // and then becomes the recorder with exec.
        let child = Command::new("sh")
            .args([
                "-c",
                "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"",
                EDGEREC,
            ])
            .arg(&site.config)
            .env("EDGEREC_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start edgerec");
        Recorder { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then waits; returns (exit success, seconds taken).
    pub fn terminate(mut self) -> (bool, f64) {
        let t = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.success(), t.elapsed().as_secs_f64());
            }
            assert!(
                Instant::now() < deadline,
                "recorder ignored SIGTERM: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the recorder said (the tail of its log).
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- recorder log, last {} lines ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// `ffmpeg -v error -i F -f null -`: returns what it printed (empty means it decoded cleanly).
pub fn ffmpeg_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut s =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        s += &format!("[exit {}]", out.status);
    }
    s
}

/// Asserts that every media file decodes with no ffmpeg output, and that every complete segment
/// file plays on its own ([`assert_plays_alone`]).
pub fn assert_all_decode(site: &Site) {
    require("ffmpeg");
    let files = site.media_files();
    assert!(!files.is_empty(), "no media files");
    for f in files {
        let e = ffmpeg_errors(&f);
        assert!(e.is_empty(), "{} does not decode cleanly: {e}", f.display());
    }
    for row in site.complete() {
        let path = site.store().join(&row.path);
        if path.exists() {
            assert_plays_alone(&path, &row);
        }
    }
}

/// A segment file opened by itself (issue 14): ffprobe puts its video's start within one frame
/// of 0 and its video's duration within one frame of the index's duration for it (the index
/// counts video; an audio track may end a little later, the AAC encoder's flush at the end of a
/// run).
pub fn assert_plays_alone(path: &Path, row: &SegmentRow) {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "format=start_time,duration:stream=avg_frame_rate,start_time,duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "ffprobe {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let v = &j["streams"][0];
    let start = num(&v["start_time"])
        .or_else(|| num(&j["format"]["start_time"]))
        .expect("start_time");
    let duration = num(&v["duration"])
        .or_else(|| num(&j["format"]["duration"]))
        .expect("duration");
    let rate = j["streams"][0]["avg_frame_rate"].as_str().unwrap_or("25/1");
    let frame = match rate.split_once('/') {
        Some((n, d)) => d.parse::<f64>().unwrap_or(1.0) / n.parse::<f64>().unwrap_or(25.0),
        None => 0.04,
    };
    let frame = if frame.is_finite() && frame > 0.0 {
        frame
    } else {
        0.04
    };
    let want = row.duration_ns as f64 / 1e9;
    assert!(
        start.abs() <= frame + 1e-3 && (duration - want).abs() <= frame + 1e-3,
        "{} alone: start {start} s, duration {duration} s; index {want} s (frame {frame} s)",
        path.display()
    );
}

/// Sends a raw HTTP/1.1 request and reads the answer to the end: (status, head lower-cased,
/// body bytes).
fn http_exchange(addr: impl std::net::ToSocketAddrs, request: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

/// A raw HTTP/1.1 GET (the path is sent as given, not normalised): (status, head lower-cased,
/// body bytes).
pub fn http_get(
    addr: impl std::net::ToSocketAddrs,
    path: &str,
    headers: &[&str],
) -> (u16, String, Vec<u8>) {
    http_request(addr, "GET", path, headers)
}

/// A raw HTTP/1.1 request without a body (GET, HEAD, ...): (status, head lower-cased, body).
pub fn http_request(
    addr: impl std::net::ToSocketAddrs,
    method: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String, Vec<u8>) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        req += &format!("{h}\r\n");
    }
    http_exchange(addr, &format!("{req}\r\n"))
}

/// A raw HTTP/1.1 POST of a JSON body: (status, body bytes).
pub fn http_post_json(
    addr: impl std::net::ToSocketAddrs,
    path: &str,
    json: &str,
) -> (u16, Vec<u8>) {
    http_post_json_with(addr, path, json, &[])
}

/// [`http_post_json`] with extra header lines (e.g. `Authorization: Bearer ..`).
pub fn http_post_json_with(
    addr: impl std::net::ToSocketAddrs,
    path: &str,
    json: &str,
    headers: &[&str],
) -> (u16, Vec<u8>) {
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        req += &format!("{h}\r\n");
    }
    req += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    let (status, _, body) = http_exchange(addr, &req);
    (status, body)
}

/// `GET path` on the site's HTTP server, as JSON; panics on a status other than 200.
pub fn get_json(site: &Site, path: &str) -> serde_json::Value {
    let (status, _, body) = http_get(("127.0.0.1", site.http_port), path, &[]);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// ffmpeg decodes `url` to frame checksums: (frames decoded, error output).
pub fn ffmpeg_frames(url: &str) -> (usize, String) {
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-i",
            url,
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-f",
            "framecrc",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        err += &format!("[exit {}]", out.status);
    }
    (frames, err)
}

/// Formats UTC ns as the API's ISO 8601 date-time with milliseconds.
pub fn iso_ns(ns: i64) -> String {
    edgerec::playback::time::format_full(ns)
}

/// `../shared/testdata/vtest.avi`: people walking past a fixed camera (768×576, 10 fps, 79.5 s).
pub fn footage() -> PathBuf {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/vtest.avi");
    assert!(f.exists(), "{} is missing", f.display());
    f
}

/// One frame of the footage (second 30) as `dir/still.png`.
pub fn footage_still(dir: &Path) -> PathBuf {
    require("ffmpeg");
    let png = dir.join("still.png");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-ss", "30", "-i"])
        .arg(footage())
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg still frame");
    png
}

/// The clips of `camera` between `from` and `to` (UTC ns), from `GET /api/cameras/{c}/clips`.
pub fn clips(site: &Site, camera: &str, from: i64, to: i64) -> Vec<serde_json::Value> {
    let v = get_json(
        site,
        &format!(
            "/api/cameras/{camera}/clips?startTime={}&endTime={}",
            iso_ns(from),
            iso_ns(to)
        ),
    );
    v["clips"].as_array().unwrap().clone()
}

/// UTC ns of an API date-time string.
pub fn t_of(v: &serde_json::Value) -> i64 {
    edgerec::playback::time::parse_datetime(v.as_str().unwrap()).unwrap()
}
