//! Incoming commands: the plain topics (`<camera>/recording/set`, `<camera>/event`) and the
//! request/response commands under `cmd/` (`getState`, `listCameras`, `setRecording`,
//! `triggerEvent`). Every command is checked before anything changes: bad JSON, wrong types or
//! values are 400, an unknown camera or command 404, a camera disabled in the configuration 409,
//! a storage failure 500. Nothing here can stop recording.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::{json, Value};

use super::Context;
use crate::index::EventRow;

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

/// Parses an event payload for `camera` ([`crate::events::parse`]: the rules every transport
/// shares).
pub fn parse_event(camera: &str, v: Value) -> Result<EventRow, Reply> {
    crate::events::parse(camera, v).map_err(|r| Reply::err(r.status, r.message))
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

/// Stores an event marker through the storage writer, which feeds it to the camera's signal
/// gate ([`crate::events::submit`]; waits at most 2 s).
pub fn add_event(ctx: &Context, ev: EventRow) -> Reply {
    let known = ctx.cameras.iter().any(|c| c.id == ev.camera);
    match crate::events::submit(&ctx.writer, known, ev) {
        Ok(id) => Reply::ok(json!({"id": id})),
        Err(r) => Reply::err(r.status, r.message),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRecordingIn {
    camera: String,
    on: bool,
    #[serde(default, rename = "replyTo", alias = "reply_to")]
    _reply_to: Option<String>,
}

/// Runs command `name` with its JSON payload `v` (already parsed; `replyTo` (or the older `reply_to`) may be in it).
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
                o.remove("replyTo");
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
        for bad in [json!({"label": 5}), json!("label")] {
            assert_eq!(
                parse_event("c", bad.clone()).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        assert!(parse_event("c", json!({"label": "a"})).unwrap().id.len() > 10);
    }
}
