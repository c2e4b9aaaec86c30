//! Event intake: the JSON an event arrives as (MQTT `<camera>/event`, `cmd/triggerEvent`, HTTP
//! `POST /api/cameras/{camera}/events`), its rules, and handing it to the storage writer, which
//! stores it and feeds it to the camera's signal gate (EVR, [`crate::evr::gate`]).
//!
//! One set of rules for every transport, so that a bad event gets the same answer everywhere:
//! 400 with a message naming the field, 404 for an unknown camera, 409 for an id used by another
//! event of the camera, 500 when the writer cannot store it now. Transport details (topics,
//! routes, reply envelopes) do not belong here.

use std::time::Duration;

use crate::clock::now_utc_ns;
use crate::index::{EventInsert, EventRow};
use crate::store::writer::{WriterHandle, WriterMsg};

/// Longest accepted label or event id, bytes.
pub const MAX_LABEL: usize = 128;

/// Longest accepted event duration (a trigger held open), ns: one day.
pub const MAX_DURATION_NS: i64 = 86_400_000_000_000;

/// Why an event was refused: an HTTP-like status and a message naming the field or rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400, 404, 409 or 500.
    pub status: u16,
    /// What was wrong.
    pub message: String,
}

impl Rejection {
    fn new(status: u16, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            message: message.into(),
        }
    }
}

/// The fields an event may have: `{"id"?, "label", "time"? (RFC 3339 UTC, default: now),
/// "duration"? (ISO 8601, a trigger held for that long), "objects"? (labels of what was seen,
/// at most [`MAX_OBJECTS`])}`; `replyTo` (and its older spelling `reply_to`) belongs to MQTT 3.1.1
/// request envelopes and is ignored.
const FIELDS: [&str; 7] = [
    "id", "label", "time", "duration", "objects", "replyTo", "reply_to",
];

/// Most object labels one event may carry.
pub const MAX_OBJECTS: usize = 32;

/// The string field `name` of `o`, if present. Errors: 400 naming the field.
fn text<'a>(
    o: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<&'a str>, Rejection> {
    match o.get(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Rejection::new(
            400,
            format!("event: {name} must be a string"),
        )),
    }
}

/// Parses and checks an event for `camera`. An event without an id gets one made from its time
/// and the arrival time.
///
/// Errors: 400 naming the field (`label`, `id`, `time`, `duration`, or an unknown field).
pub fn parse(camera: &str, v: serde_json::Value) -> Result<EventRow, Rejection> {
    let serde_json::Value::Object(o) = v else {
        return Err(Rejection::new(400, "event: must be a JSON object"));
    };
    if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Rejection::new(
            400,
            format!("event: unknown field {k:?} (fields: id, label, time, duration, objects)"),
        ));
    }
    let label =
        text(&o, "label")?.ok_or_else(|| Rejection::new(400, "event: label is required"))?;
    if label.is_empty() || label.len() > MAX_LABEL {
        return Err(Rejection::new(400, "event: label must be 1 to 128 bytes"));
    }
    let now = now_utc_ns();
    let time = match text(&o, "time")? {
        Some(t) => crate::playback::time::parse_datetime(t)
            .map_err(|m| Rejection::new(400, format!("event: time: {m}")))?,
        None => now,
    };
    let duration_ns = match text(&o, "duration")? {
        Some(d) => {
            let d = crate::duration::parse_iso8601(d)
                .map_err(|m| Rejection::new(400, format!("event: duration: {m}")))?;
            if d > Duration::from_nanos(MAX_DURATION_NS as u64) {
                return Err(Rejection::new(400, "event: duration must be at most P1D"));
            }
            Some(d.as_nanos() as i64)
        }
        None => None,
    };
    let id = match text(&o, "id")? {
        Some(id) if id.is_empty() || id.len() > MAX_LABEL => {
            return Err(Rejection::new(400, "event: id must be 1 to 128 bytes"))
        }
        Some(id) => id.to_owned(),
        None => format!(
            "{}-{:08x}",
            crate::store::layout::segment_stem(time),
            now as u32 ^ (now >> 32) as u32
        ),
    };
    let objects = match o.get("objects") {
        None => Vec::new(),
        Some(serde_json::Value::Array(a)) if a.len() <= MAX_OBJECTS => a
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if !s.is_empty() && s.len() <= MAX_LABEL => Ok(s.to_owned()),
                _ => Err(Rejection::new(
                    400,
                    "event: objects must be strings of 1 to 128 bytes",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Rejection::new(
                400,
                format!("event: objects must be an array of at most {MAX_OBJECTS} strings"),
            ))
        }
    };
    Ok(EventRow {
        objects,
        camera: camera.to_owned(),
        id,
        label: label.to_owned(),
        time_utc_ns: time,
        duration_ns,
        received_utc_ns: now,
    })
}

/// Hands an event to the storage writer and waits (at most 2 s) until it is stored and the
/// signal gate has seen it. `known` says whether the camera is configured. Returns the event id;
/// sending the same event again is accepted (a QoS 1 redelivery).
///
/// Errors: 404 unknown camera, 409 another event of the camera has this id, 500 the writer is
/// busy, failed or did not answer in time.
pub fn submit(writer: &WriterHandle, known: bool, ev: EventRow) -> Result<String, Rejection> {
    if !known {
        return Err(Rejection::new(
            404,
            format!("unknown camera {:?}", ev.camera),
        ));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let id = ev.id.clone();
    if !writer.try_send(WriterMsg::AddEvent {
        event: ev,
        reply: tx,
    }) {
        return Err(Rejection::new(500, "storage writer busy: event not stored"));
    }
    match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(Ok(EventInsert::Inserted | EventInsert::Duplicate)) => Ok(id),
        Ok(Ok(EventInsert::Conflict)) => Err(Rejection::new(
            409,
            format!("another event with id {id:?} exists for this camera"),
        )),
        Ok(Err(e)) => Err(Rejection::new(500, format!("event not stored: {e}"))),
        Err(_) => Err(Rejection::new(
            500,
            "storage writer did not answer within 2 s: event not stored",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_name_the_field() {
        let e = parse(
            "c",
            json!({"label": "person", "time": "2026-01-02T03:04:05Z", "duration": "PT10S", "id": "x"}),
        )
        .unwrap();
        assert_eq!((e.id.as_str(), e.duration_ns), ("x", Some(10_000_000_000)));
        for (bad, field) in [
            (json!({}), "label"),
            (json!({"label": ""}), "label"),
            (json!({"label": "a", "time": "yesterday"}), "time"),
            (json!({"label": "a", "duration": "P2D"}), "duration"),
            (json!({"label": "a", "duration": "ten"}), "duration"),
            (json!({"label": "a", "id": ""}), "id"),
            (json!({"label": "a", "colour": "red"}), "colour"),
            (json!({"label": 5}), "label"),
            (json!({"label": "a", "objects": "person"}), "objects"),
            (json!({"label": "a", "objects": [1]}), "objects"),
        ] {
            let r = parse("c", bad.clone()).unwrap_err();
            assert_eq!(r.status, 400, "{bad}");
            assert!(r.message.contains(field), "{bad}: {}", r.message);
        }
        assert!(parse("c", json!({"label": "a"})).unwrap().id.len() > 10);
        let e = parse("c", json!({"label": "a", "objects": ["person", "car"]})).unwrap();
        assert_eq!(e.objects, ["person", "car"]);
    }
}
