//! `GET|HEAD /{camera}/content.ism/media/{segment id}.mp4`: a segment file as manifests point
//! into it, on the camera's one media timeline.
//!
//! On the card a segment file counts its media time from its own start, so that it plays alone;
//! manifests need the time the muxer stamped (counting from 1970), so the bytes are served
//! through [`crate::store::timebase::PlaybackView`], which adds the segment's base back to each
//! fragment's `tfdt` as it reads. Ranges, `HEAD` and the `ETag` are [`super::ranged`]'s. The
//! segment is found by id in the index, never by a path from the request; one evicted
//! meanwhile is a JSON 404 `SegmentGone`. A closed segment may be cached for a day; the open
//! one not at all (it grows).

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{blocking, Shared};
use crate::config::valid_camera_id;
use crate::playback::ApiError;
use crate::store::layout::safe_join;
use crate::store::timebase::PlaybackView;

/// The handler; see the module docs.
pub async fn media(
    State(st): State<Shared>,
    UrlPath((camera, file)): UrlPath<(String, String)>,
    req: Request,
) -> Response {
    let id = file
        .strip_suffix(".mp4")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0);
    let Some(id) = id else {
        return ApiError::bad("InvalidSegment", "media URLs are media/<segment id>.mp4")
            .into_response();
    };
    let opened = blocking(move || {
        if !valid_camera_id(&camera) {
            return Err(ApiError::bad(
                "InvalidCameraId",
                "camera ids match [a-z0-9][a-z0-9_-]{0,63}",
            ));
        }
        let gone = || {
            ApiError::not_found(
                "SegmentGone",
                "no such segment: it was evicted or never existed; reload the manifest",
            )
        };
        let row = st
            .catalog
            .segment(id)?
            .filter(|r| r.camera == camera)
            .ok_or_else(gone)?;
        let path = safe_join(&st.storage_root, &row.path).ok_or_else(gone)?;
        let view = PlaybackView::open(&path, &row).map_err(|_| gone())?;
        Ok((row, view))
    })
    .await;
    let (row, view) = match opened {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if crate::playback::catalog::is_open(&row) {
            "no-cache"
        } else {
            "private, max-age=86400"
        }),
    );
    let etag = format!("\"{}-{}\"", row.id, view.len());
    super::ranged::respond(Arc::new(view), &etag, h, req.method(), req.headers())
}
