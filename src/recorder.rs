//! `edgerec run`: wires configuration, store recovery, the storage writer and one camera
//! supervisor per camera, and shuts them down in order (DESIGN section 3, "SIGTERM/SIGINT").
//!
//! Signal registration and process exit belong to `main`; this module only needs a stop flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracing::info;

use crate::config::Config;
use crate::control::Switches;
use crate::ingest::{init_gstreamer, CameraStatus, CameraSupervisor};
use crate::store::stats::WriterStats;
use crate::store::writer::{CameraPolicy, Writer, WriterConfig, WriterMsg};
use crate::store::{fsutil, recover, Store};

/// Runs the recorder until `stop` becomes true, then flushes every camera's last fragment, closes
/// the open segments, commits the index and returns.
///
/// Errors: the store is locked by another process, the index cannot be opened or recovered, or
/// GStreamer cannot be initialised.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let _lock = fsutil::lock_store(&cfg.storage.path)
        .map_err(|e| anyhow::anyhow!(fsutil::describe_lock_error(&cfg.storage.path, &e)))?;
    let mut store = Store::open(&cfg.storage.path, &cfg.storage.index_path)?;
    let rep = recover::recover(&mut store)?;
    info!(?rep, "storage recovered");
    let cameras: HashMap<String, CameraPolicy> = cfg
        .cameras
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                CameraPolicy {
                    segment_length: c.segment_length,
                    retention: c.retention,
                    mode: c.mode,
                    gate: c.signal_gate.gate,
                    clip_retention: c.signal_gate.clip_retention,
                },
            )
        })
        .collect();
    let writer = Writer::new(
        store,
        WriterConfig {
            index_path: cfg.storage.index_path.clone(),
            max_size_bytes: cfg.storage.max_size_bytes,
            min_free_bytes: cfg.storage.min_free_bytes,
            sync_interval: cfg.storage.sync_interval,
            cameras,
            default_policy: CameraPolicy::cvr(cfg.storage.segment_length, None),
        },
    )?;
    let (handle, writer_thread) = writer.spawn()?;
    init_gstreamer().context("GStreamer initialisation")?;

    let cam_stop = Arc::new(AtomicBool::new(false));
    let switches = Arc::new(Switches::load(&cfg.storage.path));
    let mut threads = Vec::new();
    let mut statuses = Vec::new();
    let mut sups = Vec::new();
    for c in cfg.cameras.iter().filter(|c| c.enabled) {
        let sup = CameraSupervisor::new(
            c.clone(),
            cfg.pipeline.clone(),
            handle.clone(),
            cam_stop.clone(),
        );
        if !switches.is_on(&c.id) {
            info!(camera = %c.id, "recording switched off (persisted): not recording");
            sup.status().switched_off.store(true, Ordering::Relaxed);
        }
        statuses.push(sup.status());
        sups.push(sup);
    }
    // Each configured camera's status, `None` for disabled ones (in config order).
    let mut enabled = statuses.iter();
    let per_camera: Vec<Option<Arc<CameraStatus>>> = cfg
        .cameras
        .iter()
        .map(|c| c.enabled.then(|| enabled.next().cloned()).flatten())
        .collect();
    // The HTTP server binds before any camera starts: if its port is taken, nothing has been
    // recorded yet and the writer closes cleanly.
    let http_stop = Arc::new(AtomicBool::new(false));
    let upload_slot: Arc<std::sync::OnceLock<Arc<crate::upload::UploadShared>>> = Arc::default();
    let http_thread = match cfg.http.listen {
        Some(addr) => match start_http(
            cfg,
            addr,
            &handle,
            &per_camera,
            upload_slot.clone(),
            http_stop.clone(),
        ) {
            Ok(t) => Some(t),
            Err(e) => {
                handle.send(WriterMsg::Shutdown);
                let _ = writer_thread.join();
                return Err(e);
            }
        },
        None => None,
    };
    let upload_stop = Arc::new(AtomicBool::new(false));
    #[cfg(feature = "upload")]
    let (upload, upload_thread) = match &cfg.upload {
        Some(u) => match crate::upload::spawn(
            u.clone(),
            cfg.storage.path.clone(),
            cfg.storage.index_path.clone(),
            handle.clone(),
            cfg.cameras
                .iter()
                .filter(|c| c.mode == crate::config::Mode::Evr)
                .map(|c| (c.id.clone(), c.signal_gate.gate.preroll_horizon_ns()))
                .collect(),
            upload_stop.clone(),
        ) {
            Ok((s, t)) => (Some(s), Some(t)),
            Err(e) => {
                stop_join(&http_stop, http_thread);
                handle.send(WriterMsg::Shutdown);
                let _ = writer_thread.join();
                return Err(e.context("upload"));
            }
        },
        None => (None, None),
    };
    // Config loading refused `[upload]` in a build without the feature.
    #[cfg(not(feature = "upload"))]
    let (upload, upload_thread): (Option<Arc<crate::upload::UploadShared>>, _) = (None, None);
    if let Some(shared) = &upload {
        let _ = upload_slot.set(shared.clone());
    }
    let mqtt_stop = Arc::new(AtomicBool::new(false));
    #[cfg(feature = "mqtt")]
    let mqtt_thread = match &cfg.mqtt {
        Some(m) => {
            let ctx = crate::mqtt::Context {
                device_id: cfg.device_id.clone(),
                cameras: cfg
                    .cameras
                    .iter()
                    .zip(&per_camera)
                    .map(|(c, s)| crate::mqtt::CameraHandle {
                        id: c.id.clone(),
                        enabled: c.enabled,
                        status: s.clone().unwrap_or_default(),
                        motion_off_delay: c.motion.as_ref().map(|m| m.off_delay),
                    })
                    .collect(),
                switches: switches.clone(),
                storage_path: cfg.storage.path.clone(),
                writer: handle.clone(),
                max_bytes: cfg.storage.max_size_bytes,
                started: std::time::Instant::now(),
                upload: upload.clone(),
                configuration_url: cfg
                    .http
                    .public_url
                    .clone()
                    .filter(|_| cfg!(feature = "ui") && cfg.http.listen.is_some()),
            };
            match crate::mqtt::spawn(m.clone(), ctx, mqtt_stop.clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    stop_join(&http_stop, http_thread);
                    stop_join(&upload_stop, upload_thread);
                    handle.send(WriterMsg::Shutdown);
                    let _ = writer_thread.join();
                    return Err(e.context("MQTT"));
                }
            }
        }
        None => None,
    };
    // Config loading refused `[mqtt]` in a build without the feature.
    #[cfg(not(feature = "mqtt"))]
    let mqtt_thread: Option<std::thread::JoinHandle<()>> = None;
    for sup in sups {
        threads.push(sup.spawn()?);
    }
    info!(
        cameras = threads.len(),
        media = %cfg.storage.path.join("media").display(),
        "recording"
    );
    let mut sd = SystemdNotifier::new();
    sd.ready(&status_line(cfg, &statuses, handle.stats()));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        sd.tick(handle.stats(), || {
            status_line(cfg, &statuses, handle.stats())
        });
    }
    sd.stopping();
    stop_join(&http_stop, http_thread);
    stop_join(&upload_stop, upload_thread);
    info!("stopping: flushing the last fragments");
    cam_stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    handle.send(WriterMsg::Shutdown);
    let _ = writer_thread.join();
    stop_join(&mqtt_stop, mqtt_thread);
    info!("stopped cleanly");
    Ok(())
}

