//! What edgerec publishes: the `state` JSON and `events` in the LVA shape (`eventType`,
//! `eventTime`, `subject`, `body`). Pure builders; the client in [`super`] decides when to
//! publish. Home Assistant discovery is [`super::discovery`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::Context;
use crate::playback::time::format_full;

/// The `R/state` document. `bitrate_bps` per camera is measured by the caller over the last
/// state interval. The `uplink` object is there only with an uploader (never faked).
pub fn state_json(ctx: &Context, bitrate_bps: &HashMap<String, u64>) -> Value {
    let used = ctx.writer.stats().used_bytes.load(Ordering::Relaxed);
    let mut cams = serde_json::Map::new();
    for c in &ctx.cameras {
        let s = &c.status;
        let last = s.last_fragment_utc_ns.load(Ordering::Relaxed);
        cams.insert(
            c.id.clone(),
            json!({
                "recording": s.recording.load(Ordering::Relaxed),
                "connected": s.connected.load(Ordering::Relaxed),
                "bitrate_bps": bitrate_bps.get(&c.id).copied().unwrap_or(0),
                "last_fragment_at": (last > 0).then(|| format_full(last)),
                "reconnects": s.reconnects.load(Ordering::Relaxed),
            }),
        );
    }
    let mut doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": ctx.started.elapsed().as_secs(),
        "storage": {
            "used_bytes": used,
            "max_bytes": ctx.max_bytes,
            "free_bytes": ctx.max_bytes.saturating_sub(used),
        },
        "cameras": cams,
    });
    if let Some(u) = &ctx.upload {
        let u = u.snapshot();
        let now = crate::clock::now_utc_ns();
        let evicted: u64 = ctx
            .cameras
            .iter()
            .map(|c| ctx.writer.stats().evictions_of(&c.id).unuploaded_bytes)
            .sum();
        doc["uplink"] = json!({
            "state": u.state,
            "backlog_bytes": u.backlog_bytes,
            "backlog_segments": u.backlog_segments,
            "oldest_pending_age_s": u.oldest_pending_utc_ns.map(|t| (now - t).max(0) / 1_000_000_000),
            "last_upload_at": u.last_success_utc_ns.map(format_full),
            "last_error": u.last_error.map(|e| e.1),
            "evicted_unuploaded_bytes": evicted,
        });
    }
    doc
}

/// One `R/events` message: `eventType` (e.g. `RecordingStarted`), `eventTime` (now, UTC),
/// `subject` (`/cameras/<id>` or `/device`), `body`.
pub fn event_json(event_type: &str, subject: &str, body: Value, now_utc_ns: i64) -> Value {
    json!({
        "eventType": event_type,
        "eventTime": format_full(now_utc_ns),
        "subject": subject,
        "body": body,
    })
}
