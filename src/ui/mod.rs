//! The browser page (cargo feature `ui`): `GET /` and its files under `/ui/`, embedded in the
//! binary. The page (`index.html`, `app.js`, `app.css`; no build step, no framework) uses the
//! recorder's own HTTP API (`/api/cameras`, availableMedia, `/api/events`, clips, HLS
//! manifests, MP4 export) and plays with hls.js (`vendor/hls.light.min.js`, see
//! `vendor/README.md` for its version and licence).
//!
//! These files hold no data and no secret, so they are served without a token; every API call
//! the page makes needs one when the recorder has a token file (the page asks for it once and
//! keeps it in the tab's session storage). A content security policy lets the page load only
//! from this origin (hls.js needs `blob:` for its worker and media source).
//!
//! Not here: what the API answers (`crate::http`).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page.
const INDEX_HTML: &str = include_str!("index.html");
/// Its script.
const APP_JS: &str = include_str!("app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("app.css");
/// hls.js 1.7.4, light build, as npm ships it (`vendor/README.md`).
const HLS_JS: &str = include_str!("vendor/hls.light.min.js");

/// Bytes of the embedded files (what the page adds to the binary).
pub const EMBEDDED_BYTES: usize = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len() + HLS_JS.len();

/// Content security policy of the page: this origin only; hls.js's worker and media source
/// use `blob:` URLs.
const CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self' blob:; \
                   media-src 'self' blob:; connect-src 'self'; style-src 'self'; \
                   img-src 'self' data:; frame-ancestors 'none'";

fn asset(body: &'static str, mime: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// The routes: `/`, `/ui/app.js`, `/ui/app.css`, `/ui/hls.light.min.js`, and
/// `/ui/config.json` (`{"version": "0.3.0", "tokenRequired": bool}`: whether the API wants a
/// token, so the page asks for one before its first call instead of after a 401). The page and
/// its own files are revalidated on every load (`no-cache`: an upgrade shows at once); hls.js,
/// whose name does not change with its version, for a day.
pub fn router<S: Clone + Send + Sync + 'static>(token_required: bool) -> Router<S> {
    let config: &'static str = Box::leak(
        serde_json::json!({
            "version": crate::long_version(),
            "tokenRequired": token_required,
        })
        .to_string()
        .into_boxed_str(),
    );
    Router::new()
        .route(
            "/ui/config.json",
            get(move || async move { asset(config, "application/json", "no-cache") }),
        )
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8", "no-cache") }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8", "no-cache") }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8", "no-cache") }),
        )
        .route(
            "/ui/hls.light.min.js",
            get(|| async {
                asset(
                    HLS_JS,
                    "text/javascript; charset=utf-8",
                    "public, max-age=86400",
                )
            }),
        )
}
