//! The uploader's status as operators see it (`/metrics`, MQTT state): compiled in every build,
//! also one without the `upload` cargo feature, so the HTTP and MQTT code need no feature gates.
//! The uploader itself is in `worker.rs`.

use std::sync::Mutex;

/// Uplink state as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Uplink {
    /// No upload tried yet.
    Unknown,
    /// The last upload succeeded.
    Online,
    /// The last upload failed.
    Offline,
}

/// What the uploader reports (`/metrics`, MQTT `state.uplink`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// Uplink state.
    pub state: Uplink,
    /// Complete segments not uploaded yet, and their bytes.
    pub backlog_segments: u64,
    /// Bytes of those.
    pub backlog_bytes: u64,
    /// Start (UTC ns) of the oldest segment waiting for upload.
    pub oldest_pending_utc_ns: Option<i64>,
    /// When the last upload succeeded (UTC ns).
    pub last_success_utc_ns: Option<i64>,
    /// The last failure, with its time (UTC ns); never contains credentials.
    pub last_error: Option<(i64, String)>,
    /// Segments and bytes uploaded since start.
    pub uploaded_segments: u64,
    /// Bytes uploaded since start.
    pub uploaded_bytes: u64,
    /// Failed attempts since start.
    pub failures: u64,
    /// Index objects written since start (docs/cloud.md): at most one per ten segments.
    pub index_objects: u64,
}

impl Default for UploadStatus {
    fn default() -> Self {
        UploadStatus {
            state: Uplink::Unknown,
            backlog_segments: 0,
            backlog_bytes: 0,
            oldest_pending_utc_ns: None,
            last_success_utc_ns: None,
            last_error: None,
            uploaded_segments: 0,
            uploaded_bytes: 0,
            failures: 0,
            index_objects: 0,
        }
    }
}

/// Shared, always-current upload status.
#[derive(Debug, Default)]
pub struct UploadShared {
    status: Mutex<UploadStatus>,
}

impl UploadShared {
    /// A copy of the current status.
    pub fn snapshot(&self) -> UploadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    #[cfg_attr(not(feature = "upload"), allow(dead_code))]
    pub(crate) fn update(&self, f: impl FnOnce(&mut UploadStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
