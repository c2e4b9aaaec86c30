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
//! HTTP (RFC 9110): `Content-Length` up front, `Accept-Ranges: bytes`, one `Range` answered with
//! 206 and the same bytes as the full download (several ranges get the whole file, 200), 416 for
//! a range past the end, a strong `ETag`, `HEAD`, and `Content-Disposition` with the camera and
//! the UTC range in the file name. The body is read in 256 KiB pieces on the blocking pool, so
//! memory stays bounded whatever the length.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{blocking, check_camera, Shared};
use crate::export::{Export, ExportError};
use crate::playback::time::{format_full, parse_datetime};
use crate::playback::ApiError;

/// Bytes read from the files per body chunk.
const CHUNK: u64 = 256 * 1024;

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
fn open_export(
    st: &super::AppState,
    segs: &[crate::index::SegmentRow],
    windows: &[(i64, i64)],
) -> Result<Export, ApiError> {
    crate::export::open_windows(&st.storage_root, segs, windows).map_err(|e| match e {
        ExportError::NoMedia => ApiError::not_found(
            "NoMedia",
            "no media of this camera between startTime and endTime",
        ),
        ExportError::Io { .. } => ApiError::not_found(
            "SegmentGone",
            format!("{e}: it was evicted while the export was planned; try again"),
        ),
        other => ApiError::internal(other.to_string()),
    })
}

/// Checks the query and plans the file.
fn plan(
    st: &super::AppState,
    camera: &str,
    q: &HashMap<String, String>,
) -> Result<Export, ApiError> {
    check_camera(st, camera)?;
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
    let max = st.max_export.as_nanos() as i64;
    if end - start > max {
        return Err(ApiError::bad(
            "TimeRangeTooLong",
            format!(
                "an export spans at most {} s (http.max_export); ask for less or split it",
                max / 1_000_000_000
            ),
        ));
    }
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

/// One byte range `start..=end` of `len`, from a `Range` header value. `Ok(None)`: serve the
/// whole file (no header, several ranges, another unit). `Err`: unsatisfiable (416).
fn byte_range(h: Option<&HeaderValue>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len - 1)
        };
        (s, e)
    };
    if r.0 > r.1 || r.0 >= len {
        return Err(());
    }
    Ok(Some(r))
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

fn respond(camera: &str, x: Arc<Export>, method: &Method, headers: &HeaderMap) -> Response {
    let len = x.file.len();
    let mut h = HeaderMap::new();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, "video/mp4".into());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, x.etag.clone());
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
    // A Range with If-Range naming another version gets the whole file (RFC 9110 13.1.5).
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().ok() == Some(x.etag.as_str()));
    let range = if if_range_ok {
        byte_range(headers.get(header::RANGE), len)
    } else {
        Ok(None)
    };
    let (status, from, to) = match range {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => {
            set(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"));
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
        Err(()) => {
            set(header::CONTENT_RANGE, format!("bytes */{len}"));
            return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
        }
    };
    set(header::CONTENT_LENGTH, (to - from).to_string());
    if method == Method::HEAD {
        return (status, h).into_response();
    }
    (status, h, Body::from_stream(body(x, from, to))).into_response()
}

/// The bytes `from..to` of the export, [`CHUNK`] at a time, each read on the blocking pool.
fn body(
    x: Arc<Export>,
    from: u64,
    to: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::try_unfold(from, move |at| {
        let x = x.clone();
        async move {
            if at >= to {
                return Ok(None);
            }
            let n = CHUNK.min(to - at);
            let buf = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n as usize];
                x.file.read_at(at, &mut buf).map(|_| buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((buf, at + n)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some(&v("bytes=0-9")), 100), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some(&v("bytes=90-")), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some(&v("bytes=-10")), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some(&v("bytes=-1000")), 100), Ok(Some((0, 99))));
        assert_eq!(
            byte_range(Some(&v("bytes=50-1000")), 100),
            Ok(Some((50, 99)))
        );
        assert_eq!(byte_range(Some(&v("bytes=0-1,5-6")), 100), Ok(None));
        assert_eq!(byte_range(Some(&v("items=0-1")), 100), Ok(None));
        assert_eq!(byte_range(Some(&v("bytes=100-")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=9-3")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=-0")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=x-3")), 100), Err(()));
    }
}
