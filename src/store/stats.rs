//! Counters and the eviction log of the storage writer, read by status reporting (HTTP
//! `/metrics`, `/api/status`, MQTT state and `MediaEvicted` events, the systemd status line).
//!
//! The writer thread only increments; readers load. Nothing here decides what to write or evict.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use tracing::{debug, info};

use super::layout;
use crate::index::SegmentRow;

/// One eviction, as reported to operators (MQTT `MediaEvicted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionRecord {
    /// Sequence number, from 1, growing by one per record.
    pub seq: u64,
    /// Camera id.
    pub camera: String,
    /// Start of the evicted media, UTC ns.
    pub start_utc_ns: i64,
    /// End of the evicted media, UTC ns.
    pub end_utc_ns: i64,
    /// Allocated bytes freed.
    pub bytes: u64,
    /// Whether it had been uploaded.
    pub uploaded: bool,
}

/// How many recent records a [`SeqLog`] keeps (evictions, clip changes).
pub const EVICTION_LOG_LEN: usize = 1024;

/// Counters the writer keeps; read by status reporting.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Fragment bytes written to segment files.
    pub bytes_written: AtomicU64,
    /// Fragments written.
    pub fragments_written: AtomicU64,
    /// Segments closed.
    pub segments_closed: AtomicU64,
    /// Segments deleted to stay under the size limit or free-space floor.
    pub evicted_segments: AtomicU64,
    /// Allocated bytes freed by eviction.
    pub evicted_bytes: AtomicU64,
    /// Segments deleted by retention.
    pub expired_segments: AtomicU64,
    /// An EVR camera's transient segments deleted past the pre-roll horizon.
    pub transient_deleted_segments: AtomicU64,
    /// Fragments dropped (queue full or no space after eviction).
    pub dropped_fragments: AtomicU64,
    /// Storage errors other than a full disk.
    pub storage_errors: AtomicU64,
    /// Bytes in use: media (allocated) plus index, as last computed.
    pub used_bytes: AtomicU64,
    /// Increments on every loop turn that made progress; a watchdog compares it over time.
    pub heartbeat: AtomicU64,
    /// Eviction totals per camera id.
    pub evictions: Mutex<BTreeMap<String, EvictionTotals>>,
    /// The last [`EVICTION_LOG_LEN`] evictions.
    pub eviction_log: SeqLog<EvictionRecord>,
    /// The last [`EVICTION_LOG_LEN`] clip changes (EVR), for MQTT's operational events.
    pub clip_log: SeqLog<ClipNotice>,
    /// Clips opened (EVR and CVR cameras), per camera.
    pub clips_opened: Mutex<BTreeMap<String, u64>>,
    /// Seconds of media inside closed clips (requested start to end), per camera.
    pub clip_seconds: Mutex<BTreeMap<String, f64>>,
    /// Events the signal gate dropped as late, per camera.
    pub late_events_dropped: Mutex<BTreeMap<String, u64>>,
    /// Each camera's open clip (row id), if any: MQTT's retained `R/<camera>/clip`.
    pub open_clips: Mutex<BTreeMap<String, i64>>,
}

/// A log of the newest records, each with a sequence number that grows by one per record, so a
/// reader can ask for what it has not seen and learn how many it missed.
#[derive(Debug)]
pub struct SeqLog<T> {
    inner: Mutex<VecDeque<(u64, T)>>,
    capacity: usize,
}

impl<T> Default for SeqLog<T> {
    fn default() -> Self {
        SeqLog {
            inner: Mutex::new(VecDeque::new()),
            capacity: EVICTION_LOG_LEN,
        }
    }
}

impl<T: Clone> SeqLog<T> {
    /// Appends a record made from its sequence number (from 1); the oldest falls out when full.
    pub fn push_with(&self, make: impl FnOnce(u64) -> T) {
        let mut log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = log.back().map_or(1, |b| b.0 + 1);
        if log.len() == self.capacity {
            log.pop_front();
        }
        log.push_back((seq, make(seq)));
    }

    /// Records with a sequence number above `seq`, oldest first, and the number of records that
    /// fell out of the log before they could be read.
    pub fn since(&self, seq: u64) -> (Vec<T>, u64) {
        let log = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let lost = log.front().map_or(0, |f| f.0.saturating_sub(seq + 1));
        (
            log.iter()
                .filter(|r| r.0 > seq)
                .map(|r| r.1.clone())
                .collect(),
            lost,
        )
    }
}

