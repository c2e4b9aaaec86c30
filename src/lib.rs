//! edgerec: a video recorder for ARM edge gateways.
//!
//! RTSP cameras are recorded continuously into self-contained fragmented-MP4 segment files on the
//! card, indexed in SQLite, kept under a size limit by evicting the oldest media first
//! (`../shared/DESIGN.md`; the seeds `000_*` to `004_*` define the semantics).
//!
//! Modules: [`backoff`] (retry delays with jitter), [`clock`] (wall and monotonic clocks, simulated in tests), [`config`] (the TOML file and its rules), [`duration`] (ISO 8601 durations), [`evr`] (event-based recording: the signal gate and clips), [`events`] (event intake shared by MQTT and HTTP), [`mp4`]
//! (reading our own segment files), [`index`] (SQLite schema and queries), [`store`] (files and
//! index together: writer, recovery, fsck), [`ingest`] (GStreamer pipelines), [`logging`] (journal priorities), [`motion`] (motion detection: an EVR trigger), [`recorder`] (wiring
//! for `edgerec run`), [`playback`] (availableMedia, manifest filters, HLS and DASH), [`http`]
//! (the playback and status server), [`mqtt`] (control and status over MQTT), [`control`]
//! (persisted recording switches), [`upload`] (segments to object storage, oldest first).

#![warn(missing_docs)]

pub mod backoff;
pub mod clock;
pub mod config;
pub mod control;
pub mod duration;
pub mod events;
pub mod evr;
pub mod http;
pub mod index;
pub mod ingest;
pub mod logging;
pub mod motion;
pub mod mp4;
pub mod mqtt;
pub mod playback;
pub mod recorder;
pub mod store;
pub mod upload;
