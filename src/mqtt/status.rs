//! What edgerec publishes: the `state` JSON, `events` in the LVA shape (`eventType`,
//! `eventTime`, `subject`, `body`), and Home Assistant MQTT discovery configs. Pure builders; the
//! client in [`super`] decides when to publish.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::topics::Topics;
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

/// Home Assistant MQTT discovery: (config topic, retained JSON) for a recording switch, a clip
/// binary sensor (EVR), a motion binary sensor (with motion detection) and a connected binary
/// sensor per camera, and a storage-used sensor. Every entity shares the
/// device's availability topic; an upload-backlog sensor with an uploader.
pub fn discovery(ctx: &Context, t: &Topics) -> Vec<(String, Value)> {
    let dev = &ctx.device_id;
    let node = dev.replace('.', "_");
    let device = json!({
        "identifiers": [format!("edgerec_{node}")],
        "name": format!("edgerec {dev}"),
        "manufacturer": "edgerec",
        "model": "edge video recorder",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let avail = t.available();
    let mut out = Vec::new();
    for c in &ctx.cameras {
        let id = &c.id;
        let uid = format!("edgerec_{node}_{}", id.replace('-', "_"));
        out.push((
            format!("homeassistant/switch/{uid}_recording/config"),
            json!({
                "name": format!("{id} recording"),
                "unique_id": format!("{uid}_recording"),
                "command_topic": t.recording_set(id),
                "state_topic": t.recording_state(id),
                "payload_on": "ON", "payload_off": "OFF",
                "availability_topic": avail,
                "device": device,
            }),
        ));
        // An `ON`/`OFF` binary sensor on a retained topic of the camera.
        let on_off_sensor = |what: &str, class: &str, topic: String| {
            (
                format!("homeassistant/binary_sensor/{uid}_{what}/config"),
                json!({
                    "name": format!("{id} {what}"),
                    "unique_id": format!("{uid}_{what}"),
                    "device_class": class,
                    "state_topic": topic,
                    "payload_on": "ON", "payload_off": "OFF",
                    "availability_topic": avail,
                    "device": device,
                }),
            )
        };
        out.push(on_off_sensor("clip", "running", t.clip_state(id)));
        if c.motion_off_delay.is_some() {
            out.push(on_off_sensor("motion", "motion", t.motion_state(id)));
        }
        out.push((
            format!("homeassistant/binary_sensor/{uid}_connected/config"),
            json!({
                "name": format!("{id} connected"),
                "unique_id": format!("{uid}_connected"),
                "device_class": "connectivity",
                "state_topic": t.state(),
                "value_template": format!(
                    "{{{{ 'ON' if value_json.cameras['{id}'].connected else 'OFF' }}}}"
                ),
                "availability_topic": avail,
                "device": device,
            }),
        ));
    }
    if ctx.upload.is_some() {
        out.push((
            format!("homeassistant/sensor/edgerec_{node}_upload_backlog/config"),
            json!({
                "name": "upload backlog",
                "unique_id": format!("edgerec_{node}_upload_backlog"),
                "device_class": "data_size",
                "unit_of_measurement": "B",
                "state_class": "measurement",
                "state_topic": t.state(),
                "value_template": "{{ value_json.uplink.backlog_bytes }}",
                "availability_topic": avail,
                "device": device,
            }),
        ));
    }
    out.push((
        format!("homeassistant/sensor/edgerec_{node}_storage_used/config"),
        json!({
            "name": "storage used",
            "unique_id": format!("edgerec_{node}_storage_used"),
            "device_class": "data_size",
            "unit_of_measurement": "B",
            "state_class": "measurement",
            "state_topic": t.state(),
            "value_template": "{{ value_json.storage.used_bytes }}",
            "availability_topic": avail,
            "device": device,
        }),
    ));
    out
}