/// Raises a service's stop flag and waits for its thread, if it was started.
fn stop_join(stop: &AtomicBool, thread: Option<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = thread {
        let _ = t.join();
    }
}

/// Opens the playback catalog and starts the HTTP server; logs one playback URL per camera.
/// Errors: the address cannot be bound (in use, not local) or the token file cannot be read.
fn start_http(
    cfg: &Config,
    addr: std::net::SocketAddr,
    handle: &crate::store::writer::WriterHandle,
    per_camera: &[Option<Arc<CameraStatus>>],
    upload: Arc<std::sync::OnceLock<Arc<crate::upload::UploadShared>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let catalog =
        crate::playback::catalog::Catalog::open(&cfg.storage.index_path, handle.live().clone())?;
    let tokens = cfg
        .http
        .token_file
        .as_deref()
        .map(crate::http::auth::Tokens::load)
        .transpose()?;
    let cameras = cfg
        .cameras
        .iter()
        .zip(per_camera)
        .map(|(c, s)| crate::http::CameraEntry {
            id: c.id.clone(),
            status: s.clone(),
            mode: c.mode,
            source: Some(c.source),
        })
        .collect();
    let state = crate::http::AppState {
        catalog: Arc::new(catalog),
        storage_root: cfg.storage.path.clone(),
        cameras,
        stats: handle.stats().clone(),
        storage_limit_bytes: cfg.storage.max_size_bytes,
        tokens,
        upload,
        writer: Some(handle.clone()),
        max_export: cfg.http.max_export,
    };
    let (bound, jh) = crate::http::spawn(addr, state, stop)
        .with_context(|| format!("HTTP server on http.listen = {addr}"))?;
    for c in cfg.cameras.iter().filter(|c| c.enabled) {
        info!(camera = %c.id, "playback: http://{bound}/{}/content.ism/manifest(format=m3u8-aapl).m3u8", c.id);
    }
    Ok(jh)
}

