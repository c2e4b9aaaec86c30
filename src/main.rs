//! The `edgerec` command: `run`, `check-config` and `fsck`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use edgerec::config::Config;
use edgerec::store::{fsck, fsutil, Store};

#[derive(Parser)]
#[command(
    version,
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
    /// Validate a configuration file; exits 2 naming the key and the rule on error.
    CheckConfig {
        /// Configuration file.
        #[arg(long, default_value = "/etc/edgerec/edgerec.toml")]
        config: PathBuf,
    },
    /// Check the index against the media files (exit 1 on any mismatch).
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
    Config::load(config).map_err(|e| {
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
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match fsck_cmd(&cfg, repair, rebuild) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("edgerec fsck: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn fsck_cmd(cfg: &Config, repair: bool, rebuild: bool) -> anyhow::Result<ExitCode> {
    let _lock = fsutil::lock_store(&cfg.storage.path)
        .map_err(|e| anyhow::anyhow!(fsutil::describe_lock_error(&cfg.storage.path, &e)))?;
    let mut store = Store::open(&cfg.storage.path, &cfg.storage.index_path)?;
    if rebuild {
        let n = fsck::rebuild(&mut store)?;
        println!("rebuilt the index from {n} segment file(s)");
    } else if repair {
        let found = fsck::repair(&mut store)?;
        for p in &found {
            println!("repaired: {p}");
        }
    }
    let problems = fsck::check(&mut store)?;
    for p in &problems {
        println!("{p}");
    }
    let rows = store.index().all_segments()?;
    let bytes: i64 = rows.iter().map(|r| r.size_bytes).sum();
    println!(
        "{} segment(s), {} bytes, {} problem(s)",
        rows.len(),
        bytes,
        problems.len()
    );
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
