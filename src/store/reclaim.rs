//! Space accounting, eviction and retention (DESIGN section 5): what to delete, and when, so the
//! card stays under `storage.max_size_mib` and above `storage.min_free_mib`, and no camera keeps
//! media longer than its keep policy allows.
//!
//! The [`Reclaimer`] keeps the allocated bytes of complete segments in memory (read once from the
//! index at start), adds the open segments' bytes the writer reports, and deletes whole complete
//! segments through [`Store::delete_segments`] (the crash-safe delete order). It never touches an
//! open segment. Eviction takes segments in the index's eviction order (uploaded ones oldest
//! first, then the rest oldest first: seed `000_*`, "the oldest data is deleted first").
//!
//! Not here: writing segments ([`super::writer`]), when a segment rolls ([`super::segmenter`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::info;

use super::fsutil::{self, round_up};
use super::live::LiveSegments;
use super::stats::WriterStats;
use super::{Store, StoreError};
use crate::index::SegmentRow;

/// How long one camera's media is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// Delete complete segments that ended longer ago than this (`retention`, e.g. `P7D`);
    /// `None`: keep until evicted for space.
    pub retention: Option<Duration>,
    /// Clip media (segments a clip covers) is kept this long instead (`clip_retention`, at least
    /// `retention`); `None`: like other media. Without a `retention` nothing expires, clips
    /// included.
    pub clip_retention: Option<Duration>,
    /// EVR cameras: transient media (no clip covers it) is deleted once it ended longer ago than
    /// this pre-roll horizon (`-activation_signal_offset + activation_evaluation_window + one
    /// segment length`, DESIGN section 9). `None` for CVR cameras.
    pub transient_horizon: Option<Duration>,
}

/// Limits of the card.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The SQLite index file (its size, with its WAL, counts toward the limit).
    pub index_path: PathBuf,
    /// Limit for media (allocated bytes) plus index, bytes.
    pub max_size_bytes: u64,
    /// Free space to keep on the filesystem, bytes.
    pub min_free_bytes: u64,
}

/// Why media was deleted, for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Media plus index would pass `max_size_bytes`.
    SizeLimit,
    /// Free space would fall under `min_free_bytes`.
    FreeSpaceFloor,
    /// A write failed with `ENOSPC`.
    DiskFull,
    /// Older than the camera's retention.
    Retention,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::SizeLimit => "size limit",
            Cause::FreeSpaceFloor => "free-space floor",
            Cause::DiskFull => "disk full",
            Cause::Retention => "retention",
        }
    }
}

/// The writer's view of what the card holds and the rules for freeing it.
pub struct Reclaimer {
    limits: Limits,
    policies: HashMap<String, KeepPolicy>,
    complete_alloc: u64,
    block_size: u64,
}

impl Reclaimer {
    /// Reads the allocated bytes of every indexed segment and the filesystem's block size.
    ///
    /// Errors: the index cannot be read.
    pub fn new(
        store: &mut Store,
        limits: Limits,
        policies: HashMap<String, KeepPolicy>,
    ) -> Result<Reclaimer, StoreError> {
        let complete_alloc = store.index().total_alloc_bytes()?;
        let block_size = fsutil::fs_stats(store.root())
            .map(|s| s.block_size)
            .unwrap_or(4096);
        Ok(Reclaimer {
            limits,
            policies,
            complete_alloc,
            block_size,
        })
    }

    /// The filesystem block size, bytes (allocation unit for accounting).
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// `n` bytes rounded up to whole filesystem blocks.
    pub fn blocks(&self, n: u64) -> u64 {
        round_up(n, self.block_size)
    }

    /// A segment of `alloc_bytes` allocated bytes was committed complete.
    pub fn closed(&mut self, alloc_bytes: u64) {
        self.complete_alloc += alloc_bytes;
    }

    /// Media plus index bytes in use, with `open_alloc` bytes of open segments.
    pub fn used_bytes(&self, open_alloc: u64) -> u64 {
        self.complete_alloc + open_alloc + Store::index_bytes(&self.limits.index_path)
    }

    /// Evicts whole complete segments in eviction order until `n` more bytes fit under the size
    /// limit and above the free-space floor, with `open_alloc` bytes held by open segments.
    /// Returns false if the room cannot be made (nothing left but open segments, or an error,
    /// which is counted in `stats.storage_errors`).
    pub fn ensure_space(
        &mut self,
        store: &mut Store,
        live: &LiveSegments,
        stats: &WriterStats,
        n: u64,
        open_alloc: u64,
    ) -> bool {
        let n = self.blocks(n);
        loop {
            let used = self.used_bytes(open_alloc);
            stats.used_bytes.store(used, Ordering::Relaxed);
            let over = (used + n).saturating_sub(self.limits.max_size_bytes);
            let free = fsutil::fs_stats(store.root())
                .map(|s| s.free_bytes)
                .unwrap_or(u64::MAX);
            let short = (self.limits.min_free_bytes + n).saturating_sub(free);
            let need = over.max(short);
            if need == 0 {
                return true;
            }
            let cause = if over >= short {
                Cause::SizeLimit
            } else {
                Cause::FreeSpaceFloor
            };
            if !self.evict(store, live, stats, need, cause) {
                return false;
            }
        }
    }

