//! `GET|HEAD /{camera}/content.ism/media/{segment id}.mp4`: a segment file as manifests point
//! into it, on the camera's one media timeline.
//!
//! On the card a segment file counts its media time from its own start, so that it plays alone;
//! manifests need the time the muxer stamped (counting from 1970), so the bytes are served
//! through [`crate::store::timebase::PlaybackView`], which adds the segment's base back to each
//! fragment's `tfdt` as it reads. Ranges, `HEAD` and the `ETag` are [`super::ranged`]'s. The
//! segment is found by id in the index, never by a path from the request; one evicted
//! meanwhile is a JSON 404 `SegmentGone`. `?track=video|audio&at=init|<offset>` serves one track
//! of a file with both (DASH's separate adaptation sets), cut out of the muxed bytes. A closed segment may be cached for a day; the open
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
    let cache = if crate::playback::catalog::is_open(&row) {
        "no-cache"
    } else {
        "private, max-age=86400"
    };
    serve_segment(row, Arc::new(view), cache, req).await
}

/// Answers a media request for segment `row` as `view` serves it: one track
/// (`?track=..&at=..`, [`one_track`]) or the whole file with ranges, typed `video/mp4`, with
/// `Cache-Control: cache` and a strong `ETag`. Shared by `edgerec run` and `edgerec serve`.
pub(crate) async fn serve_segment(
    row: crate::index::SegmentRow,
    view: Arc<PlaybackView>,
    cache: &'static str,
    req: Request,
) -> Response {
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let arg = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(track) = arg("track") {
        let (method, headers) = (req.method().clone(), req.headers().clone());
        return one_track(row, view, &track, arg("at").as_deref(), method, headers).await;
    }
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    let etag = format!("\"{}-{}\"", row.id, view.len());
    super::ranged::respond(view, &etag, h, req.method(), req.headers())
}

/// Bytes made in memory (one track's init segment or fragment).
struct Made(Vec<u8>);

impl super::ranged::ByteSource for Made {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, start: u64, out: &mut [u8]) -> std::io::Result<()> {
        let s = usize::try_from(start).map_err(std::io::Error::other)?;
        let b = self
            .0
            .get(s..s + out.len())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "past the end"))?;
        out.copy_from_slice(b);
        Ok(())
    }
}

/// `?track=video|audio&at=init|<offset>`: one track of a file with audio and video, cut out
/// of the muxed bytes ([`crate::playback::split`]) for DASH's separate adaptation sets. `at`
/// is `init` or the byte offset of one of the segment's fragments.
async fn one_track(
    row: crate::index::SegmentRow,
    view: Arc<PlaybackView>,
    track: &str,
    at: Option<&str>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    let kind = match track {
        "video" => crate::mp4::TrackKind::Video,
        "audio" => crate::mp4::TrackKind::Audio,
        _ => {
            return ApiError::bad("InvalidTrack", "track is video or audio").into_response();
        }
    };
    let at = match at {
        Some("init") => None,
        Some(n) => match n.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return ApiError::bad(
                    "InvalidFragment",
                    "at is init or the byte offset of a fragment of the segment",
                )
                .into_response()
            }
        },
        None => {
            return ApiError::bad("InvalidFragment", "track needs at=init or at=<offset>")
                .into_response()
        }
    };
    let id = row.id;
    let made = blocking(move || {
        let init_len = row.init_size_bytes.max(0) as usize;
        let mut init = vec![0u8; init_len];
        view.read_at(0, &mut init)
            .map_err(|_| ApiError::not_found("SegmentGone", "the segment is gone"))?;
        let tracks = crate::mp4::tracks(&init);
        let Some(t) = tracks.iter().find(|t| t.kind == kind) else {
            return Err(ApiError::not_found(
                "NoSuchTrack",
                "this segment has no such track",
            ));
        };
        let first = tracks.first().map(|f| f.id) == Some(t.id);
        let bad = |e: crate::playback::split::SplitError| {
            ApiError::internal(format!("segment {id}: {e}"))
        };
        let Some(at) = at else {
            return crate::playback::split::init_for_track(&init, t.id).map_err(bad);
        };
        // The fragment starting at `at`, by the row's sizes.
        let mut pos = init_len as u64;
        let mut size = None;
        for f in &row.fragments {
            if pos == at {
                size = Some(u64::from(f.size_bytes));
                break;
            }
            pos += u64::from(f.size_bytes);
        }
        let size = size.filter(|s| at + s <= view.len()).ok_or_else(|| {
            ApiError::not_found(
                "NoSuchFragment",
                "no fragment of this segment starts at that offset; reload the manifest",
            )
        })?;
        let mut frag = vec![0u8; size as usize];
        view.read_at(at, &mut frag)
            .map_err(|_| ApiError::not_found("SegmentGone", "the segment is gone"))?;
        // Where an empty traf of this track starts: the video's time in its timescale.
        let scales = crate::mp4::TrackScales::of_tracks(&tracks);
        let video_t = crate::store::timebase::time_fields(&frag)
            .tfdt
            .and_then(|f| f.get(&frag))
            .unwrap_or(0);
        let empty_at = scales.convert(i128::from(video_t), t.timescale).max(0) as u64;
        crate::playback::split::fragment_for_track(&frag, t.id, first, empty_at).map_err(bad)
    })
    .await;
    let bytes = match made {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if kind == crate::mp4::TrackKind::Audio {
            "audio/mp4"
        } else {
            "video/mp4"
        }),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    let etag = format!(
        "\"{id}-{track}-{}\"",
        at.map_or_else(|| "init".to_string(), |a| a.to_string())
    );
    super::ranged::respond(Arc::new(Made(bytes)), &etag, h, &method, &headers)
}