/// One line for `systemctl status` (`STATUS=`): cameras connected, storage used, drops.
fn status_line(cfg: &Config, cams: &[Arc<CameraStatus>], w: &WriterStats) -> String {
    let connected = cams
        .iter()
        .filter(|c| c.connected.load(Ordering::Relaxed))
        .count();
    format!(
        "recording: {connected}/{} cameras connected; storage {} of {} MiB used; {} segments closed, {} evicted, {} fragments dropped",
        cams.len(),
        w.used_bytes.load(Ordering::Relaxed) / crate::config::MIB,
        cfg.storage.max_size_bytes / crate::config::MIB,
        w.segments_closed.load(Ordering::Relaxed),
        w.evicted_segments.load(Ordering::Relaxed),
        w.dropped_fragments.load(Ordering::Relaxed),
    )
}

/// systemd integration (sd_notify(3)): `READY=1` once storage is recovered and the pipelines
/// started, `STATUS=` every 10 s, `WATCHDOG=1` at half the watchdog interval but only while the
/// storage writer's heartbeat advances (a writer stuck on a hung card stops the pings, and
/// systemd restarts the service), `STOPPING=1` on shutdown. Does nothing outside systemd.
struct SystemdNotifier {
    watchdog: Option<Duration>,
    last_ping: std::time::Instant,
    last_status: std::time::Instant,
    last_heartbeat: u64,
    stalled_logged: bool,
}

impl SystemdNotifier {
    fn new() -> Self {
        let mut usec = 0u64;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec) / 2);
        Self {
            watchdog,
            last_ping: std::time::Instant::now(),
            last_status: std::time::Instant::now(),
            last_heartbeat: 0,
            stalled_logged: false,
        }
    }

    fn ready(&mut self, status: &str) {
        let _ = sd_notify::notify(
            false,
            &[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(status),
            ],
        );
    }

    fn tick(&mut self, w: &WriterStats, status: impl FnOnce() -> String) {
        if let Some(every) = self.watchdog {
            if self.last_ping.elapsed() >= every {
                let hb = w.heartbeat.load(Ordering::Relaxed);
                if hb != self.last_heartbeat {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    self.last_heartbeat = hb;
                    self.last_ping = std::time::Instant::now();
                    self.stalled_logged = false;
                } else if !self.stalled_logged {
                    tracing::error!("storage writer made no progress for {every:?}: withholding the watchdog ping");
                    self.stalled_logged = true;
                }
            }
        }
        if self.last_status.elapsed() >= Duration::from_secs(10) {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status())]);
            self.last_status = std::time::Instant::now();
        }
    }

    fn stopping(&mut self) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }
}
