//! The `edgerec` command: `run`, `check-config`, `probe`, `export` and `fsck`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use edgerec::config::Config;
use edgerec::store::{fsck, fsutil, Store};

#[derive(Parser)]
#[command(
    version = edgerec::long_version(),
    about = "Video recorder for edge gateways: RTSP cameras to fMP4 segments on the card"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record every enabled camera until SIGTERM or SIGINT (a second signal exits at once).
    Run {
        /// Configuration file.
        #[arg(long, default_value = "/etc/edgerec/edgerec.toml")]
        config: PathBuf,
    },
    /// Serve playback of what a fleet of gateways uploaded, from the object store (the same API
    /// as a gateway's, under /{device}/{camera}/; docs/cloud.md). Exits 2 on a config error.
    #[cfg(feature = "cloud")]
    Serve {
        /// Configuration file (`[store]`, `[http]`, `[cache]`).
        #[arg(long, default_value = "/etc/edgerec/cloud.toml")]
        config: PathBuf,
    },
    /// Write the hour index objects that uploaded segments lack (uploads from before 0.6, or
    /// the last segments of an uploader that stopped), so that `edgerec serve` need not read
    /// them one by one. Idempotent; prints what it did as JSON. Exits 2 on a config error.
    #[cfg(feature = "cloud")]
    CloudIndex {
        /// Configuration file of `edgerec serve`.
        #[arg(long, default_value = "/etc/edgerec/cloud.toml")]
        config: PathBuf,
        /// Only this device (default: every device in the store).
        #[arg(long)]
        device: Option<String>,
    },
    /// Validate a configuration file; exits 2 naming the key and the rule on error.
    CheckConfig {
        /// Configuration file.
        #[arg(long, default_value = "/etc/edgerec/edgerec.toml")]
        config: PathBuf,
    },
    /// Connect to each camera as the recorder would and print what it sends (codec, profile,
    /// resolution, measured frame rate, GOP and bitrate, audio, RTCP sender reports), or one
    /// line that says what to fix. Exits 0 when every camera probed can be recorded, 1 when one
    /// cannot, 2 on a config error.
    Probe {
        /// Configuration file.
        #[arg(long, default_value = "/etc/edgerec/edgerec.toml")]
        config: PathBuf,
        /// Only this camera (also a disabled one); default: every enabled camera.
        #[arg(long)]
        camera: Option<String>,
        /// Seconds of video to measure after the first frame (GOP needs two key frames).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// One JSON object per camera (camelCase) instead of a line of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a time range of one camera as one ordinary MP4 file (chapters per continuous span,
    /// gaps closed up), from the card alone: works on a card pulled from a gateway and beside a
    /// running recorder (the index is read only). Exits 0 when written, 1 when there is no media
    /// in the range or writing fails, 2 on a bad config or argument.
    Export {
        /// Configuration file (for the storage path and http.max_export).
        #[arg(long, default_value = "/etc/edgerec/edgerec.toml")]
        config: PathBuf,
        /// Camera id.
        #[arg(long)]
        camera: String,
        /// Start, RFC 3339 UTC (e.g. 2026-11-24T10:00:00Z).
        #[arg(long)]
        start: String,
        /// End, RFC 3339 UTC.
        #[arg(long)]
        end: String,
        /// Output file (replaced if it exists).
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Check the index against the media files. Exit codes as fsck(8): 0 clean, 1 errors
    /// corrected (--repair), 4 errors left, 8 operational error (e.g. a recorder holds the store).
    Fsck {
        /// Configuration file.
        #[arg(long, default_value = "/etc/edgerec/edgerec.toml")]
        config: PathBuf,
        /// Fix what can be fixed: recover open segments, drop rows without files, adopt orphans.
        #[arg(long, conflicts_with = "rebuild")]
        repair: bool,
        /// Recreate the index from the media files alone.
        #[arg(long)]
        rebuild: bool,
    },
}

/// Logging to stderr (the journal under systemd). `EDGEREC_LOG` takes a level or
/// `target=level` pairs, e.g. `info,edgerec::ingest=debug` (default `info`).
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("EDGEREC_LOG").unwrap_or_else(|_| "info".into());
    let filter: Targets = spec.parse().unwrap_or_else(|e| {
        eprintln!(
            "edgerec: EDGEREC_LOG={spec:?} is not a level or target=level list ({e}); using info"
        );
        Targets::new().with_default(tracing::Level::INFO)
    });
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    // Under the journal: no time stamps (the journal has them) and each line starts with its
    // syslog priority, so `journalctl -p warning` works. Colours only on a terminal, so log
    // files stay greppable.
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    if journal {
        let fmt = fmt.event_format(edgerec::logging::JournalPriority(
            tracing_subscriber::fmt::format()
                .without_time()
                .with_ansi(false),
        ));
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .init();
    } else {
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .init();
    }
}

