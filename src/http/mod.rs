//! The HTTP server of `edgerec run` (DESIGN section 6): playback routes in the Media Services URL
//! forms, segment bytes with HTTP Range, camera list, health and metrics.
//!
//! Routes (per camera, under `/{camera}/content.ism/`):
//! - `availableMedia?precision=..&startTime=..&endTime=..` → `{"timeRanges":[..]}`
//!   ([`crate::playback::available`]);
//! - `manifest(format=m3u8-aapl[,startTime=..][,endTime=..]).m3u8` and
//!   `manifest(format=mpd-time-cmaf[,..]).mpd` ([`crate::playback::filter`], [`crate::playback::hls`],
//!   [`crate::playback::dash`]);
//! - `media/{segment id}.mp4`: the segment file on the camera's media timeline ([`media`]), with
//!   `Range` (206), `Accept-Ranges`, `ETag`, `Content-Type: video/mp4`; a segment evicted
//!   meanwhile is a JSON 404.
//!
//! And `GET /api/cameras`, `GET /healthz` (never needs a token), `GET /metrics`. Errors are JSON
//! `{"error":{"code":..,"message":..}}`. With a token file, every other route needs a token
//! ([`auth`]); media URLs inside manifests then carry it. Segment files are found by id through
//! the index, never by a path from the request, so no request reaches a file outside the media
//! directory. CORS is open (`*`) so that browser players on other origins can fetch.
//!
//! The server runs on its own small tokio runtime thread; index reads run on blocking threads.
//! Recording never waits on it.

pub mod auth;
pub mod clips;
pub mod export;
pub mod media;
pub mod metrics;
pub mod ranged;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::{info, warn};

use crate::clock::now_utc_ns;
use crate::config::valid_camera_id;
use crate::ingest::CameraStatus;
use crate::playback::available::available_media;
use crate::playback::catalog::Catalog;
use crate::playback::filter::{parse_manifest_name, select, Format};
use crate::playback::hls::MediaUrls;
use crate::playback::time::format_full;
use crate::playback::{dash, hls, ApiError};
use crate::store::stats::WriterStats;

/// A configured camera as the server reports it.
pub struct CameraEntry {
    /// Camera id.
    pub id: String,
    /// Ingest state (`None` for a camera that is configured but disabled).
    pub status: Option<Arc<CameraStatus>>,
    /// CVR or EVR: an EVR camera's recorded media (availableMedia, VoD manifests) is its clips.
    pub mode: crate::config::Mode,
    /// The RTSP client reading it (`None` for a camera that is no longer configured).
    pub source: Option<crate::config::Source>,
}

/// Everything the handlers read.
pub struct AppState {
    /// Recordings.
    pub catalog: Arc<Catalog>,
    /// Storage root (segment paths in the index are relative to it).
    pub storage_root: PathBuf,
    /// Configured cameras, in config order.
    pub cameras: Vec<CameraEntry>,
    /// Writer counters.
    pub stats: Arc<WriterStats>,
    /// `storage.max_size_mib` in bytes.
    pub storage_limit_bytes: u64,
    /// Access tokens; `None`: no token needed (loopback without a token file).
    pub tokens: Option<auth::Tokens>,
    /// The uploader's status, once it runs (absent without `[upload]`).
    pub upload: Arc<std::sync::OnceLock<Arc<crate::upload::UploadShared>>>,
    /// The storage writer, for events posted over HTTP (`None`: events are refused with 500).
    pub writer: Option<crate::store::writer::WriterHandle>,
    /// `http.max_export`: the longest range of one MP4 export.
    pub max_export: std::time::Duration,
}

pub(crate) type Shared = Arc<AppState>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

/// Builds the router over `state`.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/cameras", get(cameras))
        .route("/api/events", get(events))
        .route(
            "/api/cameras/{camera}/events",
            axum::routing::post(clips::post_event),
        )
        .route("/api/cameras/{camera}/clips", get(clips::list))
        .route(
            "/api/cameras/{camera}/clips/{id}/export.mp4",
            get(export::clip),
        )
        .route("/metrics", get(metrics_route))
        .route("/{camera}/content.ism/export.mp4", get(export::export))
        .route("/{camera}/content.ism/{name}", get(content))
        .route("/{camera}/content.ism/media/{file}", get(media::media))
        .fallback(|| async { ApiError::not_found("NotFound", "no such route") })
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(page(state.tokens.is_some()))
        .layer(tower_http::cors::CorsLayer::permissive())
        .with_state(state)
}

