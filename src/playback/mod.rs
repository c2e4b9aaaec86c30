//! Playback from the gateway (DESIGN section 6, seed `004_*`): what is recorded and how to play
//! it.
//!
//! - [`time`]: the query time formats (years, months, days, ISO 8601 date-times) and the output
//!   formats.
//! - [`catalog`]: reads segments for playback from the index (read-only connection) merged with
//!   the writer's open segments ([`crate::store::live`]).
//! - [`timeline`]: continuous spans and periods (the gap rule), fragments in a time range.
//! - [`available`]: the `availableMedia` query rules.
//! - [`kept`]: an EVR camera's clips, the only media its availableMedia and VoD manifests show.
//! - [`filter`]: the manifest `startTime`/`endTime` filter rules (live or VoD, 4 h and 24 h limits).
//! - [`hls`] and [`dash`]: manifest rendering (RFC 8216, ISO/IEC 23009-1).
//! - [`split`]: one track of a file with audio and video, cut out on the fly for DASH.
//!
//! HTTP (routes, access tokens, byte ranges) belongs to [`crate::http`]; nothing here does
//! network I/O.

pub mod available;
pub mod catalog;
pub mod dash;
pub mod filter;
pub mod hls;
pub mod kept;
pub mod split;
pub mod time;
pub mod timeline;

/// A playback request that cannot be answered: an HTTP status, a stable machine-readable code and
/// a message that names the rule (seed `004_*`: "an error message describing the maximum time
/// range allowed"). Rendered as `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status: 400 bad request, 404 no such camera or no media, 500 index error.
    pub status: u16,
    /// Machine-readable code, e.g. `InvalidTimeRange`.
    pub code: &'static str,
    /// Human-readable message naming the rule.
    pub message: String,
}

impl ApiError {
    /// A 400 with `code` and `message`.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            code,
            message: message.into(),
        }
    }

    /// A 404 with `code` and `message`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            code,
            message: message.into(),
        }
    }

    /// A 500 for an internal failure (the index could not be read).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            code: "InternalError",
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl From<crate::index::IndexError> for ApiError {
    fn from(e: crate::index::IndexError) -> Self {
        ApiError::internal(format!("index: {e}"))
    }
}
