//! Upload benchmark (issue 4): a backlog of 200 segments (1 MiB each by default) uploaded by
//! edgerec's uploader to a local moto S3 server, next to `aws s3 cp --recursive` of the same files
//! to the same server in the same run. Prints throughput and CPU seconds per GB for both.
//!
//! `bash bench/upload.sh` (needs `.ci/deps.sh`: moto and awscli in target/ci-venv).
//! BENCH_SEGMENTS and BENCH_SEGMENT_KIB change the backlog.

#[path = "util.rs"]
mod util;
use util::{env_or, free_port, venv};

use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgerec::config::{UploadConfig, UploadTarget};
use edgerec::index::{FragmentEntry, SegmentRow, SegmentState};
use edgerec::store::layout::segment_rel_path;
use edgerec::store::writer::{CameraPolicy, Writer, WriterConfig};
use edgerec::store::Store;

fn cpu_s(who: nix::sys::resource::UsageWho) -> f64 {
    let Ok(u) = nix::sys::resource::getrusage(who) else {
        return 0.0;
    };
    let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

fn main() {
    let n = env_or("BENCH_SEGMENTS", 200);
    let size = env_or("BENCH_SEGMENT_KIB", 1024) * 1024;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let index_path = root.join("index.sqlite3");
    let mut store = Store::open(&root, &index_path).unwrap();
    let run = store.index().insert_run("cam", 0, "connect").unwrap();
    let start0 = 1_700_000_000_000_000_000i64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rows = Vec::new();
    for i in 0..n as i64 {
        let start = start0 + i * 30_000_000_000;
        let rel = segment_rel_path("cam", start);
        let abs = root.join(&rel);
        std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(&abs, &data).unwrap();
        rows.push(SegmentRow {
            id: 0,
            camera: "cam".into(),
            run_id: run,
            start_utc_ns: start,
            duration_ns: 30_000_000_000,
            size_bytes: size as i64,
            alloc_bytes: size as i64,
            init_size_bytes: 1,
            fragments: vec![FragmentEntry {
                size_bytes: size as u32 - 1,
                duration_us: 30_000_000,
            }],
            codec: "avc1".into(),
            audio_codec: None,
            path: rel,
            state: SegmentState::Complete,
            uploaded_utc_ns: None,
            timescale: 90_000,
            decode_time: 0,
            media_seq: 0,
            disc_seq: 0,
            disc_start: false,
        });
    }
    store.index().insert_segments(&rows).unwrap();
    let total = (n * size) as f64;
    println!(
        "backlog: {n} segments of {} KiB = {:.0} MiB",
        size / 1024,
        total / 1048576.0
    );

    let port = free_port();
    let mut moto = Command::new(venv("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    for b in ["edgerec", "awscli"] {
        let ok = Command::new("curl")
            .args(["-sS", "-X", "PUT", &format!("{endpoint}/{b}")])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "create bucket {b}");
    }

    // edgerec's uploader.
    let writer = Writer::new(
        store,
        WriterConfig {
            index_path: index_path.clone(),
            max_size_bytes: u64::MAX / 4,
            min_free_bytes: 0,
            sync_interval: Duration::ZERO,
            cameras: Default::default(),
            default_policy: CameraPolicy::cvr(Duration::from_secs(30), None),
        },
    )
    .unwrap();
    let (handle, _writer_thread) = writer.spawn().unwrap();
    let cfg = UploadConfig {
        target: UploadTarget::S3 {
            bucket: "edgerec".into(),
        },
        prefix: "bench".into(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        s3_credentials: Some(("testing".into(), "testing".into())),
        azure_account: None,
        max_rate_kbps: 0,
        multipart_threshold_bytes: 16 << 20,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_s(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let t0 = Instant::now();
    let (shared, th) = edgerec::upload::spawn(
        cfg,
        root.clone(),
        index_path.clone(),
        handle,
        Default::default(),
        stop.clone(),
    )
    .unwrap();
    while shared.snapshot().uploaded_segments < n as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(1800),
            "edgerec upload took over 30 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ours_s, ours_cpu) = (
        t0.elapsed().as_secs_f64(),
        cpu_s(nix::sys::resource::UsageWho::RUSAGE_SELF) - cpu0,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = th.join();

    // The peer: awscli, same files, same server.
    let cpu0 = cpu_s(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    let t0 = Instant::now();
    let st = Command::new(venv("aws"))
        .args([
            "--endpoint-url",
            &endpoint,
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
        ])
        .arg(root.join("media"))
        .arg("s3://awscli/bench/")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .status()
        .unwrap();
    assert!(st.success(), "aws s3 cp failed");
    let (aws_s, aws_cpu) = (
        t0.elapsed().as_secs_f64(),
        cpu_s(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) - cpu0,
    );
    let _ = moto.kill();
    let _ = moto.wait();

    let gb = total / 1e9;
    let mbps = |s: f64| total / 1048576.0 / s;
    println!(
        "edgerec uploader:     {ours_s:7.2} s  {:7.1} MiB/s  CPU {ours_cpu:6.2} s = {:6.2} CPU s/GB",
        mbps(ours_s),
        ours_cpu / gb
    );
    println!(
        "aws s3 cp --recursive: {aws_s:6.2} s  {:7.1} MiB/s  CPU {aws_cpu:6.2} s = {:6.2} CPU s/GB",
        mbps(aws_s),
        aws_cpu / gb
    );
    println!(
        "ratio edgerec / awscli: time {:.2}, CPU {:.2} (the moto server's own CPU is in neither)",
        ours_s / aws_s,
        ours_cpu / aws_cpu
    );
}
