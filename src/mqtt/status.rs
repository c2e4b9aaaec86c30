//! What edgerec publishes: the `state` JSON and `events` in the LVA shape (`eventType`,
//! `eventTime`, `subject`, `body`). Pure builders; the client in [`super`] decides when to
//! publish. Home Assistant discovery is [`super::discovery`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::Context;
use crate::playback::time::format_full;

/// Per-camera entry of [`StateDoc::cameras`].
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraState {
    /// Recording switched on and a run open.
    pub recording: bool,
    /// The RTSP session is up.
    pub connected: bool,
    /// Bytes received over the last state interval, in bits per second.
    pub bitrate_bps: u64,
    /// UTC time of the newest fragment written (RFC 3339, ms), absent before the first.
    pub last_fragment_at: Option<String>,
    /// Reconnects since start.
    pub reconnects: u64,
    /// The camera's audio as recorded now: RTP encoding and clock rate (`MPEG4-GENERIC/48000`,
    /// `PCMU/8000`, stored as AAC); `null` when no audio is recorded.
    pub audio_codec: Option<String>,
}

/// `storage` of [`StateDoc`], bytes.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageState {
    /// Bytes of media and index held.
    pub used_bytes: u64,
    /// `storage.max_size_mib` in bytes.
    pub max_bytes: u64,
    /// `max_bytes - used_bytes`, at least 0.
    pub free_bytes: u64,
}

/// `uplink` of [`StateDoc`]: the uploader's status.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UplinkState {
    /// `unknown` (nothing tried yet), `online` or `offline`.
    pub state: crate::upload::Uplink,
    /// Bytes of the complete segments waiting for upload.
    pub backlog_bytes: u64,
    /// Complete segments waiting for upload.
    pub backlog_segments: u64,
    /// Age of the oldest segment waiting, seconds; absent when none waits.
    pub oldest_pending_age_seconds: Option<i64>,
    /// UTC time of the last successful upload (RFC 3339, ms); absent before the first.
    pub last_upload_at: Option<String>,
    /// The last failure's message (never with credentials); absent before the first.
    pub last_error: Option<String>,
    /// Bytes evicted from the card before they could be uploaded, summed over cameras.
    pub evicted_unuploaded_bytes: u64,
}

/// The `R/state` document. Every MQTT payload of edgerec uses camelCase keys, as the HTTP API
/// and Live Video Analytics' events do (docs/mqtt.md); values that are names (`online`, ...)
/// stay as they are.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDoc {
    /// edgerec's version (Cargo package version).
    pub version: &'static str,
    /// Seconds since the process started.
    pub uptime_seconds: u64,
    /// The card's budget.
    pub storage: StorageState,
    /// Every configured camera by id.
    pub cameras: std::collections::BTreeMap<String, CameraState>,
    /// Only with an uploader (never faked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink: Option<UplinkState>,
}

/// Builds the `R/state` document ([`StateDoc`]) as JSON. `bitrate_bps` per camera is measured by
/// the caller over the last state interval.
pub fn state_json(ctx: &Context, bitrate_bps: &HashMap<String, u64>) -> Value {
    let used = ctx.writer.stats().used_bytes.load(Ordering::Relaxed);
    let cameras = ctx
        .cameras
        .iter()
        .map(|c| {
            let s = &c.status;
            let last = s.last_fragment_utc_ns.load(Ordering::Relaxed);
            let state = CameraState {
                recording: s.recording.load(Ordering::Relaxed),
                connected: s.connected.load(Ordering::Relaxed),
                bitrate_bps: bitrate_bps.get(&c.id).copied().unwrap_or(0),
                last_fragment_at: (last > 0).then(|| format_full(last)),
                reconnects: s.reconnects.load(Ordering::Relaxed),
                audio_codec: s.audio_codec.lock().unwrap().clone(),
            };
            (c.id.clone(), state)
        })
        .collect();
    let uplink = ctx.upload.as_ref().map(|u| {
        let u = u.snapshot();
        let now = crate::clock::now_utc_ns();
        UplinkState {
            state: u.state,
            backlog_bytes: u.backlog_bytes,
            backlog_segments: u.backlog_segments,
            oldest_pending_age_seconds: u
                .oldest_pending_utc_ns
                .map(|t| (now - t).max(0) / 1_000_000_000),
            last_upload_at: u.last_success_utc_ns.map(format_full),
            last_error: u.last_error.map(|e| e.1),
            evicted_unuploaded_bytes: ctx
                .cameras
                .iter()
                .map(|c| ctx.writer.stats().evictions_of(&c.id).unuploaded_bytes)
                .sum(),
        }
    });
    let doc = StateDoc {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: ctx.started.elapsed().as_secs(),
        storage: StorageState {
            used_bytes: used,
            max_bytes: ctx.max_bytes,
            free_bytes: ctx.max_bytes.saturating_sub(used),
        },
        cameras,
        uplink,
    };
    serde_json::to_value(doc).unwrap_or(Value::Null)
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
