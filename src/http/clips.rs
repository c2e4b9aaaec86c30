//! Event-based recording over HTTP (DESIGN section 9): `POST /api/cameras/{camera}/events` (an
//! event for the signal gate, the JSON of [`crate::events`]) and `GET
//! /api/cameras/{camera}/clips?startTime&endTime` (the camera's clips, with ready-made HLS and
//! DASH URLs over each clip's media). Both sit behind the token check like every other route.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{blocking, check_camera, Shared};
use crate::evr::clip::{covered, event_json, extent};
use crate::index::ClipRow;
use crate::playback::available::MAX_FULL_NS;
use crate::playback::time::{format_full, parse_datetime};
use crate::playback::ApiError;

/// Most clips one answer lists.
pub const MAX_CLIPS: usize = 10_000;

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /api/cameras/{camera}/events`: 200 `{"id": ..}` once stored and seen by the gate; 400
/// naming the field, 404 unknown camera, 409 id conflict, 500 storage.
pub async fn post_event(
    State(st): State<Shared>,
    UrlPath(camera): UrlPath<String>,
    body: Bytes,
) -> Response {
    let r = blocking(move || {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad("InvalidEvent", format!("event: not JSON: {e}")))?;
        let ev = crate::events::parse(&camera, v).map_err(rejection)?;
        let known = st.cameras.iter().any(|c| c.id == camera);
        let Some(w) = &st.writer else {
            return Err(ApiError::internal(
                "this server does not record: event not stored",
            ));
        };
        let id = crate::events::submit(w, known, ev).map_err(rejection)?;
        Ok(serde_json::json!({ "id": id }).to_string())
    })
    .await;
    match r {
        Ok(b) => json(b),
        Err(e) => e.into_response(),
    }
}

fn rejection(r: crate::events::Rejection) -> ApiError {
    let code = match r.status {
        400 => "InvalidEvent",
        404 => "UnknownCamera",
        409 => "EventIdConflict",
        _ => "InternalError",
    };
    ApiError {
        status: r.status,
        code,
        message: r.message,
    }
}

/// The `startTime` and `endTime` of a clip list (UTC ns): both required, ISO 8601, at most 25
/// hours apart. Shared with `edgerec serve`.
///
/// Errors: 400 naming the rule.
pub(crate) fn clip_range(q: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let (Some(s), Some(e)) = (q.get("startTime"), q.get("endTime")) else {
        return Err(ApiError::bad(
            "MissingTimeRange",
            "startTime and endTime are required (ISO 8601 date-times in UTC)",
        ));
    };
    let s = parse_datetime(s)
        .map_err(|m| ApiError::bad("InvalidTimeFormat", format!("startTime: {m}")))?;
    let e = parse_datetime(e)
        .map_err(|m| ApiError::bad("InvalidTimeFormat", format!("endTime: {m}")))?;
    if s >= e || e - s > MAX_FULL_NS {
        return Err(ApiError::bad(
            "InvalidTimeRange",
            "startTime must be before endTime, and they may be at most 25 hours apart",
        ));
    }
    Ok((s, e))
}

/// `GET /api/cameras/{camera}/clips?startTime=..&endTime=..` (ISO 8601 UTC, at most 25 hours
/// apart, as availableMedia at full precision): the clips whose window overlaps the range.
pub async fn list(
    State(st): State<Shared>,
    UrlPath(camera): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = blocking(move || {
        let (s, e) = clip_range(&q)?;
        check_camera(&st, &camera)?;
        let mut clips = st.catalog.clips(&camera, s, e)?;
        clips.truncate(MAX_CLIPS);
        let ids: Vec<i64> = clips.iter().map(|c| c.id).collect();
        let events = st.catalog.clip_events(&ids)?;
        let mut out = Vec::with_capacity(clips.len());
        for c in &clips {
            let segs = st
                .catalog
                .segments(&camera, c.requested_start_utc_ns, c.end_utc_ns)?;
            let media = extent(&covered(&segs, c.requested_start_utc_ns, c.end_utc_ns));
            let evs: Vec<_> = events
                .iter()
                .filter(|x| x.clip_id == c.id)
                .map(event_json)
                .collect();
            out.push(clip_json(&camera, c, media, evs));
        }
        Ok(serde_json::json!({ "camera": camera, "clips": out }).to_string())
    })
    .await;
    match r {
        Ok(b) => json(b),
        Err(e) => e.into_response(),
    }
}

/// One clip as the API shows it. `media`: the achieved media extent (UTC ns), if any.
fn clip_json(
    camera: &str,
    c: &ClipRow,
    media: Option<(i64, i64)>,
    events: Vec<serde_json::Value>,
) -> serde_json::Value {
    let ms = |ns: i64| ns.max(0) / 1_000_000;
    let preroll_requested = c.first_event_utc_ns - c.requested_start_utc_ns;
    let preroll_achieved = media.map(|(s, _)| (c.first_event_utc_ns - s).min(preroll_requested));
    // The filter works in ms: round the start up and the end down, so that the fragments just
    // outside the clip (which touch it to the ns) stay outside.
    let urls = media.map(|(s, e)| {
        let ms = 1_000_000;
        let (s, e) = (format_full((s + ms - 1) / ms * ms), format_full(e / ms * ms));
        serde_json::json!({
            "hls": format!("/{camera}/content.ism/manifest(format=m3u8-aapl,startTime={s},endTime={e}).m3u8"),
            "dash": format!("/{camera}/content.ism/manifest(format=mpd-time-cmaf,startTime={s},endTime={e}).mpd"),
            "mp4": format!("/api/cameras/{camera}/clips/{}/export.mp4", c.id),
        })
    });
    serde_json::json!({
        "id": c.id,
        "state": if c.open { "open" } else { "closed" },
        "start": media.map(|m| format_full(m.0)),
        "end": media.map(|m| format_full(m.1)),
        "requestedStart": format_full(c.requested_start_utc_ns),
        "requestedEnd": format_full(c.end_utc_ns),
        "firstEvent": format_full(c.first_event_utc_ns),
        "preRollRequestedMs": ms(preroll_requested),
        "preRollAchievedMs": preroll_achieved.map(ms),
        "closedBy": c.close_reason,
        "events": events,
        "uploaded": c.uploaded_utc_ns.is_some(),
        "urls": urls,
    })
}
