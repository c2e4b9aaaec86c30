//! The HTTP server of `edgerec serve` (docs/cloud.md): the gateway's playback API, per device.
//!
//! Routes:
//! - `/{device}/{camera}/content.ism/availableMedia?..`, `manifest(..).m3u8`, `manifest(..).mpd`:
//!   [`crate::http::render_content`], the gateway's own code, over [`CameraView`];
//! - `/{device}/{camera}/content.ism/export.mp4?startTime=..&endTime=..`: MP4 export
//!   ([`crate::export`] over the objects);
//! - `/{device}/{camera}/content.ism/media/{id}.mp4`: the segment object on the camera's media
//!   timeline ([`crate::store::timebase::PlaybackView`] over ranged GETs), with `Range`, `ETag`
//!   and `?track=` as on the gateway;
//! - `/api/devices`, `/api/devices/{device}/cameras`, `/api/devices/{d}/cameras/{c}/clips`;
//! - `/healthz` (no token), `/metrics`.
//!
//! Access tokens work as on the gateway ([`crate::http::token_gate`]). Errors are JSON
//! `{"error":{"code":..,"message":..}}`. Store reads run on blocking threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use object_store::ObjectStoreExt;
use tracing::{info, warn};

use super::catalog::{CameraView, CloudStore};
use super::keys::{self, Entry};
use crate::config::cloud::CloudConfig;
use crate::config::valid_camera_id;
use crate::http::auth::Tokens;
use crate::http::{blocking, render_content, token_gate, CarryToken};
use crate::playback::catalog::Recordings;
use crate::playback::time::{format_full, Unit};
use crate::playback::ApiError;
use crate::upload::hour_index::day_folder;

/// Most clips one `clips` answer lists.
const MAX_CLIPS: usize = 1000;

/// What the handlers share.
pub struct CloudState {
    /// The store and its caches.
    pub store: CloudStore,
    /// Access tokens; `None`: none needed (loopback without a token file).
    pub tokens: Option<Tokens>,
    /// `http.max_export`: the longest range of one MP4 export.
    pub max_export: Duration,
    /// Requests answered, by route kind.
    requests: [AtomicU64; 5],
}

type Shared = Arc<CloudState>;

/// Request kinds counted in `/metrics`.
const KINDS: [&str; 5] = ["api", "available_media", "manifest", "media", "export"];

impl CloudState {
    /// A state over `store`.
    pub fn new(store: CloudStore, tokens: Option<Tokens>) -> Self {
        CloudState {
            store,
            tokens,
            max_export: crate::config::DEFAULT_MAX_EXPORT,
            requests: Default::default(),
        }
    }

    fn count(&self, kind: usize) {
        self.requests[kind].fetch_add(1, Ordering::Relaxed);
    }
}

/// Builds the router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/devices", get(devices))
        .route("/api/devices/{device}/cameras", get(cameras))
        .route("/api/devices/{device}/cameras/{camera}/clips", get(clips))
        .route("/metrics", get(metrics))
        .route("/{device}/{camera}/content.ism/export.mp4", get(export))
        .route("/{device}/{camera}/content.ism/{name}", get(content))
        .route("/{device}/{camera}/content.ism/media/{file}", get(media))
        .fallback(|| async { ApiError::not_found("NotFound", "no such route") })
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .layer(tower_http::cors::CorsLayer::permissive())
        .with_state(state)
}

async fn require_token(State(st): State<Shared>, req: Request, next: Next) -> Response {
    token_gate(st.tokens.as_ref(), req, next).await
}

/// Checks the ids, and that the device has the camera.
fn check(st: &CloudState, device: &str, camera: &str) -> Result<(), ApiError> {
    check_device(device)?;
    if !valid_camera_id(camera) {
        return Err(ApiError::bad(
            "InvalidCameraId",
            "camera ids match [a-z0-9][a-z0-9_-]{0,63}",
        ));
    }
    if st.store.cameras(device)?.iter().any(|c| c == camera) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "UnknownCamera",
            format!("device {device:?} has uploaded nothing for camera {camera:?}"),
        ))
    }
}

