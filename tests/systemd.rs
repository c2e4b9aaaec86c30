//! The systemd contract (sd_notify(3)) against a real notify socket: `READY=1` with a `STATUS=`
//! line once recording runs, `WATCHDOG=1` only while the storage writer makes progress, and
//! `STOPPING=1` on SIGTERM. The stuck writer is real: the storage is an ext4 loop mount frozen
//! with `fsfreeze`, which blocks writes the way a hung SD card does.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Notifications received within `d`.
fn receive(sock: &UnixDatagram, d: Duration) -> Vec<String> {
    let until = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

struct LoopMount(std::path::PathBuf);

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).status();
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn notify_ready_status_and_watchdog_follow_writer_progress() {
    require("fsfreeze");
    require("mkfs.ext4");
    let cam = TestCam::start(&["--width", "320", "--height", "240"]);
    let site = Site::new(
        "max_size_mib = 48\nmin_free_mib = 0",
        &[("porch", cam.url(), "")],
    );
    let img = site.dir.path().join("card.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(96 << 20).unwrap();
    assert!(Command::new("mkfs.ext4")
        .arg("-q")
        .arg(&img)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(site.store()).unwrap();
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(site.store())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "loop mount needs root: run the tests as root (CI does)"
    );
    let _mount = LoopMount(site.store());

    let sock_path = site.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let rec = Recorder::start_env(
        &site,
        &[
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            ("WATCHDOG_USEC", "2000000".to_string()),
        ],
    );
    let first = receive(&sock, Duration::from_secs(10));
    let ready = first
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {first:?}"));
    assert!(
        ready.contains("STATUS=recording: "),
        "READY without a status line: {ready}"
    );
    wait_for(Duration::from_secs(20), "media", || {
        !site.segments().is_empty()
    });
    let pings = receive(&sock, Duration::from_secs(4))
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(
        pings >= 3,
        "expected a ping every second while the writer progresses, got {pings}"
    );

    // Freeze the card: the writer blocks in its next write and the pings must stop.
    assert!(Command::new("fsfreeze")
        .arg("-f")
        .arg(site.store())
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_secs(3));
    // Drop what was queued before the writer was caught by the freeze, then watch for 5 s.
    receive(&sock, Duration::from_millis(10));
    let frozen = receive(&sock, Duration::from_secs(5));
    let frozen_pings = frozen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(Command::new("fsfreeze")
        .arg("-u")
        .arg(site.store())
        .status()
        .unwrap()
        .success());
    assert_eq!(
        frozen_pings, 0,
        "pinged the watchdog while the writer was stuck: {frozen:?}"
    );
    assert!(
        rec.log_text().contains("withholding the watchdog ping"),
        "{}",
        rec.log_text()
    );

    // Thawed: the writer catches up and the pings come back.
    let thawed = receive(&sock, Duration::from_secs(6));
    assert!(
        thawed.iter().any(|m| m.contains("WATCHDOG=1")),
        "no ping after the card came back: {thawed:?}"
    );

    let pid = rec.pid();
    let waiter = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        sock.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut got = Vec::new();
        while let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let stop = m.contains("STOPPING=1");
            got.push(m);
            if stop {
                break;
            }
        }
        got
    });
    let (ok, secs) = rec.terminate();
    assert!(ok && secs < 10.0, "clean stop (pid {pid}) took {secs} s");
    let msgs = waiter.join().unwrap();
    assert!(
        msgs.iter().any(|m| m.contains("STOPPING=1")),
        "no STOPPING=1: {msgs:?}"
    );
    let (clean, out) = site.fsck(&[]);
    assert!(clean, "{out}");
}
