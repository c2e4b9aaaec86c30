//! `GET|HEAD /{camera}/content.ism/export.mp4?startTime=..&endTime=..`: a time range as one
//! ordinary MP4 ([`crate::export`]), served as it is read from the segment files, never staged.
//! `GET|HEAD /api/cameras/{camera}/clips/{id}/export.mp4`: an EVR clip's media the same way
//! (its requested start to its end, as the clips API lists it). An EVR camera's range export
//! holds only what its clips keep, as its VoD manifests do; a CVR camera's holds all its media.
//!
//! Rules (seed `004_*` manifest filters, applied to a download): both times required, RFC 3339
//! UTC; `endTime` after `startTime`; at most `http.max_export` apart (default 6 h), else 400; a
//! start or end in a gap moves to the media (fragments are chosen by overlap); a range wholly in
//! a gap is 404. The file starts with the fragment holding `startTime` (a key frame), so it may
//! start a little earlier: `X-Actual-Start-Time` and `X-Actual-End-Time` say what it holds.
//!
//! HTTP: ranges, `HEAD` and a strong `ETag` as [`super::ranged`] serves them, and
//! `Content-Disposition` with the camera and the UTC range in the file name.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use super::{blocking, check_camera, Shared};
use crate::export::{Export, ExportError};
use crate::playback::time::{format_full, parse_datetime};
use crate::playback::ApiError;

/// The handler; see the module docs.
pub async fn export(
    State(st): State<Shared>,
    UrlPath(camera): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let st2 = st.clone();
    let cam = camera.clone();
    let planned = blocking(move || plan(&st2, &cam, &q)).await;
    let x = match planned {
        Ok(x) => Arc::new(x),
        Err(e) => return e.into_response(),
    };
    respond(&camera, x, req.method(), req.headers())
}

/// The clip export handler; see the module docs. 404 `NoSuchClip` for an unknown id.
pub async fn clip(
    State(st): State<Shared>,
    UrlPath((camera, id)): UrlPath<(String, String)>,
    req: Request,
) -> Response {
    let st2 = st.clone();
    let cam = camera.clone();
    let planned = blocking(move || {
        check_camera(&st2, &cam)?;
        let c = id
            .parse::<i64>()
            .ok()
            .map(|id| st2.catalog.clip(&cam, id))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                ApiError::not_found("NoSuchClip", "no clip with this id for this camera")
            })?;
        let segs = st2
            .catalog
            .segments(&cam, c.requested_start_utc_ns, c.end_utc_ns)?;
        open_export(&st2, &segs, &[(c.requested_start_utc_ns, c.end_utc_ns)])
    })
    .await;
    match planned {
        Ok(x) => respond(&camera, Arc::new(x), req.method(), req.headers()),
        Err(e) => e.into_response(),
    }
}

/// Plans the export, with the API's errors.
pub(crate) fn export_error(e: ExportError) -> ApiError {
    match e {
        ExportError::NoMedia => ApiError::not_found(
            "NoMedia",
            "no media of this camera between startTime and endTime",
        ),
        ExportError::Io { .. } => ApiError::not_found(
            "SegmentGone",
            format!("{e}: it was evicted while the export was planned; try again"),
        ),
        other => ApiError::internal(other.to_string()),
    }
}

fn open_export(
    st: &super::AppState,
    segs: &[crate::index::SegmentRow],
    windows: &[(i64, i64)],
) -> Result<Export, ApiError> {
    crate::export::open_windows(&st.storage_root, segs, windows).map_err(export_error)
}

/// The `startTime` and `endTime` of an export request (UTC ns), checked: both present, RFC 3339,
/// end after start, at most `max_export` apart (`http.max_export`). Shared with `edgerec serve`.
///
/// Errors: 400 naming the rule.
pub(crate) fn export_range(
    q: &HashMap<String, String>,
    max_export: std::time::Duration,
) -> Result<(i64, i64), ApiError> {
    let time = |k: &str| -> Result<i64, ApiError> {
        let v = q.get(k).ok_or_else(|| {
            ApiError::bad(
                "MissingTimeRange",
                "export.mp4 needs startTime and endTime (RFC 3339 UTC, e.g. 2026-11-24T10:00:00Z)",
            )
        })?;
        parse_datetime(v).map_err(|m| ApiError::bad("InvalidTimeFormat", format!("{k}: {m}")))
    };
    let (start, end) = (time("startTime")?, time("endTime")?);
    if end <= start {
        return Err(ApiError::bad(
            "InvalidTimeRange",
            "endTime must be after startTime",
        ));
    }
    let max = max_export.as_nanos() as i64;
    if end - start > max {
        return Err(ApiError::bad(
            "TimeRangeTooLong",
            format!(
                "an export spans at most {} s (http.max_export); ask for less or split it",
                max / 1_000_000_000
            ),
        ));
    }
    Ok((start, end))
}

/// Checks the query and plans the file.
fn plan(
    st: &super::AppState,
    camera: &str,
    q: &HashMap<String, String>,
) -> Result<Export, ApiError> {
    check_camera(st, camera)?;
    let (start, end) = export_range(q, st.max_export)?;
    let segs = st.catalog.segments(camera, start, end)?;
    // An EVR camera's recording is its clips, as in its VoD manifests (seed 004 via DESIGN 9).
    let evr = st
        .cameras
        .iter()
        .any(|c| c.id == camera && c.mode == crate::config::Mode::Evr);
    let windows = if evr {
        let clips = st.catalog.clips(camera, start, end)?;
        crate::playback::kept::windows(&segs, &clips)
            .into_iter()
            .map(|(a, b)| (a.max(start), b.min(end)))
            .filter(|(a, b)| a < b)
            .collect()
    } else {
        vec![(start, end)]
    };
    open_export(st, &segs, &windows)
}

/// `cam_20261124T100000.000Z_20261124T110000.000Z.mp4`, from the actual first and last frame.
fn file_name(camera: &str, x: &Export) -> String {
    let stem = |t| crate::store::layout::segment_stem(t);
    format!(
        "{camera}_{}_{}.mp4",
        stem(x.start_utc_ns),
        stem(x.end_utc_ns)
    )
}

pub(crate) fn respond(
    camera: &str,
    x: Arc<Export>,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let mut h = HeaderMap::new();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, "video/mp4".into());
    set(header::CACHE_CONTROL, "private, no-cache".into());
    set(
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{}\"", file_name(camera, &x)),
    );
    set(
        header::HeaderName::from_static("x-actual-start-time"),
        format_full(x.start_utc_ns),
    );
    set(
        header::HeaderName::from_static("x-actual-end-time"),
        format_full(x.end_utc_ns),
    );
    let etag = x.etag.clone();
    super::ranged::respond(x, &etag, h, method, headers)
}
