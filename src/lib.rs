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

/// The optional parts compiled into this build, in Cargo.toml's order (`upload`, `mqtt`, `ui`;
/// empty for a record-only build). Shown by `edgerec --version` and in `/metrics`
/// (`edgerec_build_info{features}`).
pub const FEATURE_LIST: &[&str] = &[
    #[cfg(feature = "upload")]
    "upload",
    #[cfg(feature = "mqtt")]
    "mqtt",
    #[cfg(feature = "ui")]
    "ui",
];

/// [`FEATURE_LIST`] comma-separated, e.g. `upload,mqtt,ui`.
pub fn features() -> String {
    FEATURE_LIST.join(",")
}

/// `edgerec --version`: the package version and [`FEATURE_LIST`], e.g. `0.3.0 (upload,mqtt,ui)`,
/// or `0.3.0 (record only)`.
pub fn long_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let f = if FEATURE_LIST.is_empty() {
            "record only".to_owned()
        } else {
            features()
        };
        format!("{} ({f})", env!("CARGO_PKG_VERSION"))
    })
}

pub mod backoff;
pub mod clock;
#[cfg(feature = "cloud")]
pub mod cloud;
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
#[cfg(feature = "ui")]
pub mod ui;
pub mod upload;
