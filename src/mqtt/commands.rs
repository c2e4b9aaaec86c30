//! Incoming commands: the plain topics (`<camera>/recording/set`, `<camera>/event`) and the
//! request/response commands under `cmd/` (`getState`, `listCameras`, `setRecording`,
//! `triggerEvent`). Every command is checked before anything changes: bad JSON, wrong types or
//! values are 400, an unknown camera or command 404, a camera disabled in the configuration 409,
//! a storage failure 500. Nothing here can stop recording.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::Context;
use crate::clock::now_utc_ns;
use crate::index::{EventInsert, EventRow};
use crate::store::writer::WriterMsg;

/// A reply: `{"status": 200, "payload": ...}` or `{"status": 4xx/5xx, "error": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP-like status code.
    pub status: u16,
    /// Payload (2xx) or error message.
    pub body: Result<Value, String>,
}

impl Reply {
    fn ok(v: Value) -> Reply {
        Reply {
            status: 200,
            body: Ok(v),
        }
    }

    /// An error reply.
    pub fn err(status: u16, msg: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Err(msg.into()),
        }
    }

    /// The JSON document sent back.
    pub fn to_json(&self) -> Value {
        match &self.body {
            Ok(v) => json!({"status": self.status, "payload": v}),
            Err(e) => json!({"status": self.status, "error": e}),
        }
    }
}

/// Longest accepted label or event id, bytes.
pub const MAX_LABEL: usize = 128;

/// An event marker as sent on `<camera>/event` or in `triggerEvent`.
#[derive(Debug, Deserialize)]
struct EventIn {
    id: Option<String>,
    label: String,
    time: Option<String>,
    duration: Option<String>,
}

/// Parses an event payload for `camera` (JSON `{"id"?, "label", "time"? (RFC 3339, default
/// now), "duration"? (ISO 8601)}`).
pub fn parse_event(camera: &str, v: Value) -> Result<EventRow, Reply> {
    let e: EventIn =
        serde_json::from_value(v).map_err(|e| Reply::err(400, format!("event: {e}")))?;
    if e.label.is_empty() || e.label.len() > MAX_LABEL {
        return Err(Reply::err(400, "event: label must be 1 to 128 bytes"));
    }
    let now = now_utc_ns();
    let time = match &e.time {
        Some(t) => crate::playback::time::parse_datetime(t)
            .map_err(|m| Reply::err(400, format!("event: time: {m}")))?,
        None => now,
    };
    let duration_ns = match &e.duration {
        Some(d) => {
            let d = crate::duration::parse_iso8601(d)
                .map_err(|m| Reply::err(400, format!("event: duration: {m}")))?;
            if d > Duration::from_secs(86400) {
                return Err(Reply::err(400, "event: duration must be at most P1D"));
            }
            Some(d.as_nanos() as i64)
        }
        None => None,
    };
    let id = match e.id {
        Some(id) if id.is_empty() || id.len() > MAX_LABEL => {
            return Err(Reply::err(400, "event: id must be 1 to 128 bytes"))
        }
        Some(id) => id,
        None => format!(
            "{}-{:08x}",
            crate::store::layout::segment_stem(time),
            now as u32 ^ (now >> 32) as u32
        ),
    };
    Ok(EventRow {
        camera: camera.to_owned(),
        id,
        label: e.label,
        time_utc_ns: time,
        duration_ns,
        received_utc_ns: now,
    })
}

/// Parses `ON` / `OFF` (case-insensitive, surrounding white space ignored).
pub fn parse_on_off(payload: &[u8]) -> Result<bool, Reply> {
    match std::str::from_utf8(payload).map(|s| s.trim().to_ascii_uppercase()) {
        Ok(s) if s == "ON" => Ok(true),
        Ok(s) if s == "OFF" => Ok(false),
        _ => Err(Reply::err(400, "recording/set: payload must be ON or OFF")),
    }
}

