//! Clips of event-based recording (DESIGN section 9) in the index: the `clip` table, the link
//! from events to the clip they opened or extended, and each segment's keep class.
//!
//! The signal gate ([`crate::evr::gate`]) decides; this module only stores and reads. Times are
//! UTC ns since 1970.

use rusqlite::{named_params, params, OptionalExtension};

use super::{Index, IndexError};

/// Fifth schema step: clips and keep classes.
pub const SCHEMA_V5: &str = r#"
-- An EVR clip: a window of one camera's media opened by an event through the signal gate (LVA
-- signalGateProcessor; seed 001). The media it covers is kept (segment.keep = 2) and shared by
-- overlapping clips; nothing is copied. Achieved start and end follow from the segments.
CREATE TABLE clip (
    id                     INTEGER PRIMARY KEY,
    camera                 TEXT    NOT NULL,
    state                  INTEGER NOT NULL CHECK (state IN (0, 1)),  -- 0 open, 1 closed
    first_event_utc_ns     INTEGER NOT NULL,   -- time of the event that opened it
    first_arrival_utc_ns   INTEGER NOT NULL,   -- when that event arrived
    requested_start_utc_ns INTEGER NOT NULL,   -- first event + activation_signal_offset (or earlier)
    end_utc_ns             INTEGER NOT NULL,   -- requested end (last event + minimum, capped)
    max_end_utc_ns         INTEGER NOT NULL,   -- first event + maximum_activation_time
    held_until_utc_ns      INTEGER NOT NULL,   -- a held trigger (event duration) lasts until here
    close_reason           TEXT CHECK (close_reason IN ('minimum', 'maximum', 'shutdown', 'camera_lost')),
    closed_utc_ns          INTEGER,            -- wall clock when it closed; NULL while open
    uploaded_utc_ns        INTEGER,            -- when its description object was uploaded
    CHECK (end_utc_ns <= max_end_utc_ns)
);
CREATE INDEX clip_camera_start ON clip (camera, requested_start_utc_ns);
CREATE INDEX clip_open ON clip (state) WHERE state = 0;
-- The clip an event opened or extended; NULL if none (dropped as late, or before EVR existed).
ALTER TABLE event ADD COLUMN clip_id INTEGER REFERENCES clip (id);
-- 1 if it arrived too late for the signal gate and was dropped.
ALTER TABLE event ADD COLUMN late INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1));
-- What the sender saw with the event (e.g. ["person","car"]): a JSON array of labels; NULL: none.
ALTER TABLE event ADD COLUMN objects TEXT;
-- Keep class input: 0 transient (an EVR camera's media no clip covers: the pre-roll ring),
-- 1 kept by the camera's mode (CVR), 2 covered by a clip.
ALTER TABLE segment ADD COLUMN keep INTEGER NOT NULL DEFAULT 1 CHECK (keep IN (0, 1, 2));
CREATE INDEX segment_transient ON segment (camera, start_utc_ns) WHERE keep = 0;
-- Eviction order (DESIGN section 5): transient, uploaded, not uploaded, clip not uploaded;
-- oldest first in each. The expression must match Index::eviction_candidates. (The V1 index
-- segment_eviction stays: it serves the uploader's oldest-first query.)
CREATE INDEX segment_keep_class ON segment (state, (CASE WHEN keep = 0 THEN 0
    WHEN uploaded_utc_ns IS NOT NULL THEN 1 WHEN keep = 1 THEN 2 ELSE 3 END), start_utc_ns);
"#;

/// A segment's keep class input (`segment.keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// An EVR camera's media that no clip covers (yet).
    Transient = 0,
    /// Kept by the camera's mode (CVR) under its retention.
    Mode = 1,
    /// Covered by a clip: kept under `clip_retention`, evicted last.
    Clip = 2,
}

/// A clip row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipRow {
    /// Row id (0 before insert).
    pub id: i64,
    /// Camera id.
    pub camera: String,
    /// Whether it is still open (may be extended).
    pub open: bool,
    /// Time of the event that opened it, UTC ns.
    pub first_event_utc_ns: i64,
    /// When that event arrived, UTC ns.
    pub first_arrival_utc_ns: i64,
    /// Requested start, UTC ns.
    pub requested_start_utc_ns: i64,
    /// Requested end, UTC ns.
    pub end_utc_ns: i64,
    /// Latest possible end, UTC ns.
    pub max_end_utc_ns: i64,
    /// A held trigger lasts until here, UTC ns.
    pub held_until_utc_ns: i64,
    /// Why it closed (`minimum`, `maximum`, `shutdown`, `camera_lost`); `None` while open.
    pub close_reason: Option<String>,
    /// When it closed, UTC ns.
    pub closed_utc_ns: Option<i64>,
    /// When its description object was uploaded, UTC ns.
    pub uploaded_utc_ns: Option<i64>,
}