    /// Deletes at least `need` allocated bytes of complete segments in eviction order. Returns
    /// false if there was nothing to delete or the deletion failed.
    pub fn evict(
        &mut self,
        store: &mut Store,
        live: &LiveSegments,
        stats: &WriterStats,
        need: u64,
        cause: Cause,
    ) -> bool {
        let candidates = match store.index().eviction_candidates(64) {
            Ok(c) => c,
            Err(e) => {
                storage_error(stats, "-", &e);
                return false;
            }
        };
        let mut victims = Vec::new();
        let mut freed = 0u64;
        for c in candidates {
            if freed >= need {
                break;
            }
            freed += c.alloc_bytes.max(1) as u64;
            victims.push(c);
        }
        if victims.is_empty() {
            return false;
        }
        match self.delete(store, live, &victims) {
            Ok(d) => {
                stats
                    .evicted_segments
                    .fetch_add(d.segments, Ordering::Relaxed);
                stats
                    .evicted_bytes
                    .fetch_add(d.alloc_bytes, Ordering::Relaxed);
                stats.count_evictions(&victims, cause.as_str());
                true
            }
            Err(e) => {
                storage_error(stats, "-", &e);
                false
            }
        }
    }

    /// The pre-roll ring: deletes every EVR camera's complete transient segments that ended
    /// longer than its pre-roll horizon before `now_utc_ns` (cheap: a partial index holds only
    /// transient rows, so the writer runs it every second).
    pub fn trim_preroll(
        &mut self,
        store: &mut Store,
        live: &LiveSegments,
        stats: &WriterStats,
        now_utc_ns: i64,
    ) {
        let mut rings: Vec<(String, Duration)> = self
            .policies
            .iter()
            .filter_map(|(c, p)| p.transient_horizon.map(|h| (c.clone(), h)))
            .collect();
        rings.sort();
        for (camera, h) in rings {
            self.delete_transient(
                store,
                live,
                stats,
                &camera,
                now_utc_ns - h.as_nanos() as i64,
            );
        }
    }

    /// Retention: deletes every complete segment that ended at least its camera's `retention`
    /// (clip media: `clip_retention`) before `now_utc_ns`.
    pub fn apply_retention(
        &mut self,
        store: &mut Store,
        live: &LiveSegments,
        stats: &WriterStats,
        now_utc_ns: i64,
    ) {
        let mut cameras: Vec<(String, KeepPolicy)> = self
            .policies
            .iter()
            .map(|(c, p)| (c.clone(), p.clone()))
            .collect();
        cameras.sort_by(|a, b| a.0.cmp(&b.0));
        for (camera, p) in cameras {
            // Without a retention everything is kept until eviction: clip media as well.
            let Some(retention) = p.retention else {
                continue;
            };
            let before = now_utc_ns - retention.as_nanos() as i64;
            let clip_before = p
                .clip_retention
                .map_or(before, |d| now_utc_ns - d.as_nanos() as i64);
            loop {
                let expired = match store.index().expired(&camera, before, clip_before, 256) {
                    Ok(v) if !v.is_empty() => v,
                    Ok(_) => break,
                    Err(e) => {
                        storage_error(stats, &camera, &e);
                        break;
                    }
                };
                match self.delete(store, live, &expired) {
                    Ok(d) => {
                        stats
                            .expired_segments
                            .fetch_add(d.segments, Ordering::Relaxed);
                        info!(
                            camera,
                            segments = d.segments,
                            retention = ?p.retention,
                            clip_retention = ?p.clip_retention,
                            "{} deleted old media",
                            Cause::Retention.as_str()
                        );
                    }
                    Err(e) => {
                        storage_error(stats, &camera, &e);
                        break;
                    }
                }
            }
        }
    }

    /// Deletes `camera`'s complete transient segments that ended at or before `before_utc_ns`.
    fn delete_transient(
        &mut self,
        store: &mut Store,
        live: &LiveSegments,
        stats: &WriterStats,
        camera: &str,
        before_utc_ns: i64,
    ) {
        loop {
            let old = match store.index().transient_expired(camera, before_utc_ns, 256) {
                Ok(v) if !v.is_empty() => v,
                Ok(_) => return,
                Err(e) => return storage_error(stats, camera, &e),
            };
            match self.delete(store, live, &old) {
                Ok(d) => {
                    stats
                        .transient_deleted_segments
                        .fetch_add(d.segments, Ordering::Relaxed);
                    tracing::debug!(
                        camera,
                        segments = d.segments,
                        "pre-roll ring: transient media deleted"
                    );
                }
                Err(e) => return storage_error(stats, camera, &e),
            }
        }
    }

    fn delete(
        &mut self,
        store: &mut Store,
        live: &LiveSegments,
        victims: &[SegmentRow],
    ) -> Result<super::Deleted, StoreError> {
        live.deleted(&victims.iter().map(|v| v.id).collect::<Vec<_>>());
        let d = store.delete_segments(victims)?;
        self.complete_alloc = self.complete_alloc.saturating_sub(d.alloc_bytes);
        Ok(d)
    }
}

/// Counts and logs a storage error other than a full disk.
pub(super) fn storage_error(stats: &WriterStats, camera: &str, e: &dyn std::fmt::Display) {
    stats.storage_errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!(camera, "storage error: {e}");
}