/// The browser page ([`crate::ui`]), outside the token check: it holds no data.
#[cfg(feature = "ui")]
fn page(token_required: bool) -> Router<Shared> {
    crate::ui::router(token_required)
}

/// Without the `ui` feature, `/` says why there is no page.
#[cfg(not(feature = "ui"))]
fn page(_token_required: bool) -> Router<Shared> {
    Router::new().route(
        "/",
        get(|| async {
            ApiError::not_found(
                "NoBrowserPage",
                "this build of edgerec has no browser page (cargo feature `ui` left out); \
                 the API is at /api/cameras",
            )
        }),
    )
}

/// The token a request presents: the `Authorization: Bearer` header or the `token` query
/// parameter.
fn presented_token(req: &Request) -> Option<String> {
    if let Some(h) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = h.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    let q = req.uri().query()?;
    url_query(q).remove("token")
}

/// Decodes an `application/x-www-form-urlencoded` query.
fn url_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// The token to carry into media URLs of a manifest (when tokens are in force).
#[derive(Clone)]
pub(crate) struct CarryToken(pub(crate) Option<String>);

/// The access check of every route but `/healthz` (and the page): passes the request on with
/// the token to carry into media URLs ([`CarryToken`]; `None` when no token is needed), or
/// answers 401. Shared by `edgerec run` and `edgerec serve`.
pub(crate) async fn token_gate(
    tokens: Option<&auth::Tokens>,
    mut req: Request,
    next: Next,
) -> Response {
    let carry = match tokens {
        None => None,
        Some(tokens) => match presented_token(&req) {
            Some(t) if tokens.accepts(&t) => Some(t),
            presented => {
                warn!(path = %req.uri().path(), token_given = presented.is_some(),
                      "HTTP request refused: missing or wrong access token");
                let mut r = ApiError {
                    status: 401,
                    code: "Unauthorized",
                    message: "a valid access token is required (Authorization: Bearer <token> or ?token=<token>)".into(),
                }
                .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        },
    };
    req.extensions_mut().insert(CarryToken(carry));
    next.run(req).await
}

async fn require_token(State(st): State<Shared>, req: Request, next: Next) -> Response {
    token_gate(st.tokens.as_ref(), req, next).await
}

/// Checks the camera id and that the camera is configured or has media.
pub(crate) fn check_camera(st: &AppState, camera: &str) -> Result<(), ApiError> {
    if !valid_camera_id(camera) {
        return Err(ApiError::bad(
            "InvalidCameraId",
            "camera ids match [a-z0-9][a-z0-9_-]{0,63}",
        ));
    }
    if st.cameras.iter().any(|c| c.id == camera) || st.catalog.bounds(camera)?.is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "UnknownCamera",
            format!("no camera {camera:?}"),
        ))
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("worker: {e}"))))
}