const CLIP_COLS: &str = "id, camera, state, first_event_utc_ns, first_arrival_utc_ns, \
    requested_start_utc_ns, end_utc_ns, max_end_utc_ns, held_until_utc_ns, close_reason, \
    closed_utc_ns, uploaded_utc_ns";

fn row_to_clip(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClipRow> {
    Ok(ClipRow {
        id: r.get(0)?,
        camera: r.get(1)?,
        open: r.get::<_, i64>(2)? == 0,
        first_event_utc_ns: r.get(3)?,
        first_arrival_utc_ns: r.get(4)?,
        requested_start_utc_ns: r.get(5)?,
        end_utc_ns: r.get(6)?,
        max_end_utc_ns: r.get(7)?,
        held_until_utc_ns: r.get(8)?,
        close_reason: r.get(9)?,
        closed_utc_ns: r.get(10)?,
        uploaded_utc_ns: r.get(11)?,
    })
}

/// An event linked to a clip, for clip listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipEvent {
    /// The clip's row id.
    pub clip_id: i64,
    /// The sender's event id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// When it happened, UTC ns.
    pub time_utc_ns: i64,
    /// Object labels the sender saw with it.
    pub objects: Vec<String>,
}

impl Index {
    /// Inserts a clip; returns its id.
    pub fn insert_clip(&self, c: &ClipRow) -> Result<i64, IndexError> {
        self.conn.execute(
            "INSERT INTO clip (camera, state, first_event_utc_ns, first_arrival_utc_ns, \
             requested_start_utc_ns, end_utc_ns, max_end_utc_ns, held_until_utc_ns, \
             close_reason, closed_utc_ns) \
             VALUES (:camera, :state, :first, :arrival, :start, :end, :max_end, :held, :reason, :closed)",
            named_params! {
                ":camera": c.camera,
                ":state": if c.open { 0 } else { 1 },
                ":first": c.first_event_utc_ns,
                ":arrival": c.first_arrival_utc_ns,
                ":start": c.requested_start_utc_ns,
                ":end": c.end_utc_ns,
                ":max_end": c.max_end_utc_ns,
                ":held": c.held_until_utc_ns,
                ":reason": c.close_reason,
                ":closed": c.closed_utc_ns,
            },
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Updates an open clip's window (an event moved its start or end).
    pub fn update_clip_window(
        &self,
        id: i64,
        requested_start_utc_ns: i64,
        end_utc_ns: i64,
        held_until_utc_ns: i64,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE clip SET requested_start_utc_ns = ?2, end_utc_ns = ?3, held_until_utc_ns = ?4 \
             WHERE id = ?1",
            params![id, requested_start_utc_ns, end_utc_ns, held_until_utc_ns],
        )?;
        Ok(())
    }

    /// Closes a clip with `reason` at wall-clock time `at_utc_ns`.
    pub fn close_clip(&self, id: i64, reason: &str, at_utc_ns: i64) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE clip SET state = 1, close_reason = ?2, closed_utc_ns = ?3 WHERE id = ?1",
            params![id, reason, at_utc_ns],
        )?;
        Ok(())
    }

    /// Records that a clip's description object was uploaded at `at_utc_ns`.
    pub fn set_clip_uploaded(&self, id: i64, at_utc_ns: i64) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE clip SET uploaded_utc_ns = ?2 WHERE id = ?1",
            params![id, at_utc_ns],
        )?;
        Ok(())
    }

    /// Every open clip (at most one per camera), for a restart.
    pub fn open_clips(&self) -> Result<Vec<ClipRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CLIP_COLS} FROM clip WHERE state = 0 ORDER BY id"
        ))?;
        let rows = st.query_map([], row_to_clip)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Clips of `camera` whose window `[requested start, end]` overlaps `[from, to]`, by start.
    pub fn clips_overlapping(
        &self,
        camera: &str,
        from_utc_ns: i64,
        to_utc_ns: i64,
    ) -> Result<Vec<ClipRow>, IndexError> {
        // A clip lasts at most 1 h 1 min (maximum + offset), so its start is at most that
        // before `from`: the (camera, start) index bounds the scan.
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CLIP_COLS} FROM clip WHERE camera = ?1 AND requested_start_utc_ns <= ?3 \
             AND requested_start_utc_ns >= ?2 - 7200000000000 AND end_utc_ns >= ?2 \
             ORDER BY requested_start_utc_ns, id"
        ))?;
        let rows = st.query_map(params![camera, from_utc_ns, to_utc_ns], row_to_clip)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Clip `id` of `camera`, if there is one.
    pub fn clip(&self, camera: &str, id: i64) -> Result<Option<ClipRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CLIP_COLS} FROM clip WHERE camera = ?1 AND id = ?2"
        ))?;
        let mut rows = st.query_map(params![camera, id], row_to_clip)?;
        Ok(rows.next().transpose()?)
    }

    /// Closed clips whose description object is not uploaded, oldest first.
    pub fn clips_to_upload(&self, limit: usize) -> Result<Vec<ClipRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CLIP_COLS} FROM clip WHERE state = 1 AND uploaded_utc_ns IS NULL \
             ORDER BY end_utc_ns LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], row_to_clip)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Links the event `event_id` of `camera` to `clip_id` (`None`: no clip), with `late` set if
    /// the gate dropped it as late.
    pub fn link_event(
        &self,
        camera: &str,
        event_id: &str,
        clip_id: Option<i64>,
        late: bool,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE event SET clip_id = ?3, late = ?4 WHERE camera = ?1 AND event_id = ?2",
            params![camera, event_id, clip_id, late],
        )?;
        Ok(())
    }

    /// The events linked to any of `clip_ids`, by time.
    pub fn clip_events(&self, clip_ids: &[i64]) -> Result<Vec<ClipEvent>, IndexError> {
        let mut out = Vec::new();
        let mut st = self.conn.prepare_cached(
            "SELECT clip_id, event_id, label, time_utc_ns, objects FROM event WHERE clip_id = ?1 \
             ORDER BY time_utc_ns",
        )?;
        for id in clip_ids {
            let rows = st.query_map([id], |r| {
                Ok(ClipEvent {
                    clip_id: r.get(0)?,
                    id: r.get(1)?,
                    label: r.get(2)?,
                    time_utc_ns: r.get(3)?,
                    objects: super::objects_from_json(r.get(4)?),
                })
            })?;
            for r in rows {
                out.push(r?);
            }
        }
        Ok(out)
    }

    /// Marks the segments of `camera` that overlap `[from, to)` (and an open segment that
    /// starts before `to`) as covered by a clip. Returns how many changed.
    pub fn mark_clip_media(
        &self,
        camera: &str,
        from_utc_ns: i64,
        to_utc_ns: i64,
    ) -> Result<usize, IndexError> {
        Ok(self.conn.execute(
            "UPDATE segment SET keep = 2 WHERE camera = ?1 AND keep != 2 AND state != 2 \
             AND start_utc_ns < ?3 AND (start_utc_ns + duration_ns > ?2 OR state = 0)",
            params![camera, from_utc_ns, to_utc_ns],
        )?)
    }

    /// Makes `camera`'s keep classes agree with its mode, at start: on an EVR camera, media kept
    /// by the mode becomes transient (after `fsck --rebuild` or a switch from CVR); on a CVR
    /// camera, transient media becomes kept. Clip media stays. Returns how many rows changed.
    pub fn align_keep_with_mode(&self, camera: &str, evr: bool) -> Result<usize, IndexError> {
        let (from, to) = if evr {
            (Keep::Mode, Keep::Transient)
        } else {
            (Keep::Transient, Keep::Mode)
        };
        Ok(self.conn.execute(
            "UPDATE segment SET keep = ?3 WHERE camera = ?1 AND keep = ?2",
            params![camera, from as i64, to as i64],
        )?)
    }

    /// Marks the media of every clip again (after `fsck --rebuild`, which recreates segment rows
    /// with the default keep class). Returns how many segments were marked.
    pub fn remark_clip_media(&self) -> Result<usize, IndexError> {
        let mut n = 0;
        let clips: Vec<(String, i64, i64)> = self
            .conn
            .prepare("SELECT camera, requested_start_utc_ns, end_utc_ns FROM clip")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (camera, from, to) in clips {
            n += self.mark_clip_media(&camera, from, to)?;
        }
        Ok(n)
    }

    /// The keep class of a segment, if it exists.
    pub fn keep_of(&self, segment_id: i64) -> Result<Option<Keep>, IndexError> {
        let k: Option<i64> = self
            .conn
            .query_row(
                "SELECT keep FROM segment WHERE id = ?1",
                [segment_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(k.map(|k| match k {
            0 => Keep::Transient,
            2 => Keep::Clip,
            _ => Keep::Mode,
        }))
    }

    /// Complete transient segments of `camera` that ended at or before `before_utc_ns` (past
    /// the pre-roll horizon), oldest first.
    pub fn transient_expired(
        &self,
        camera: &str,
        before_utc_ns: i64,
        limit: usize,
    ) -> Result<Vec<super::SegmentRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {} FROM segment WHERE state = 1 AND camera = ?1 AND keep = 0 \
             AND start_utc_ns + duration_ns <= ?2 ORDER BY start_utc_ns LIMIT ?3",
            super::SEGMENT_COLS
        ))?;
        let rows = st.query_map(
            params![camera, before_utc_ns, limit as i64],
            super::row_to_segment,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
