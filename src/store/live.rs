//! The open segments as the writer sees them, shared in memory with playback.
//!
//! The index row of an open segment lists only its first fragment until the segment closes (one
//! transaction per segment, DESIGN section 4). Live playlists need every fragment as it lands, so
//! the storage writer also publishes each camera's open segment here, after the fragment's bytes
//! are written, and keeps the segment it closed last until the next roll, so that a reader that
//! queried the index just before a roll still sees the closed segment whole. Readers merge these
//! rows over the index rows with the same id. Nothing here touches files or SQLite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::index::{FragmentEntry, SegmentRow};

#[derive(Default)]
struct Entry {
    open: Option<SegmentRow>,
    last_closed: Option<SegmentRow>,
}

/// Per camera: the open segment and the one closed last. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct LiveSegments {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl LiveSegments {
    /// A new empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The writer opened `row` (its first fragment is written); the previous open segment of the
    /// camera, if any, is now the last closed one.
    pub fn opened(&self, row: &SegmentRow) {
        self.with(|m| {
            let e = m.entry(row.camera.clone()).or_default();
            if let Some(prev) = e.open.take() {
                e.last_closed = Some(prev);
            }
            e.open = Some(row.clone());
        });
    }

    /// The writer appended a fragment of `size_bytes` and `duration_ns` to the camera's open
    /// segment.
    pub fn appended(&self, camera: &str, f: FragmentEntry, duration_ns: i64) {
        self.with(|m| {
            if let Some(o) = m.get_mut(camera).and_then(|e| e.open.as_mut()) {
                o.size_bytes += i64::from(f.size_bytes);
                o.duration_ns += duration_ns;
                o.fragments.push(f);
            }
        });
    }

    /// The camera's open segment was closed with no successor (end of run).
    pub fn closed(&self, camera: &str) {
        self.with(|m| {
            if let Some(e) = m.get_mut(camera) {
                if let Some(prev) = e.open.take() {
                    e.last_closed = Some(prev);
                }
            }
        });
    }

    /// Segments were deleted (eviction, retention): forget them here too.
    pub fn deleted(&self, ids: &[i64]) {
        self.with(|m| {
            for e in m.values_mut() {
                if e.last_closed.as_ref().is_some_and(|r| ids.contains(&r.id)) {
                    e.last_closed = None;
                }
            }
        });
    }

    /// The camera's open segment, if it is recording now.
    pub fn open_segment(&self, camera: &str) -> Option<SegmentRow> {
        self.with(|m| m.get(camera).and_then(|e| e.open.clone()))
    }

    /// `[start, end)` (UTC ns) of the camera's last-closed and open segments, without copying
    /// their fragment lists.
    pub fn extents(&self, camera: &str) -> Vec<(i64, i64)> {
        self.with(|m| {
            m.get(camera)
                .map(|e| {
                    e.last_closed
                        .iter()
                        .chain(e.open.iter())
                        .map(|r| (r.start_utc_ns, r.end_utc_ns()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The camera's open and last-closed segments (0, 1 or 2 rows).
    pub fn rows(&self, camera: &str) -> Vec<SegmentRow> {
        self.with(|m| {
            m.get(camera)
                .map(|e| e.last_closed.iter().chain(e.open.iter()).cloned().collect())
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SegmentState;

    fn row(id: i64) -> SegmentRow {
        SegmentRow {
            id,
            camera: "c".into(),
            run_id: 1,
            start_utc_ns: id * 10,
            duration_ns: 2,
            size_bytes: 10,
            alloc_bytes: 0,
            init_size_bytes: 5,
            fragments: vec![FragmentEntry {
                size_bytes: 5,
                duration_us: 2,
            }],
            codec: "avc1".into(),
            audio_codec: None,
            path: format!("p{id}"),
            state: SegmentState::Open,
            uploaded_utc_ns: None,
            timescale: 90_000,
            decode_time: 0,
            media_seq: 0,
            disc_seq: 0,
            disc_start: false,
        }
    }

    #[test]
    fn open_append_roll_close() {
        let l = LiveSegments::new();
        l.opened(&row(1));
        l.appended(
            "c",
            FragmentEntry {
                size_bytes: 7,
                duration_us: 3,
            },
            3000,
        );
        let o = l.open_segment("c").unwrap();
        assert_eq!(
            (o.fragments.len(), o.size_bytes, o.duration_ns),
            (2, 17, 3002)
        );
        l.opened(&row(2));
        assert_eq!(l.rows("c").iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        l.closed("c");
        assert!(l.open_segment("c").is_none());
        assert_eq!(l.rows("c").iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
        l.deleted(&[2]);
        assert!(l.rows("c").is_empty());
    }
}