fn load(config: &std::path::Path) -> Result<Config, ExitCode> {
    load_with(config, edgerec::config::Secrets::Read)
}

fn load_with(
    config: &std::path::Path,
    secrets: edgerec::config::Secrets,
) -> Result<Config, ExitCode> {
    Config::load_with(config, secrets).map_err(|e| {
        eprintln!("edgerec: {}: {e}", config.display());
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.cmd {
        Cmd::CheckConfig { config } => match load(&config) {
            Ok(c) => {
                // Elements the config names must be installed (GStreamer is loaded for this only).
                if let Err(e) = edgerec::motion::branch::check_decoders(&c) {
                    eprintln!("edgerec: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
                println!(
                    "{}: ok: device {}, {} camera(s), storage {} (max {} MiB)",
                    config.display(),
                    c.device_id,
                    c.cameras.len(),
                    c.storage.path.display(),
                    c.storage.max_size_bytes / edgerec::config::MIB
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Probe {
            config,
            camera,
            seconds,
            json,
        } => match load(&config) {
            Ok(c) => probe_cmd(&c, camera.as_deref(), seconds, json),
            Err(code) => code,
        },
        Cmd::Export {
            config,
            camera,
            start,
            end,
            output,
        } => match load_with(&config, edgerec::config::Secrets::Skip) {
            Ok(c) => export_cmd(&c, &camera, &start, &end, &output),
            Err(code) => code,
        },
        #[cfg(feature = "cloud")]
        Cmd::CloudIndex { config, device } => {
            let cfg = match edgerec::config::cloud::CloudConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("edgerec: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            match edgerec::cloud::reindex::run_with(&cfg, device.as_deref()) {
                Ok(r) => {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("edgerec: cloud-index: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "cloud")]
        Cmd::Serve { config } => {
            let cfg = match edgerec::config::cloud::CloudConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("edgerec: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            match edgerec::cloud::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run { config } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                // The second signal exits at once (code 1); the first asks for a clean stop.
                let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone());
                let _ = signal_hook::flag::register(sig, stop.clone());
            }
            match edgerec::recorder::run(&cfg, stop) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Fsck {
            config,
            repair,
            rebuild,
        } => {
            // fsck reads no secret: run by hand, a systemd credential is not there. A config it
            // cannot use is an operational error (fsck(8) code 8).
            let cfg = match load_with(&config, edgerec::config::Secrets::Skip) {
                Ok(c) => c,
                Err(_) => return ExitCode::from(FSCK_OPERATIONAL),
            };
            match fsck_cmd(&cfg, repair, rebuild) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("edgerec fsck: {e:#}");
                    ExitCode::from(FSCK_OPERATIONAL)
                }
            }
        }
    }
}

/// `edgerec export`: plans the file like the HTTP route and writes it 1 MiB at a time.
fn export_cmd(
    cfg: &Config,
    camera: &str,
    start: &str,
    end: &str,
    output: &std::path::Path,
) -> ExitCode {
    use edgerec::playback::time::{format_full, parse_datetime};
    let bad = |m: String| {
        eprintln!("edgerec export: {m}");
        ExitCode::from(2)
    };
    let (s, e) = match (parse_datetime(start), parse_datetime(end)) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(m), _) => return bad(format!("--start: {m}")),
        (_, Err(m)) => return bad(format!("--end: {m}")),
    };
    if e <= s {
        return bad("--end must be after --start".into());
    }
    if (e - s) as u128 > cfg.http.max_export.as_nanos() {
        return bad(format!(
            "the range is longer than http.max_export ({} s): split it",
            cfg.http.max_export.as_secs()
        ));
    }
    if !cfg.cameras.iter().any(|c| c.id == camera) {
        return bad(format!("no camera {camera:?} in the config"));
    }
    let run = || -> anyhow::Result<edgerec::export::Export> {
        let catalog =
            edgerec::playback::catalog::Catalog::open(&cfg.storage.index_path, Default::default())?;
        let segs = catalog.segments(camera, s, e)?;
        let x = edgerec::export::open(&cfg.storage.path, &segs, s, e)?;
        let mut f = std::fs::File::create(output)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < x.file.len() {
            let n = (x.file.len() - at).min(buf.len() as u64) as usize;
            x.file.read_at(at, &mut buf[..n])?;
            std::io::Write::write_all(&mut f, &buf[..n])?;
            at += n as u64;
        }
        f.sync_all()?;
        Ok(x)
    };
    match run() {
        Ok(x) => {
            println!(
                "{}: {} bytes, {:.1} s of media in {} chapter(s), {} to {}",
                output.display(),
                x.file.len(),
                x.duration_ns as f64 / 1e9,
                x.chapters.len(),
                format_full(x.start_utc_ns),
                format_full(x.end_utc_ns)
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("edgerec export: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `edgerec probe`: every camera at once (each on its own thread), printed in config order.
fn probe_cmd(cfg: &Config, only: Option<&str>, seconds: u64, json: bool) -> ExitCode {
    let cams: Vec<_> = cfg
        .cameras
        .iter()
        .filter(|c| only.map_or(c.enabled, |id| c.id == id))
        .cloned()
        .collect();
    if cams.is_empty() {
        eprintln!(
            "edgerec probe: {}",
            match only {
                Some(id) => format!("no camera {id:?} in the config"),
                None => "no enabled camera in the config".into(),
            }
        );
        return ExitCode::from(2);
    }
    if let Err(e) = edgerec::ingest::init_gstreamer() {
        eprintln!("edgerec probe: GStreamer: {e}");
        return ExitCode::FAILURE;
    }
    let sample = std::time::Duration::from_secs(seconds);
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = cams
            .iter()
            .map(|c| s.spawn(|| edgerec::probe::probe(c, &cfg.pipeline, sample)))
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut ok = true;
    for r in reports {
        let Ok(r) = r else {
            eprintln!("edgerec probe: a probe thread panicked");
            ok = false;
            continue;
        };
        ok &= r.problem.is_none();
        if json {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
        } else {
            println!("{}", r.line());
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Exit codes of `fsck`, as fsck(8): nothing wrong, errors corrected, errors left uncorrected,
/// operational error (the store is locked by a recorder, the index cannot be opened, ...).
const FSCK_CLEAN: u8 = 0;
const FSCK_CORRECTED: u8 = 1;
const FSCK_UNCORRECTED: u8 = 4;
const FSCK_OPERATIONAL: u8 = 8;

/// Shows `fsck`'s progress on stderr at most every 2 s, and only on a terminal (a log or a pipe
/// gets the summary alone): `what: done/total, rate per second, time left`.
struct ProgressLine {
    what: &'static str,
    started: std::time::Instant,
    last: std::time::Instant,
    tty: bool,
}

impl ProgressLine {
    fn new(what: &'static str) -> ProgressLine {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        ProgressLine {
            what,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.tty || self.last.elapsed() < std::time::Duration::from_secs(2) {
            return;
        }
        self.last = std::time::Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let left = (total.saturating_sub(done)) as f64 / rate.max(1e-9);
        eprintln!(
            "fsck: {}: {done}/{total}, {rate:.0}/s, about {left:.0} s left",
            self.what
        );
    }
}

fn fsck_cmd(cfg: &Config, repair: bool, rebuild: bool) -> anyhow::Result<ExitCode> {
    let _lock = fsutil::lock_store(&cfg.storage.path)
        .map_err(|e| anyhow::anyhow!(fsutil::describe_lock_error(&cfg.storage.path, &e)))?;
    let mut store = Store::open(&cfg.storage.path, &cfg.storage.index_path)?;
    let started = std::time::Instant::now();
    let mut corrected = 0usize;
    if rebuild {
        let mut p = ProgressLine::new("rebuilding, files read");
        let n = fsck::rebuild(&mut store, &mut |d, t| p.update(d, t))?;
        println!("rebuilt the index from {n} segment file(s)");
    } else if repair {
        let mut p = ProgressLine::new("repairing, rows checked");
        let found = fsck::repair(&mut store, &mut |d, t| p.update(d, t))?;
        for p in &found {
            println!("repaired: {p}");
        }
        corrected = found.len();
    }
    let mut p = ProgressLine::new("rows checked");
    let problems = fsck::check(&mut store, &mut |d, t| p.update(d, t))?;
    for p in &problems {
        println!("{p}");
    }
    let rows = store.index().all_segments()?;
    let bytes: i64 = rows.iter().map(|r| r.size_bytes).sum();
    println!(
        "{} segment(s), {} bytes, {} problem(s){} in {:.1} s",
        rows.len(),
        bytes,
        problems.len(),
        if corrected > 0 {
            format!(", {corrected} corrected")
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::from(if !problems.is_empty() {
        FSCK_UNCORRECTED
    } else if corrected > 0 {
        FSCK_CORRECTED
    } else {
        FSCK_CLEAN
    }))
}
