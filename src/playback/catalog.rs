//! Reading what is recorded, for playback: the index through a read-only connection of its own,
//! merged with the storage writer's open segments ([`LiveSegments`]), so that live manifests
//! include every fragment written so far.
//!
//! Queries are synchronous (SQLite); the HTTP layer runs them on blocking threads. One connection
//! behind a mutex: a gateway serves a handful of players, and the writer never waits for readers
//! (WAL).

use std::path::Path;
use std::sync::Mutex;

use super::time::{Unit, UnitIndex};
use super::ApiError;
use crate::index::{ClipRow, Index, IndexError, SegmentRow, SegmentState};
use crate::store::live::LiveSegments;

/// What the playback rules ([`super::available`], [`super::filter`], [`super::kept`]) read of
/// one store of recordings: the gateway's index and open segments ([`Catalog`]), or the object
/// store the gateways upload to (`crate::cloud`, cargo feature `cloud`). The rules, their limits
/// and their messages are written once, over this trait; only where the rows come from differs.
///
/// Rows are one camera's, sorted by start; times are UTC ns since 1970. Errors are API errors
/// (500 for a store that cannot be read).
pub trait Recordings {
    /// The camera's segment being written now, if it is recording (makes manifests live).
    fn open_segment(&self, camera: &str) -> Option<SegmentRow>;
    /// First media start and last media end of `camera`; `None`: no media.
    fn bounds(&self, camera: &str) -> Result<Option<(i64, i64)>, ApiError>;
    /// Segments overlapping `[from, to)`, with fragment lists, `disc_start` and sequence numbers.
    fn segments(&self, camera: &str, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError>;
    /// At least the segments that bound the continuous spans in `[from, to)` (input for
    /// [`super::timeline::spans`]); fragment lists may be left out.
    fn span_bounds(&self, camera: &str, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError>;
    /// Whether any media overlaps `[from, to)`.
    fn has_media(&self, camera: &str, from: i64, to: i64) -> Result<bool, ApiError>;
    /// For each calendar unit `lo..=hi` (all within the camera's media bounds), whether media lies
    /// in it: availableMedia at year, month and day precision.
    fn units_with_media(
        &self,
        camera: &str,
        unit: Unit,
        lo: UnitIndex,
        hi: UnitIndex,
    ) -> Result<Vec<bool>, ApiError>;
    /// Clips whose window overlaps `[from, to]`, by start (EVR cameras).
    fn clips(&self, camera: &str, from: i64, to: i64) -> Result<Vec<ClipRow>, ApiError>;
}

impl Recordings for Catalog {
    fn open_segment(&self, camera: &str) -> Option<SegmentRow> {
        Catalog::open_segment(self, camera)
    }
    fn bounds(&self, camera: &str) -> Result<Option<(i64, i64)>, ApiError> {
        Ok(Catalog::bounds(self, camera)?)
    }
    fn segments(&self, camera: &str, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError> {
        Ok(Catalog::segments(self, camera, from, to)?)
    }
    fn span_bounds(&self, camera: &str, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError> {
        Ok(Catalog::span_bounds(self, camera, from, to)?)
    }
    fn has_media(&self, camera: &str, from: i64, to: i64) -> Result<bool, ApiError> {
        Ok(Catalog::has_media(self, camera, from, to)?)
    }
    fn units_with_media(
        &self,
        camera: &str,
        unit: Unit,
        lo: UnitIndex,
        hi: UnitIndex,
    ) -> Result<Vec<bool>, ApiError> {
        match super::available::units_from_gaps(self, camera, unit, lo, hi)? {
            Some(a) => Ok(a),
            None => (lo..=hi)
                .map(|i| {
                    Recordings::has_media(self, camera, unit.start_ns(i), unit.start_ns(i + 1))
                })
                .collect(),
        }
    }
    fn clips(&self, camera: &str, from: i64, to: i64) -> Result<Vec<ClipRow>, ApiError> {
        Ok(Catalog::clips(self, camera, from, to)?)
    }
}

/// Playback's view of the recordings.
pub struct Catalog {
    index: Mutex<Index>,
    live: LiveSegments,
}

impl Catalog {
    /// Opens the index read-only. Errors: the index does not exist or is newer than this
    /// edgerec.
    pub fn open(index_path: &Path, live: LiveSegments) -> Result<Catalog, IndexError> {
        Ok(Catalog {
            index: Mutex::new(Index::open_read_only(index_path)?),
            live,
        })
    }

    fn ix<R>(&self, f: impl FnOnce(&Index) -> Result<R, IndexError>) -> Result<R, IndexError> {
        let g = self.index.lock().unwrap_or_else(|p| p.into_inner());
        f(&g)
    }

    /// The camera's open segment, if it is recording now.
    pub fn open_segment(&self, camera: &str) -> Option<SegmentRow> {
        self.live.open_segment(camera)
    }

    /// Segments of `camera` overlapping `[from, to)` (UTC ns), by start; the writer's in-memory
    /// rows replace index rows with the same id.
    pub fn segments(
        &self,
        camera: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        let v = self.ix(|ix| ix.segments_overlapping(camera, from, to))?;
        Ok(self.merge_live(camera, v, from, to))
    }

    /// The segments that bound the continuous spans of `camera` in `[from, to)`
    /// ([`crate::index::Index::span_bounds`], merged with the open segment), without fragment
    /// lists or paths: input for [`super::timeline::spans`], not for manifests.
    pub fn span_bounds(
        &self,
        camera: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        let v = self.ix(|ix| ix.span_bounds(camera, from, to))?;
        Ok(self.merge_live(camera, v, from, to))
    }

    fn merge_live(
        &self,
        camera: &str,
        mut v: Vec<SegmentRow>,
        from: i64,
        to: i64,
    ) -> Vec<SegmentRow> {
        for l in self.live.rows(camera) {
            let overlaps = l.start_utc_ns < to && l.end_utc_ns() > from;
            match v.iter_mut().find(|r| r.id == l.id) {
                Some(r) => *r = l,
                None if overlaps => v.push(l),
                None => {}
            }
        }
        v.retain(|r| r.start_utc_ns < to && (r.end_utc_ns() > from));
        v.sort_by_key(|r| r.start_utc_ns);
        v
    }

    /// Whether `camera` has media overlapping `[from, to)` (UTC ns).
    pub fn has_media(&self, camera: &str, from: i64, to: i64) -> Result<bool, IndexError> {
        if self
            .live
            .extents(camera)
            .iter()
            .any(|&(s, e)| s < to && e > from)
        {
            return Ok(true);
        }
        self.ix(|ix| ix.has_media(camera, from, to))
    }

    /// Starts (UTC ns) of the first `limit` discontinuities of `camera` after `after`
    /// ([`crate::index::Index::disc_starts_after`]).
    pub fn disc_starts_after(
        &self,
        camera: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<i64>, IndexError> {
        self.ix(|ix| ix.disc_starts_after(camera, after, limit))
    }

    /// End (UTC ns) of the media of `camera` that starts last before `t`, the writer's open
    /// segment included.
    pub fn media_end_before(&self, camera: &str, t: i64) -> Result<Option<i64>, IndexError> {
        let ix = self.ix(|ix| ix.media_end_before(camera, t))?;
        let live = self
            .live
            .extents(camera)
            .into_iter()
            .filter(|&(s, _)| s < t)
            .map(|(_, e)| e)
            .max();
        Ok(ix.max(live))
    }

    /// Event markers of `camera` within `[from, to]` (UTC ns), at most `limit`.
    pub fn events(
        &self,
        camera: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<crate::index::EventRow>, IndexError> {
        self.ix(|ix| ix.events_between(camera, from, to, limit))
    }

    /// Clips of `camera` whose window overlaps `[from, to]` (UTC ns), by start.
    pub fn clips(
        &self,
        camera: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::index::ClipRow>, IndexError> {
        self.ix(|ix| ix.clips_overlapping(camera, from, to))
    }

    /// The open EVR clips (at most one per camera).
    pub fn open_clips(&self) -> Result<Vec<crate::index::ClipRow>, IndexError> {
        self.ix(|ix| ix.open_clips())
    }

    /// Per camera with a backlog: (camera, segments, bytes) not uploaded yet.
    pub fn upload_backlog_by_camera(&self) -> Result<Vec<(String, u64, u64)>, IndexError> {
        self.ix(|ix| ix.upload_backlog_by_camera())
    }

    /// Clip `id` of `camera`, if there is one.
    pub fn clip(&self, camera: &str, id: i64) -> Result<Option<crate::index::ClipRow>, IndexError> {
        self.ix(|ix| ix.clip(camera, id))
    }

    /// The events linked to any of `clip_ids`, by time.
    pub fn clip_events(
        &self,
        clip_ids: &[i64],
    ) -> Result<Vec<crate::index::ClipEvent>, IndexError> {
        self.ix(|ix| ix.clip_events(clip_ids))
    }

    /// First media start and last media end of `camera` (UTC ns).
    pub fn bounds(&self, camera: &str) -> Result<Option<(i64, i64)>, IndexError> {
        let b = self.ix(|ix| ix.media_bounds(camera))?;
        let live = self.live.extents(camera);
        let live_b = live
            .first()
            .map(|f| f.0)
            .zip(live.iter().map(|l| l.1).max());
        Ok(match (b, live_b) {
            (Some((s, e)), Some((ls, le))) => Some((s.min(ls), e.max(le))),
            (b, l) => b.or(l),
        })
    }

    /// Segment `id` (open or complete), the writer's in-memory row if it has one.
    pub fn segment(&self, id: i64) -> Result<Option<SegmentRow>, IndexError> {
        let r = self.ix(|ix| ix.segment(id))?;
        if let Some(r) = &r {
            if let Some(l) = self.live.rows(&r.camera).into_iter().find(|l| l.id == id) {
                return Ok(Some(l));
            }
        }
        Ok(r.filter(|r| r.state != SegmentState::Deleting))
    }

    /// Per camera with media: (segments, bytes held).
    pub fn totals(&self) -> Result<Vec<(String, i64, i64)>, IndexError> {
        self.ix(|ix| ix.camera_totals())
    }
}

/// Whether a row is still being written.
pub fn is_open(r: &SegmentRow) -> bool {
    r.state == SegmentState::Open
}
