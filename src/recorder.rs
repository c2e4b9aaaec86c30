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
use crate::ingest::{init_gstreamer, CameraSupervisor};
use crate::store::writer::{CameraPolicy, Writer, WriterConfig, WriterMsg};
use crate::store::{fsutil, recover, Store};

/// Runs the recorder until `stop` becomes true, then flushes every camera's last fragment, closes
/// the open segments, commits the index and returns.
///
/// Errors: the store is locked by another process, the index cannot be opened or recovered, or
/// GStreamer cannot be initialised.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let _lock = fsutil::lock_store(&cfg.storage.path).with_context(|| {
        format!(
            "cannot lock {} (is another edgerec using it?)",
            cfg.storage.path.display()
        )
    })?;
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
            default_policy: CameraPolicy {
                segment_length: cfg.storage.segment_length,
                retention: None,
            },
        },
    )?;
    let (handle, writer_thread) = writer.spawn()?;
    init_gstreamer().context("GStreamer initialisation")?;

    let cam_stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in cfg.cameras.iter().filter(|c| c.enabled) {
        let sup = CameraSupervisor::new(
            c.clone(),
            cfg.pipeline.clone(),
            handle.clone(),
            cam_stop.clone(),
        );
        threads.push(sup.spawn()?);
    }
    info!(
        cameras = threads.len(),
        media = %cfg.storage.path.join("media").display(),
        "recording"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    info!("stopping: flushing the last fragments");
    cam_stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    handle.send(WriterMsg::Shutdown);
    let _ = writer_thread.join();
    info!("stopped cleanly");
    Ok(())
}
