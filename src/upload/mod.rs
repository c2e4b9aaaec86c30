//! The uploader (seed `000_*` "resilient recording"; DESIGN section 5): complete segments go to
//! object storage oldest first across cameras, one object per segment, while the uplink works.
//!
//! One thread with its own single-threaded tokio runtime for `object_store`. It reads the index
//! through its own read-only connection and reports uploads to the storage writer
//! (`WriterMsg::Uploaded`), the index's only writer; recording never waits on it. A failed
//! upload stops the pass: the next one starts again from the oldest segment still on the card
//! (eviction may have taken some meanwhile: those are counted by the writer and reported as
//! `MediaEvicted` with `uploaded: false`). Retryable failures wait 1 s to 5 min with jitter;
//! authentication, permission and missing-bucket failures are logged as errors and retried every
//! 5 min. Uploading a segment again after a crash writes the same object again: harmless.
//! Store details are in `target.rs`.
//!
//! Files: `status.rs` (what operators see; in every build), `worker.rs` (the upload loop),
//! `target.rs` (stores and keys), `clips.rs` (EVR clip pieces), `hour_index.rs` (the index
//! objects the cloud side reads, docs/cloud.md). Without the `upload` cargo feature
//! only the status types are built and `[upload]` in the config is refused.

#[cfg(feature = "upload")]
pub mod clips;
#[cfg(feature = "upload")]
pub mod hour_index;
mod status;
#[cfg(feature = "upload")]
pub mod target;
#[cfg(feature = "upload")]
mod worker;

pub use status::{Uplink, UploadShared, UploadStatus};
#[cfg(feature = "upload")]
pub use worker::spawn;