/// What happened to a clip, for MQTT's LVA-shaped operational events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipChange {
    /// The clip opened (LVA `RecordingStarted`).
    Started,
    /// Its media from the requested start to the event is durable on the card (LVA
    /// `RecordingAvailable`).
    Available,
    /// It closed (LVA `RecordingStopped`).
    Stopped,
}

/// One clip change, with the clip as it was then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipNotice {
    /// Sequence number in [`WriterStats::clip_log`].
    pub seq: u64,
    /// What happened.
    pub change: ClipChange,
    /// Camera id.
    pub camera: String,
    /// The clip's row id.
    pub clip_id: i64,
    /// Requested start, UTC ns.
    pub start_utc_ns: i64,
    /// Requested end (so far), UTC ns.
    pub end_utc_ns: i64,
    /// Why it closed (`Stopped` only).
    pub close_reason: Option<&'static str>,
}

/// What eviction took from one camera since the process started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EvictionTotals {
    /// Segments evicted.
    pub segments: u64,
    /// Allocated bytes freed.
    pub bytes: u64,
    /// Segments evicted before they were uploaded (seed `000_*`: the cloud copy lacks them).
    pub unuploaded_segments: u64,
    /// Allocated bytes of those.
    pub unuploaded_bytes: u64,
    /// Media duration of those, ns.
    pub unuploaded_ns: u64,
}

impl WriterStats {
    /// Eviction totals of `camera` (zeros if nothing was evicted).
    pub fn evictions_of(&self, camera: &str) -> EvictionTotals {
        self.evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .copied()
            .unwrap_or_default()
    }

    /// Evictions with a sequence number above `seq`, oldest first, and the number of records
    /// that fell out of the log before they could be read.
    pub fn evictions_since(&self, seq: u64) -> (Vec<EvictionRecord>, u64) {
        self.eviction_log.since(seq)
    }

    /// Adds `n` to a per-camera counter.
    pub fn bump(map: &Mutex<BTreeMap<String, u64>>, camera: &str, n: u64) {
        *map.lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(camera.to_owned())
            .or_default() += n;
    }

    /// A per-camera counter (0 if never counted).
    pub fn get(map: &Mutex<BTreeMap<String, u64>>, camera: &str) -> u64 {
        map.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `camera` has an open clip.
    pub fn clip_open(&self, camera: &str) -> bool {
        self.open_clips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(camera)
    }

    /// Seconds kept in closed clips of `camera`.
    pub fn clip_seconds_of(&self, camera: &str) -> f64 {
        self.clip_seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .copied()
            .unwrap_or(0.0)
    }

    /// Records evicted segments: the log, the per-camera totals, and a log line per segment
    /// (`info` for media that was never uploaded, a loss for the cloud copy; `debug` otherwise).
    /// `why` names the floor that was hit (`size limit`, `free-space floor`, `disk full`).
    pub fn count_evictions(&self, victims: &[SegmentRow], why: &str) {
        for v in victims {
            self.count_eviction(v);
            let (s, e) = (layout::utc(v.start_utc_ns), layout::utc(v.end_utc_ns()));
            if v.uploaded_utc_ns.is_none() {
                info!(camera = %v.camera, from = %s, to = %e, bytes = v.alloc_bytes,
                      uploaded = false, "evicted ({why})");
            } else {
                debug!(camera = %v.camera, from = %s, to = %e, bytes = v.alloc_bytes,
                       uploaded = true, "evicted ({why})");
            }
        }
    }

    fn count_eviction(&self, v: &SegmentRow) {
        self.eviction_log.push_with(|seq| EvictionRecord {
            seq,
            camera: v.camera.clone(),
            start_utc_ns: v.start_utc_ns,
            end_utc_ns: v.end_utc_ns(),
            bytes: v.alloc_bytes.max(0) as u64,
            uploaded: v.uploaded_utc_ns.is_some(),
        });
        let mut m = self.evictions.lock().unwrap_or_else(|e| e.into_inner());
        let t = m.entry(v.camera.clone()).or_default();
        let bytes = v.alloc_bytes.max(0) as u64;
        t.segments += 1;
        t.bytes += bytes;
        if v.uploaded_utc_ns.is_none() {
            t.unuploaded_segments += 1;
            t.unuploaded_bytes += bytes;
            t.unuploaded_ns += v.duration_ns.max(0) as u64;
        }
    }
}
