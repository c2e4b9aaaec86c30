//! `GET /metrics`: Prometheus text exposition format 0.0.4 of the writer's counters, storage use
//! and limit, and per-camera ingest state. Rendering only; the numbers come from
//! [`crate::store::stats::WriterStats`] and [`crate::ingest::CameraStatus`].

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::store::stats::WriterStats;

use super::AppState;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn label(camera: &str) -> String {
    // Camera ids are [a-z0-9_-] (config rule), so they need no escaping.
    format!("{{camera=\"{camera}\"}}")
}

/// `process_resident_memory_bytes`, `process_open_fds` and `process_threads` from `/proc/self`
/// (Prometheus' process metric names); left out where `/proc` cannot be read.
fn process_metrics(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    if let Some(kib) = field("VmRSS:") {
        metric(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the recorder, bytes.",
            &[(String::new(), kib * 1024.0)],
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            &[(String::new(), fds.count() as f64)],
        );
    }
    if let Some(n) = field("Threads:") {
        metric(
            out,
            "process_threads",
            "gauge",
            "Threads of the recorder.",
            &[(String::new(), n)],
        );
    }
}

/// `edgerec_storage_sync_seconds`: a histogram of every fsync/fdatasync of the store on `device`
/// (`major:minor`); a growing tail is the first sign of a dying card.
fn sync_histogram(out: &mut String, device: &str) {
    use crate::store::fsutil::{SYNC_BUCKETS_S, SYNC_LATENCY};
    let name = "edgerec_storage_sync_seconds";
    let (buckets, count, sum) = SYNC_LATENCY.snapshot();
    let _ = writeln!(
        out,
        "# HELP {name} Latency of the store's fsync and fdatasync calls (segment files and directories).\n# TYPE {name} histogram"
    );
    for (le, n) in SYNC_BUCKETS_S.iter().zip(&buckets) {
        let _ = writeln!(out, "{name}_bucket{{device=\"{device}\",le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{device=\"{device}\",le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "{name}_sum{{device=\"{device}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{device=\"{device}\"}} {count}");
}

/// Renders every metric; `held` is (camera, segments, bytes) from the index.
pub fn render(st: &AppState, held: &[(String, i64, i64)]) -> String {
    let w = &st.stats;
    let g =
        |a: &std::sync::atomic::AtomicU64| vec![(String::new(), a.load(Ordering::Relaxed) as f64)];
    let mut out = String::with_capacity(4096);
    metric(
        &mut out,
        "edgerec_build_info",
        "gauge",
        "Always 1; the label says which edgerec this is.",
        &[(
            format!(
                "{{version=\"{}\",features=\"{}\"}}",
                env!("CARGO_PKG_VERSION"),
                crate::features()
            ),
            1.0,
        )],
    );
    process_metrics(&mut out);
    sync_histogram(&mut out, &crate::store::fsutil::device_of(&st.storage_root));
    metric(
        &mut out,
        "edgerec_recorded_bytes_total",
        "counter",
        "Fragment bytes written to segment files.",
        &g(&w.bytes_written),
    );
    metric(
        &mut out,
        "edgerec_recorded_fragments_total",
        "counter",
        "Fragments written.",
        &g(&w.fragments_written),
    );
    metric(
        &mut out,
        "edgerec_segments_closed_total",
        "counter",
        "Segments closed (complete).",
        &g(&w.segments_closed),
    );
    metric(
        &mut out,
        "edgerec_expired_segments_total",
        "counter",
        "Segments deleted by retention.",
        &g(&w.expired_segments),
    );
    metric(
        &mut out,
        "edgerec_dropped_fragments_total",
        "counter",
        "Fragments lost (queue full or no space after eviction).",
        &g(&w.dropped_fragments),
    );
    metric(
        &mut out,
        "edgerec_storage_errors_total",
        "counter",
        "Storage errors other than a full disk.",
        &g(&w.storage_errors),
    );
    metric(
        &mut out,
        "edgerec_storage_used_bytes",
        "gauge",
        "Bytes in use: media (allocated) plus index.",
        &g(&w.used_bytes),
    );
    metric(
        &mut out,
        "edgerec_storage_limit_bytes",
        "gauge",
        "storage.max_size_mib in bytes.",
        &[(String::new(), st.storage_limit_bytes as f64)],
    );
    if let Some(u) = st.upload.get() {
        let u = u.snapshot();
        let now = crate::clock::now_utc_ns();
        let one = |v: f64| vec![(String::new(), v)];
        metric(
            &mut out,
            "edgerec_upload_online",
            "gauge",
            "1 when the last upload succeeded.",
            &one(f64::from(u8::from(
                u.state == crate::upload::Uplink::Online,
            ))),
        );
        metric(
            &mut out,
            "edgerec_upload_backlog_segments",
            "gauge",
            "Complete segments waiting for upload.",
            &one(u.backlog_segments as f64),
        );
        metric(
            &mut out,
            "edgerec_upload_backlog_bytes",
            "gauge",
            "Bytes of the segments waiting for upload.",
            &one(u.backlog_bytes as f64),
        );
        metric(
            &mut out,
            "edgerec_upload_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest segment waiting for upload (0: none).",
            &one(u
                .oldest_pending_utc_ns
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1e9)),
        );
        metric(
            &mut out,
            "edgerec_upload_last_success_timestamp_seconds",
            "gauge",
            "When the last upload succeeded, seconds since 1970 (0: never).",
            &one(u.last_success_utc_ns.map_or(0.0, |t| t as f64 / 1e9)),
        );
        metric(
            &mut out,
            "edgerec_uploaded_segments_total",
            "counter",
            "Segments uploaded.",
            &one(u.uploaded_segments as f64),
        );
        metric(
            &mut out,
            "edgerec_uploaded_bytes_total",
            "counter",
            "Bytes uploaded.",
            &one(u.uploaded_bytes as f64),
        );
        metric(
            &mut out,
            "edgerec_upload_index_objects_total",
            "counter",
            "Hour index objects written (docs/cloud.md; at most one per ten segments).",
            &one(u.index_objects as f64),
        );
        metric(
            &mut out,
            "edgerec_upload_failures_total",
            "counter",
            "Failed upload attempts.",
            &one(u.failures as f64),
        );
    }
    let cams = &st.cameras;
    let per = |f: &dyn Fn(&super::CameraEntry) -> f64| -> Vec<(String, f64)> {
        cams.iter().map(|c| (label(&c.id), f(c))).collect()
    };
    metric(
        &mut out,
        "edgerec_camera_received_bytes_total",
        "counter",
        "Fragment bytes received from the camera and queued for storage.",
        &per(&|c| {
            c.status
                .as_ref()
                .map_or(0.0, |s| s.bytes.load(Ordering::Relaxed) as f64)
        }),
    );
    metric(
        &mut out,
        "edgerec_camera_reconnects_total",
        "counter",
        "Times the camera's pipeline was rebuilt after a loss.",
        &per(&|c| {
            c.status
                .as_ref()
                .map_or(0.0, |s| s.reconnects.load(Ordering::Relaxed) as f64)
        }),
    );
    metric(
        &mut out,
        "edgerec_camera_connected",
        "gauge",
        "1 while the camera delivers media.",
        &per(&|c| {
            c.status.as_ref().map_or(0.0, |s| {
                u8::from(s.connected.load(Ordering::Relaxed)) as f64
            })
        }),
    );
    let ev = |f: fn(&crate::store::stats::EvictionTotals) -> u64| {
        per(&|c| f(&w.evictions_of(&c.id)) as f64)
    };
    metric(
        &mut out,
        "edgerec_camera_evicted_segments_total",
        "counter",
        "The camera's segments deleted to stay under the size limit or the free-space floor.",
        &ev(|t| t.segments),
    );
    metric(
        &mut out,
        "edgerec_camera_evicted_bytes_total",
        "counter",
        "Allocated bytes of the camera's segments freed by eviction.",
        &ev(|t| t.bytes),
    );
    metric(
        &mut out,
        "edgerec_camera_evicted_unuploaded_bytes_total",
        "counter",
        "Bytes of the camera's segments evicted before they were uploaded.",
        &ev(|t| t.unuploaded_bytes),
    );
    metric(
        &mut out,
        "edgerec_camera_evicted_unuploaded_seconds_total",
        "counter",
        "Media seconds of the camera evicted before upload: what the cloud copy lacks.",
        &per(&|c| w.evictions_of(&c.id).unuploaded_ns as f64 / 1e9),
    );
    metric(
        &mut out,
        "edgerec_camera_clips_opened_total",
        "counter",
        "Clips the camera's signal gate opened (EVR; clips on CVR cameras too).",
        &per(&|c| WriterStats::get(&w.clips_opened, &c.id) as f64),
    );
    metric(
        &mut out,
        "edgerec_camera_clip_seconds_total",
        "counter",
        "Media seconds inside the camera's closed clips (requested start to end).",
        &per(&|c| w.clip_seconds_of(&c.id)),
    );
    metric(
        &mut out,
        "edgerec_camera_late_events_dropped_total",
        "counter",
        "Events the signal gate dropped because they arrived after the evaluation window.",
        &per(&|c| WriterStats::get(&w.late_events_dropped, &c.id) as f64),
    );
    let mo = |f: fn(&crate::motion::MotionStatus) -> f64| {
        per(&|c| c.status.as_ref().map_or(0.0, |s| f(&s.motion)))
    };
    metric(
        &mut out,
        "edgerec_camera_motion_frames_analysed_total",
        "counter",
        "Frames the camera's motion detection decoded and analysed.",
        &mo(|m| m.frames_analysed.load(Ordering::Relaxed) as f64),
    );
    metric(
        &mut out,
        "edgerec_camera_motion_events_total",
        "counter",
        "Motion events reported (at most one per aggregation window).",
        &mo(|m| m.events.load(Ordering::Relaxed) as f64),
    );
    metric(
        &mut out,
        "edgerec_camera_motion_cpu_seconds_total",
        "counter",
        "CPU seconds of the camera's motion analysis thread (decoding and detection).",
        &mo(|m| m.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9),
    );
    let held_of = |id: &str| {
        held.iter()
            .find(|h| h.0 == id)
            .map_or((0, 0), |h| (h.1, h.2))
    };
    metric(
        &mut out,
        "edgerec_camera_segments",
        "gauge",
        "Segments of the camera held on the card.",
        &per(&|c| held_of(&c.id).0 as f64),
    );
    metric(
        &mut out,
        "edgerec_camera_held_bytes",
        "gauge",
        "Bytes of the camera's segments held on the card.",
        &per(&|c| held_of(&c.id).1 as f64),
    );
    out
}