fn check_device(device: &str) -> Result<(), ApiError> {
    if super::valid_device_id(device) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "InvalidDeviceId",
            "device ids are 1 to 64 of [A-Za-z0-9._-]",
        ))
    }
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn devices(State(st): State<Shared>) -> Response {
    st.count(0);
    let r = blocking(move || {
        let devices: Vec<_> = st
            .store
            .devices()?
            .into_iter()
            .map(|d| serde_json::json!({ "id": d }))
            .collect();
        Ok(json(serde_json::json!({ "devices": devices })))
    })
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn cameras(State(st): State<Shared>, UrlPath(device): UrlPath<String>) -> Response {
    st.count(0);
    let r = blocking(move || {
        check_device(&device)?;
        let mut out = Vec::new();
        for c in st.store.cameras(&device)? {
            let view = st.store.camera(&device, &c);
            let bounds = view.bounds(&c)?;
            let (objects, bytes) = st.store.stored(&device, &c)?;
            out.push(serde_json::json!({
                "id": c,
                "firstMediaTime": bounds.map(|b| format_full(b.0)),
                "lastMediaTime": bounds.map(|b| format_full(b.1)),
                "objects": objects,
                "bytesStored": bytes,
            }));
        }
        if out.is_empty() && !st.store.devices()?.contains(&device) {
            return Err(ApiError::not_found(
                "UnknownDevice",
                format!("no device {device:?} in the store"),
            ));
        }
        Ok(json(serde_json::json!({ "cameras": out })))
    })
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `clips?startTime=..&endTime=..` (at most 25 hours apart): the clip description objects an EVR
/// gateway uploaded (docs/evr.md "Upload") whose requested start lies in the range, by start.
async fn clips(
    State(st): State<Shared>,
    UrlPath((device, camera)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    st.count(0);
    let r = blocking(move || {
        let (s, e) = crate::http::clips::clip_range(&q)?;
        check(&st, &device, &camera)?;
        let mut found = Vec::new();
        for day in Unit::Day.of(s)..=Unit::Day.of(e) {
            // The day folder as the gateway's uploader names it (clip objects sit beside the
            // segments), without its trailing `/`.
            let rel = day_folder(&device, &camera, Unit::Day.start_ns(day));
            let folder = st.store.folder(rel.trim_end_matches('/'));
            for m in &st.store.listing(&folder)?.objects {
                if let Some(Entry::Clip { start, .. }) = m.location.filename().and_then(keys::parse)
                {
                    if (s..=e).contains(&start) {
                        found.push((start, m.location.clone()));
                    }
                }
            }
        }
        found.sort();
        found.truncate(MAX_CLIPS);
        let mut out = Vec::with_capacity(found.len());
        for (_, loc) in found {
            let bytes = st.store.get_small(&loc)?;
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => out.push(v),
                Err(err) => warn!(key = %loc, "clip description unreadable: {err}"),
            }
        }
        Ok(json(serde_json::json!({ "clips": out })))
    })
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn content(
    State(st): State<Shared>,
    UrlPath((device, camera, name)): UrlPath<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    st.count(if name == "availableMedia" { 1 } else { 2 });
    let carry = req
        .extensions()
        .get::<CarryToken>()
        .cloned()
        .unwrap_or(CarryToken(None));
    let r = blocking(move || {
        check(&st, &device, &camera)?;
        let view = st.store.camera(&device, &camera);
        let init_of = |s: &crate::index::SegmentRow| {
            let b = st
                .store
                .init_bytes(&s.path, s.init_size_bytes.max(0) as u64)?;
            crate::mp4::init_info(&b)
        };
        render_content(&view, &camera, &name, &q, carry.0, false, &init_of)
    })
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn media(
    State(st): State<Shared>,
    UrlPath((device, camera, file)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    st.count(3);
    let id = file
        .strip_suffix(".mp4")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| keys::of_media_id(*id).is_some());
    let Some(id) = id else {
        return ApiError::bad("InvalidSegment", "media URLs are media/<media id>.mp4")
            .into_response();
    };
    let opened = blocking(move || {
        check(&st, &device, &camera)?;
        let gone = || {
            ApiError::not_found(
                "SegmentGone",
                "no such segment object: it was deleted or never uploaded; reload the manifest",
            )
        };
        let view: CameraView<'_> = st.store.camera(&device, &camera);
        let row = view.segment(id)?.ok_or_else(gone)?;
        let pv = st.store.view(&row).map_err(|_| gone())?;
        Ok((row, pv))
    })
    .await;
    let (row, view) = match opened {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    // Objects do not change: a day in a private cache.
    crate::http::media::serve_segment(row, view, "private, max-age=86400", req).await
}

/// `export.mp4?startTime=..&endTime=..`: the range as one MP4 file, built by
/// [`crate::export`] over the uploaded objects (ranged GETs), with the gateway's rules and
/// headers.
async fn export(
    State(st): State<Shared>,
    UrlPath((device, camera)): UrlPath<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    st.count(4);
    let cam = camera.clone();
    let planned = blocking(move || {
        check(&st, &device, &camera)?;
        let (start, end) = crate::http::export::export_range(&q, st.max_export)?;
        let view = st.store.camera(&device, &camera);
        let segs = view.segments(&camera, start, end)?;
        let open = |seg: &crate::index::SegmentRow| {
            Ok(st.store.reader(&seg.path, seg.size_bytes.max(0) as u64)
                as Arc<dyn crate::store::timebase::ReadAt>)
        };
        crate::export::open_windows_with(&segs, &[(start, end)], &open)
            .map_err(crate::http::export::export_error)
    })
    .await;
    match planned {
        Ok(x) => crate::http::export::respond(&cam, Arc::new(x), req.method(), req.headers()),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(st): State<Shared>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str("# HELP edgerec_cloud_requests_total Requests answered by kind.\n# TYPE edgerec_cloud_requests_total counter\n");
    for (i, k) in KINDS.iter().enumerate() {
        let _ = writeln!(
            out,
            "edgerec_cloud_requests_total{{kind=\"{k}\"}} {}",
            st.requests[i].load(Ordering::Relaxed)
        );
    }
    let c = &st.store.counters;
    out.push_str("# HELP edgerec_cloud_store_requests_total Requests made to the object store by kind.\n# TYPE edgerec_cloud_store_requests_total counter\n");
    for (k, v) in [
        ("list", &c.lists),
        ("get", &c.gets),
        ("range_get", &c.range_gets),
    ] {
        let _ = writeln!(
            out,
            "edgerec_cloud_store_requests_total{{kind=\"{k}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let (n, b) = st.store.cache_usage();
    let _ = write!(
        out,
        "# HELP edgerec_cloud_cache_entries Entries in the in-memory caches.\n# TYPE edgerec_cloud_cache_entries gauge\nedgerec_cloud_cache_entries {n}\n\
         # HELP edgerec_cloud_cache_bytes Bytes the in-memory caches account for.\n# TYPE edgerec_cloud_cache_bytes gauge\nedgerec_cloud_cache_bytes {b}\n"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// `edgerec serve`: opens the store, binds `[http] listen` and serves until SIGTERM or SIGINT.
///
/// Errors: the store settings are rejected, the token file cannot be read, the address cannot
/// be bound.
pub fn run(cfg: CloudConfig) -> anyhow::Result<()> {
    let Some(addr) = cfg.http.listen else {
        anyhow::bail!("config key `http.listen`: `off` leaves `edgerec serve` nothing to do");
    };
    let tokens = cfg
        .http
        .token_file
        .as_deref()
        .map(Tokens::load)
        .transpose()?;
    let store = crate::upload::target::build(&cfg.store)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("serve")
        .enable_all()
        .build()?;
    let cloud = CloudStore::new(
        store,
        &cfg.store.prefix,
        rt.handle().clone(),
        cfg.listing_ttl,
        cfg.cache_bytes,
    );
    let mut state = CloudState::new(cloud, tokens);
    state.max_export = cfg.http.max_export;
    let state = Arc::new(state);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let bound = listener.local_addr()?;
    info!(%bound, store = ?cfg.store.target, prefix = %cfg.store.prefix, "edgerec serve listening");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    rt.block_on(async move {
        let shutdown = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    info!("edgerec serve stopped");
    Ok(())
}

impl CloudStore {
    /// A small object's bytes (a clip description).
    pub fn get_small(&self, loc: &object_store::path::Path) -> Result<Vec<u8>, ApiError> {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.runtime()
            .block_on(async { self.object_store().get(loc).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| ApiError {
                status: 502,
                code: "StoreUnavailable",
                message: format!("the object store could not be read: {e}"),
            })
    }
}