async fn content(
    State(st): State<Shared>,
    UrlPath((camera, name)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let carry = req
        .extensions()
        .get::<CarryToken>()
        .cloned()
        .unwrap_or(CarryToken(None));
    let r = blocking(move || content_blocking(&st, &camera, &name, &q, carry.0)).await;
    match r {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn content_blocking(
    st: &AppState,
    camera: &str,
    name: &str,
    q: &HashMap<String, String>,
    token: Option<String>,
) -> Result<Response, ApiError> {
    check_camera(st, camera)?;
    let clips_only = st
        .cameras
        .iter()
        .any(|c| c.id == camera && c.mode == crate::config::Mode::Evr);
    let root = st.storage_root.clone();
    render_content(&*st.catalog, camera, name, q, token, clips_only, &|s| {
        read_init(&root, s)
    })
}

/// Answers `/{camera}/content.ism/{name}` (availableMedia or a manifest) from `cat`: the one
/// implementation of the playback rules, which the gateway (`edgerec run`) and the cloud side
/// (`edgerec serve`) both call. `name` is the last path segment, `q` the query, `token` the
/// access token to carry into media URLs, `clips_only` an EVR camera, `init_of` reads a
/// segment's init segment (`None`: unreadable). The camera id must be checked already.
///
/// Errors: the seed 004 rule that the request breaks (400), no media (404), an unreadable store
/// (500).
pub fn render_content(
    cat: &dyn crate::playback::catalog::Recordings,
    camera: &str,
    name: &str,
    q: &HashMap<String, String>,
    token: Option<String>,
    clips_only: bool,
    init_of: &dyn Fn(&crate::index::SegmentRow) -> Option<crate::mp4::InitInfo>,
) -> Result<Response, ApiError> {
    if name == "availableMedia" {
        let ranges = available_media(
            cat,
            camera,
            q.get("precision").map(String::as_str),
            q.get("startTime").map(String::as_str),
            q.get("endTime").map(String::as_str),
            clips_only,
        )?;
        let body = serde_json::json!({ "timeRanges": ranges }).to_string();
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let Some(req) = parse_manifest_name(name)? else {
        return Err(ApiError::not_found(
            "NotFound",
            "use availableMedia, manifest(format=m3u8-aapl...).m3u8 or manifest(format=mpd-time-cmaf...).mpd",
        ));
    };
    let sel = select(cat, camera, &req, clips_only)?;
    let urls = MediaUrls { token };
    let with_audio = sel
        .periods
        .iter()
        .any(|p| p.segments.iter().any(|s| s.audio_codec.is_some()));
    let (body, ctype) = match req.format {
        // A camera with audio: a multivariant playlist whose one variant names both codecs
        // (RFC 8216 section 4.3.4.2), pointing at this same URL with `variant=media`.
        Format::Hls if with_audio && q.get("variant").map(String::as_str) != Some("media") => {
            let inits: Vec<_> = sel
                .periods
                .iter()
                .filter_map(|p| init_of(&p.segments[0]))
                .collect();
            // "./": the name holds colons (times), so without it a client could take its start
            // for a URI scheme (RFC 3986 section 4.2).
            let media = match &urls.token {
                Some(t) => format!("./{name}?variant=media&token={}", hls::percent_encode(t)),
                None => format!("./{name}?variant=media"),
            };
            (
                hls::multivariant(&sel, &inits, &media),
                "application/vnd.apple.mpegurl",
            )
        }
        Format::Hls => (hls::render(&sel, &urls), "application/vnd.apple.mpegurl"),
        Format::Dash => {
            let inits: Vec<_> = sel
                .periods
                .iter()
                .map(|p| init_of(&p.segments[0]))
                .collect();
            (
                dash::render(&sel, &urls, &inits, now_utc_ns()),
                "application/dash+xml",
            )
        }
    };
    let cache = if sel.live {
        "no-cache"
    } else {
        "private, max-age=10"
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

/// Reads a segment's init segment and describes its codec; `None` if unreadable.
fn read_init(root: &Path, seg: &crate::index::SegmentRow) -> Option<crate::mp4::InitInfo> {
    use std::io::Read;
    let path = safe_join(root, &seg.path)?;
    let mut buf = vec![0u8; usize::try_from(seg.init_size_bytes).ok()?.min(1 << 20)];
    std::fs::File::open(path).ok()?.read_exact(&mut buf).ok()?;
    crate::mp4::init_info(&buf)
}

use crate::store::layout::safe_join;

/// `GET /api/cameras`: every configured camera (and any other with media on the card), with
/// its state, and the uplink's (`null` without an uploader). Fields: docs/playback.md, "Routes".
async fn cameras(State(st): State<Shared>) -> Response {
    let r = blocking(move || {
        let totals = st.catalog.totals()?;
        let open_clips = st.catalog.open_clips()?;
        let upload = st.upload.get().map(|u| u.snapshot());
        let backlog = if upload.is_some() {
            Some(st.catalog.upload_backlog_by_camera()?)
        } else {
            None
        };
        let mut ids: Vec<String> = st.cameras.iter().map(|c| c.id.clone()).collect();
        for (c, _, _) in &totals {
            if !ids.contains(c) {
                ids.push(c.clone());
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let entry = st.cameras.iter().find(|c| c.id == id);
            let status = entry.and_then(|c| c.status.as_ref());
            let bounds = st.catalog.bounds(&id)?;
            let (segments, bytes) = totals
                .iter()
                .find(|t| t.0 == id)
                .map_or((0, 0), |t| (t.1, t.2));
            let evr = entry.is_some_and(|c| c.mode == crate::config::Mode::Evr);
            let open_clip = open_clips.iter().find(|c| c.camera == id);
            let camera_backlog = backlog.as_ref().map(|b| {
                let (n, bytes) = b.iter().find(|x| x.0 == id).map_or((0, 0), |x| (x.1, x.2));
                serde_json::json!({ "segments": n, "bytes": bytes })
            });
            out.push(serde_json::json!({
                "id": id,
                "configured": entry.is_some(),
                "mode": if evr { "evr" } else { "cvr" },
                "source": entry.and_then(|c| c.source).map(|s| s.as_str()),
                "audioCodec": status.and_then(|s| s.audio_codec.lock().unwrap().clone()),
                "recording": status.is_some_and(|s| s.recording.load(Ordering::Relaxed))
                    || st.catalog.open_segment(&id).is_some(),
                "connected": status.is_some_and(|s| s.connected.load(Ordering::Relaxed)),
                "reconnects": status.map_or(0, |s| s.reconnects.load(Ordering::Relaxed)),
                "clipOpen": open_clip.is_some(),
                "openClipId": open_clip.map(|c| c.id),
                "firstMediaTime": bounds.map(|b| format_full(b.0)),
                "lastMediaTime": bounds.map(|b| format_full(b.1)),
                "segments": segments,
                "bytesHeld": bytes,
                "uploadBacklog": camera_backlog,
            }));
        }
        let uplink = upload.map(|u| {
            serde_json::json!({
                "state": u.state,
                "backlogSegments": u.backlog_segments,
                "backlogBytes": u.backlog_bytes,
                "oldestPending": u.oldest_pending_utc_ns.map(format_full),
                "lastUpload": u.last_success_utc_ns.map(format_full),
                "lastError": u.last_error.map(|e| e.1),
            })
        });
        Ok(serde_json::json!({ "cameras": out, "uplink": uplink }).to_string())
    })
    .await;
    match r {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Most events one `/api/events` answer lists.
pub const MAX_EVENTS: usize = 10_000;

/// `GET /api/events?camera=..&startTime=..&endTime=..`: the camera's event markers in the range
/// (ISO 8601 UTC, at most 25 hours apart, as availableMedia's full precision), by time.
async fn events(State(st): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = blocking(move || {
        let camera = q.get("camera").ok_or_else(|| {
            ApiError::bad("MissingCamera", "the camera query parameter is required")
        })?;
        let (Some(s), Some(e)) = (q.get("startTime"), q.get("endTime")) else {
            return Err(ApiError::bad(
                "MissingTimeRange",
                "startTime and endTime are required (ISO 8601 date-times in UTC)",
            ));
        };
        let s = crate::playback::time::parse_datetime(s)
            .map_err(|m| ApiError::bad("InvalidTimeFormat", format!("startTime: {m}")))?;
        let e = crate::playback::time::parse_datetime(e)
            .map_err(|m| ApiError::bad("InvalidTimeFormat", format!("endTime: {m}")))?;
        if s > e || e - s > crate::playback::available::MAX_FULL_NS {
            return Err(ApiError::bad(
                "InvalidTimeRange",
                "startTime must not be after endTime, and they may be at most 25 hours apart",
            ));
        }
        if !st.cameras.iter().any(|c| &c.id == camera) {
            return Err(ApiError::not_found(
                "UnknownCamera",
                format!("no camera {camera:?}"),
            ));
        }
        let rows = st.catalog.events(camera, s, e, MAX_EVENTS)?;
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "label": r.label,
                    "time": format_full(r.time_utc_ns),
                    "duration": r.duration_ns.map(crate::playback::dash::iso_duration),
                    "received": format_full(r.received_utc_ns),
                    "objects": r.objects,
                })
            })
            .collect();
        Ok(serde_json::json!({ "camera": camera, "events": list }).to_string())
    })
    .await;
    match r {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics_route(State(st): State<Shared>) -> Response {
    let r = blocking(move || Ok(metrics::render(&st, &st.catalog.totals()?))).await;
    match r {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Binds `addr` now (so that a port in use is an error at startup, not later) and serves on a
/// thread of its own until `stop` becomes true. Returns the bound address and the thread.
pub fn spawn(
    addr: SocketAddr,
    state: AppState,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("http")
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let bound = listener.local_addr()?;
    let app = router(Arc::new(state));
    let jh = std::thread::Builder::new()
        .name("http-server".into())
        .spawn(move || {
            rt.block_on(async move {
                let shutdown = async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    warn!("HTTP server: {e}");
                }
            });
            rt.shutdown_timeout(Duration::from_secs(2));
            info!("HTTP server stopped");
        })?;
    Ok((bound, jh))
}
