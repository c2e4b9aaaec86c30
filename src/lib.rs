//! edgerec: a video recorder for ARM edge gateways.
//!
//! RTSP cameras are recorded continuously into self-contained fragmented-MP4 segment files on the
//! card, indexed in SQLite, kept under a size limit by evicting the oldest media first
//! (`../shared/DESIGN.md`; the seeds `000_*` to `004_*` define the semantics).
//!
//! Modules: [`backoff`] (retry delays with jitter), [`clock`] (wall and monotonic clocks, simulated in tests), [`config`] (the TOML file and its rules), [`duration`] (ISO 8601 durations), [`evr`] (event-based recording: the signal gate and clips), [`events`] (event intake shared by MQTT and HTTP), [`export`] (a time range as one ordinary MP4), [`mp4`]
//! (reading our own segment files), [`index`] (SQLite schema and queries), [`store`] (files and
//! index together: writer, recovery, fsck), [`ingest`] (GStreamer pipelines), [`logging`] (journal priorities), [`motion`] (motion detection: an EVR trigger), [`recorder`] (wiring
//! for `edgerec run`), [`playback`] (availableMedia, manifest filters, HLS and DASH), [`probe`] (`edgerec probe`: what a camera sends), [`http`]
//! (the playback and status server), [`mqtt`] (control and status over MQTT), [`control`]
//! (persisted recording switches), [`upload`] (segments to object storage, oldest first).

#![warn(missing_docs)]

/// The optional parts compiled into this build, comma-separated in Cargo.toml's order (`upload`,
/// `mqtt`; empty for a record-only build). Shown by `edgerec --version` and in `/metrics`
/// (`edgerec_build_info{features}`).
pub const FEATURES: &str = if cfg!(all(feature = "upload", feature = "mqtt")) {
    "upload,mqtt"
} else if cfg!(feature = "upload") {
    "upload"
} else if cfg!(feature = "mqtt") {
    "mqtt"
} else {
    ""
};

/// `edgerec --version`: the package version and [`FEATURES`], e.g. `0.1.0 (upload,mqtt)`.
pub const LONG_VERSION: &str = if cfg!(all(feature = "upload", feature = "mqtt")) {
    concat!(env!("CARGO_PKG_VERSION"), " (upload,mqtt)")
} else if cfg!(feature = "upload") {
    concat!(env!("CARGO_PKG_VERSION"), " (upload)")
} else if cfg!(feature = "mqtt") {
    concat!(env!("CARGO_PKG_VERSION"), " (mqtt)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (record only)")
};

pub mod backoff;
pub mod clock;
pub mod config;
pub mod control;
pub mod duration;
pub mod events;
pub mod evr;
pub mod export;
pub mod http;
pub mod index;
pub mod ingest;
pub mod logging;
pub mod motion;
pub mod mp4;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod playback;
pub mod probe;
pub mod recorder;
pub mod store;
pub mod upload;
