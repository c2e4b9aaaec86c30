//! Index changes that are not about writing media but go through the storage writer because it
//! owns the one index connection that writes (DESIGN section 3): event markers and upload
//! confirmations. Each is one small transaction; none touches a file.

use tracing::warn;

use super::Store;
use crate::index::{EventInsert, EventRow};

/// Stores an event marker. Errors come back as text for the sender's reply (MQTT, HTTP).
pub fn add_event(store: &mut Store, event: &EventRow) -> Result<EventInsert, String> {
    store.index().insert_event(event).map_err(|e| e.to_string())
}

/// Records that the uploader stored segment `id` at `at_utc_ns` (UTC ns); a failure is logged
/// (the segment is uploaded again later, which the object store tolerates: same key, same bytes).
pub fn record_upload(store: &mut Store, id: i64, at_utc_ns: i64) {
    if let Err(e) = store.index().set_uploaded(id, at_utc_ns) {
        warn!(segment = id, "cannot record the upload: {e}");
    }
}

/// Records that the uploader stored the description object of clip `id` at `at_utc_ns` (UTC
/// ns); a failure is logged (the description is uploaded again later: same key, same bytes).
pub fn record_clip_upload(store: &mut Store, id: i64, at_utc_ns: i64) {
    if let Err(e) = store.index().set_clip_uploaded(id, at_utc_ns) {
        warn!(clip = id, "cannot record the clip description upload: {e}");
    }
}