/// Switches recording of `camera` and persists it; the `recording/state` follows once the
/// supervisor has applied it.
pub fn set_recording(ctx: &Context, camera: &str, on: bool) -> Reply {
    let Some(c) = ctx.cameras.iter().find(|c| c.id == camera) else {
        return Reply::err(404, format!("unknown camera {camera:?}"));
    };
    if !c.enabled {
        return Reply::err(
            409,
            format!("camera {camera:?} is disabled in the configuration (enabled = false)"),
        );
    }
    if let Err(e) = ctx.switches.set(camera, on) {
        return Reply::err(500, format!("cannot persist the recording switch: {e}"));
    }
    c.status.switched_off.store(!on, Ordering::Relaxed);
    Reply::ok(json!({"camera": camera, "on": on}))
}

/// Stores an event marker through the storage writer (waits at most 2 s for it).
pub fn add_event(ctx: &Context, ev: EventRow) -> Reply {
    if !ctx.cameras.iter().any(|c| c.id == ev.camera) {
        return Reply::err(404, format!("unknown camera {:?}", ev.camera));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let id = ev.id.clone();
    if !ctx.writer.try_send(WriterMsg::AddEvent {
        event: ev,
        reply: tx,
    }) {
        return Reply::err(500, "storage writer busy: event not stored");
    }
    match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(Ok(EventInsert::Inserted | EventInsert::Duplicate)) => Reply::ok(json!({"id": id})),
        Ok(Ok(EventInsert::Conflict)) => Reply::err(
            409,
            format!("another event with id {id:?} exists for this camera"),
        ),
        Ok(Err(e)) => Reply::err(500, format!("event not stored: {e}")),
        Err(_) => Reply::err(
            500,
            "storage writer did not answer within 2 s: event not stored",
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRecordingIn {
    camera: String,
    on: bool,
    #[serde(default, rename = "reply_to")]
    _reply_to: Option<String>,
}

/// Runs command `name` with its JSON payload `v` (already parsed; `reply_to` may be in it).
pub fn execute(ctx: &Context, name: &str, v: Value, rates: &HashMap<String, u64>) -> Reply {
    match name {
        "getState" => Reply::ok(super::status::state_json(ctx, rates)),
        "listCameras" => Reply::ok(Value::Array(
            ctx.cameras
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "enabled": c.enabled,
                        "recording": c.status.recording.load(Ordering::Relaxed),
                        "connected": c.status.connected.load(Ordering::Relaxed),
                    })
                })
                .collect(),
        )),
        "setRecording" => match serde_json::from_value::<SetRecordingIn>(v) {
            Ok(a) => set_recording(ctx, &a.camera, a.on),
            Err(e) => Reply::err(
                400,
                format!("setRecording: {e} (expected {{\"camera\": string, \"on\": bool}})"),
            ),
        },
        "triggerEvent" => {
            let Some(camera) = v.get("camera").and_then(Value::as_str).map(str::to_owned) else {
                return Reply::err(400, "triggerEvent: camera (string) is required");
            };
            let mut v = v;
            if let Some(o) = v.as_object_mut() {
                o.remove("camera");
                o.remove("reply_to");
            }
            match parse_event(&camera, v) {
                Ok(ev) => add_event(ctx, ev),
                Err(r) => r,
            }
        }
        other => Reply::err(
            404,
            format!(
                "unknown command {other:?}: getState, listCameras, setRecording or triggerEvent"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_rules() {
        assert!(parse_on_off(b" on\n").unwrap());
        assert!(!parse_on_off(b"OFF").unwrap());
        assert_eq!(parse_on_off(b"1").unwrap_err().status, 400);
        assert_eq!(parse_on_off(&[0xff, 0xfe]).unwrap_err().status, 400);
        let e = parse_event("c", json!({"label": "person", "time": "2026-01-02T03:04:05Z", "duration": "PT10S", "id": "x"})).unwrap();
        assert_eq!((e.id.as_str(), e.duration_ns), ("x", Some(10_000_000_000)));
        assert_eq!(e.time_utc_ns, 1_767_323_045_000_000_000);
        for bad in [
            json!({"label": 5}),
            json!({}),
            json!({"label": ""}),
            json!({"label": "a", "time": "yesterday"}),
            json!({"label": "a", "duration": "P2D"}),
            json!("label"),
        ] {
            assert_eq!(
                parse_event("c", bad.clone()).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        assert!(parse_event("c", json!({"label": "a"})).unwrap().id.len() > 10);
    }
}
