//! The cloud side (cargo feature `cloud`; docs/cloud.md): `edgerec serve` plays what a fleet
//! of gateways uploaded, straight from the object store, with the gateway's own playback API
//! under `/{device}/{camera}/`. The store is the only source of truth; every server over it
//! gives the same answers, and a restart loses nothing but warm caches.
//!
//! - [`keys`]: what an object name in the layout is; media ids.
//! - [`catalog`]: a camera's recordings from listings, hour index objects and (for segments no
//!   index lists) the objects themselves, as [`crate::playback::catalog::Recordings`].
//! - [`cache`]: the bounded in-memory cache.
//! - [`serve`]: the HTTP routes.
//! - [`reindex`]: `edgerec cloud-index`, index objects for segments none lists (older uploads).
//!
//! The layout is written by the gateway's uploader ([`crate::upload::target`],
//! [`crate::upload::hour_index`]); the settings are [`crate::config::cloud`].

pub mod cache;
pub mod catalog;
pub mod keys;
pub mod reindex;
pub mod serve;

pub use serve::run;

/// Whether `s` can be a device folder: 1 to 64 of `[A-Za-z0-9._-]`, not `.` or `..` (the
/// gateway's `device_id` rule).
pub fn valid_device_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}
