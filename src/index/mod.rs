//! The SQLite index of segments and runs (DESIGN section 4; schema in [`SCHEMA_V1`]).
//!
//! One writer connection (the storage writer) opens it with [`Index::open`]; readers (playback,
//! status) open their own read-only connections. WAL mode, `synchronous=FULL` (a commit is one per
//! closed segment, so durability costs little wear), versioned migrations through
//! `PRAGMA user_version`. File I/O on media files does not belong here.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

pub mod clips;
pub use clips::{ClipEvent, ClipRow, Keep, SCHEMA_V5};

/// The first schema. Every column carries its unit; times are UTC nanoseconds since 1970-01-01.
pub const SCHEMA_V1: &str = r#"
-- A run: consecutive segments of one camera on one continuous media timeline. A new run starts on
-- (re)connect, codec change, recording restart or a wall-clock step (DESIGN section 2).
CREATE TABLE run (
    id            INTEGER PRIMARY KEY,
    camera        TEXT    NOT NULL,
    start_utc_ns  INTEGER NOT NULL,              -- wall-clock time of the run's first fragment
    reason        TEXT    NOT NULL               -- 'connect' | 'reconnect' | 'restart' | 'clock_step' | 'codec_change' | 'dropped' | 'recovered' | 'rebuild' (store::segmenter::RunReason)
);
CREATE INDEX run_camera_start ON run (camera, start_utc_ns);

-- A segment: one self-contained fMP4 file (init segment + fragments).
CREATE TABLE segment (
    id               INTEGER PRIMARY KEY,
    camera           TEXT    NOT NULL,
    run_id           INTEGER NOT NULL REFERENCES run (id),
    start_utc_ns     INTEGER NOT NULL,           -- first fragment's time; also the file name
    duration_ns      INTEGER NOT NULL CHECK (duration_ns >= 0),   -- sum of fragment durations
    size_bytes       INTEGER NOT NULL CHECK (size_bytes >= 0),    -- file length (complete rows: exact)
    alloc_bytes      INTEGER NOT NULL CHECK (alloc_bytes >= 0),   -- bytes allocated on the filesystem
    init_size_bytes  INTEGER NOT NULL CHECK (init_size_bytes > 0),-- ftyp+moov at offset 0
    fragments        BLOB    NOT NULL,           -- per fragment, little-endian u32 size_bytes, u32 duration_us; offsets follow from init_size_bytes
    codec            TEXT    NOT NULL,           -- sample entry four-cc: avc1, avc3, hvc1, hev1
    path             TEXT    NOT NULL UNIQUE,    -- relative to the storage path: media/<camera>/YYYY/MM/DD/<start>.mp4
    state            INTEGER NOT NULL CHECK (state IN (0, 1, 2)),  -- 0 open (being written), 1 complete, 2 deleting
    uploaded_utc_ns  INTEGER                     -- when the uploader stored it; NULL = not uploaded
);
CREATE INDEX segment_camera_start ON segment (camera, start_utc_ns);
CREATE INDEX segment_eviction ON segment (state, uploaded_utc_ns IS NULL, start_utc_ns);
"#;

/// Second schema step: what playback needs without opening media files (DESIGN section 6).
pub const SCHEMA_V2: &str = r#"
-- Media timescale (ticks per second) and the first fragment's tfdt (base media decode time, in
-- timescale ticks; ISO/IEC 14496-12 section 8.8.12): DASH SegmentTimeline times.
ALTER TABLE segment ADD COLUMN timescale INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segment ADD COLUMN decode_time INTEGER NOT NULL DEFAULT 0;
-- Per camera, the HLS media sequence number of the segment's first fragment and the
-- discontinuity sequence number of the segment (RFC 8216 sections 4.3.3.2, 4.3.3.3): they only
-- grow, so a live playlist keeps its numbering while its window slides.
ALTER TABLE segment ADD COLUMN media_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segment ADD COLUMN disc_seq INTEGER NOT NULL DEFAULT 0;
"#;

/// Third schema step: discontinuities are stored, so a timeline question reads only the gap
/// boundaries instead of every segment in its range (availableMedia at full precision).
pub const SCHEMA_V3: &str = r#"
-- 1 when the segment starts a discontinuity (seed 004: "every discontinuity is a gap"): it has no
-- earlier segment of its camera, or it does not continue the one before it (another run, codec or
-- init segment, or a hole over 50 ms). Kept on insert, on rewrite and when a neighbour is deleted.
ALTER TABLE segment ADD COLUMN disc_start INTEGER NOT NULL DEFAULT 0;
UPDATE segment SET disc_start = NOT EXISTS (
    SELECT 1 FROM segment p WHERE p.id = (
        SELECT q.id FROM segment q WHERE q.camera = segment.camera
        AND q.start_utc_ns < segment.start_utc_ns ORDER BY q.start_utc_ns DESC LIMIT 1)
    AND p.run_id = segment.run_id AND p.codec = segment.codec
    AND p.init_size_bytes = segment.init_size_bytes
    AND segment.start_utc_ns - (p.start_utc_ns + p.duration_ns) <= 50000000);
CREATE INDEX segment_disc ON segment (camera, start_utc_ns) WHERE disc_start = 1;
"#;

/// Fourth schema step: event markers (MQTT `<camera>/event`, `cmd/triggerEvent`), which
/// event-based recording (EVR) will act on.
pub const SCHEMA_V4: &str = r#"
CREATE TABLE event (
    id               INTEGER PRIMARY KEY,
    camera           TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,             -- the sender's id, or one made on receipt
    label            TEXT    NOT NULL,
    time_utc_ns      INTEGER NOT NULL,             -- when it happened
    duration_ns      INTEGER CHECK (duration_ns IS NULL OR duration_ns >= 0), -- NULL: an instant
    received_utc_ns  INTEGER NOT NULL,
    UNIQUE (camera, event_id)
);
CREATE INDEX event_camera_time ON event (camera, time_utc_ns);
"#;

/// Sixth schema step: the audio track of a segment (cameras recorded with `audio = "auto"`).
pub const SCHEMA_V6: &str = r#"
-- RFC 6381 codecs of the segment's audio track (mp4a.40.2 for AAC-LC); NULL: video only.
ALTER TABLE segment ADD COLUMN audio_codec TEXT;
"#;

/// Migrations: entry `i` takes the schema from `user_version` i to i + 1.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6,
];

/// An event marker of one camera.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRow {
    /// Camera id.
    pub camera: String,
    /// Event id (unique per camera).
    pub id: String,
    /// What happened, e.g. `person`.
    pub label: String,
    /// When it happened, UTC ns.
    pub time_utc_ns: i64,
    /// How long it lasted, ns; `None` for an instant.
    pub duration_ns: Option<i64>,
    /// When edgerec received it, UTC ns.
    pub received_utc_ns: i64,
    /// Object labels the sender saw with it (e.g. `person`, `car`); empty if none.
    pub objects: Vec<String>,
}

/// Event objects as stored (`event.objects`, a JSON array, NULL for none).
fn objects_to_json(objects: &[String]) -> Option<String> {
    (!objects.is_empty()).then(|| serde_json::to_string(objects).unwrap_or_default())
}

/// Event objects read back; an unreadable value counts as none.
fn objects_from_json(v: Option<String>) -> Vec<String> {
    v.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// What [`Index::insert_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventInsert {
    /// Stored.
    Inserted,
    /// The same event was stored before (a QoS 1 redelivery): nothing changed.
    Duplicate,
    /// Another event with this id exists for the camera: nothing changed.
    Conflict,
}

/// A hole between two segments longer than this is a discontinuity (a gap), ns. Seed 004:
/// "every discontinuity in the timeline is a gap".
pub const GAP_TOLERANCE_NS: i64 = 50_000_000;

/// Whether `b` continues `a` on one media timeline: same run, same codec and init segment, and
/// `b` starts at most [`GAP_TOLERANCE_NS`] after `a` ends. Anything else is a discontinuity, which
/// availableMedia reports as a gap and manifests mark (seed `004_*`; RFC 8216 section 4.3.2.3).
pub fn continuous(a: &SegmentRow, b: &SegmentRow) -> bool {
    a.run_id == b.run_id
        && a.codec == b.codec
        && a.init_size_bytes == b.init_size_bytes
        && b.start_utc_ns - a.end_utc_ns() <= GAP_TOLERANCE_NS
}

/// State of a segment row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// The file is being written; its row is updated when it closes.
    Open = 0,
    /// Closed: file length equals `size_bytes`.
    Complete = 1,
    /// Being deleted: the file may or may not still exist; startup finishes the deletion.
    Deleting = 2,
}

impl SegmentState {
    fn from_i64(v: i64) -> SegmentState {
        match v {
            0 => SegmentState::Open,
            2 => SegmentState::Deleting,
            _ => SegmentState::Complete,
        }
    }
}

/// One fragment of a segment as stored in the `fragments` blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentEntry {
    /// Bytes of the fragment (`moof` through the end of `mdat`).
    pub size_bytes: u32,
    /// Duration in microseconds.
    pub duration_us: u32,
}

/// Packs fragment entries into the `fragments` blob (8 bytes each, little-endian).
pub fn encode_fragments(f: &[FragmentEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len() * 8);
    for e in f {
        out.extend_from_slice(&e.size_bytes.to_le_bytes());
        out.extend_from_slice(&e.duration_us.to_le_bytes());
    }
    out
}

/// Unpacks the `fragments` blob; a trailing partial entry is ignored.
pub fn decode_fragments(b: &[u8]) -> Vec<FragmentEntry> {
    b.chunks_exact(8)
        .map(|c| FragmentEntry {
            size_bytes: u32::from_le_bytes(c[0..4].try_into().unwrap()),
            duration_us: u32::from_le_bytes(c[4..8].try_into().unwrap()),
        })
        .collect()
}

/// One row of `segment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    /// Row id (0 before insertion).
    pub id: i64,
    /// Camera id.
    pub camera: String,
    /// Run id.
    pub run_id: i64,
    /// Start, UTC ns since 1970.
    pub start_utc_ns: i64,
    /// Duration in ns.
    pub duration_ns: i64,
    /// File length in bytes.
    pub size_bytes: i64,
    /// Allocated bytes on the filesystem.
    pub alloc_bytes: i64,
    /// Init segment length in bytes.
    pub init_size_bytes: i64,
    /// Fragments in file order.
    pub fragments: Vec<FragmentEntry>,
    /// Sample entry four-cc of the video track.
    pub codec: String,
    /// RFC 6381 codecs of the audio track (`mp4a.40.2`); `None`: video only.
    pub audio_codec: Option<String>,
    /// Path relative to the storage root.
    pub path: String,
    /// Row state.
    pub state: SegmentState,
    /// Upload time, UTC ns, if uploaded.
    pub uploaded_utc_ns: Option<i64>,
    /// Media timescale, ticks per second (0 if unknown).
    pub timescale: u32,
    /// `tfdt` of the first fragment, timescale ticks.
    pub decode_time: u64,
    /// HLS media sequence number of the first fragment; assigned on insert (input ignored).
    pub media_seq: i64,
    /// Discontinuity sequence number; assigned on insert (input ignored).
    pub disc_seq: i64,
    /// Starts a discontinuity: no earlier segment of its camera, or not [`continuous`] with the
    /// one before. Kept by the index (input ignored).
    pub disc_start: bool,
}

impl SegmentRow {
    /// End of the segment, UTC ns.
    pub fn end_utc_ns(&self) -> i64 {
        self.start_utc_ns + self.duration_ns
    }
}

/// Errors from the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite error.
    #[error("index: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The index was written by a newer edgerec.
    #[error("index schema version {found} is newer than this edgerec supports ({supported})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Latest known version.
        supported: i64,
    },
}

/// What an inserted segment row was given: its id and its sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Row id.
    pub id: i64,
    /// HLS media sequence number of its first fragment.
    pub media_seq: i64,
    /// Discontinuity sequence number.
    pub disc_seq: i64,
    /// Whether it starts a discontinuity.
    pub disc_start: bool,
}

/// The writer's connection to the index.
pub struct Index {
    conn: Connection,
}

const SEGMENT_COLS: &str =
    "id, camera, run_id, start_utc_ns, duration_ns, size_bytes, alloc_bytes, \
     init_size_bytes, fragments, codec, path, state, uploaded_utc_ns, timescale, decode_time, \
     media_seq, disc_seq, disc_start, audio_codec";

fn row_to_segment(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        id: r.get(0)?,
        camera: r.get(1)?,
        run_id: r.get(2)?,
        start_utc_ns: r.get(3)?,
        duration_ns: r.get(4)?,
        size_bytes: r.get(5)?,
        alloc_bytes: r.get(6)?,
        init_size_bytes: r.get(7)?,
        fragments: decode_fragments(&r.get::<_, Vec<u8>>(8)?),
        codec: r.get(9)?,
        audio_codec: r.get(18)?,
        path: r.get(10)?,
        state: SegmentState::from_i64(r.get(11)?),
        uploaded_utc_ns: r.get(12)?,
        timescale: r.get(13)?,
        decode_time: r.get::<_, i64>(14)? as u64,
        media_seq: r.get(15)?,
        disc_seq: r.get(16)?,
        disc_start: r.get(17)?,
    })
}

/// The schema version of an index (`PRAGMA user_version`); errors if it is newer than this
/// edgerec knows.
fn schema_version(conn: &Connection) -> Result<i64, IndexError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(IndexError::TooNew {
            found: version,
            supported,
        });
    }
    Ok(version)
}

impl Index {
    /// Opens (creating if needed) the index and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version = schema_version(&conn)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Index { conn })
    }

    /// Opens an existing index read-only, for readers beside the writer (playback, status,
    /// tests). Errors: the file does not exist, or its schema is newer than this edgerec.
    pub fn open_read_only(path: &Path) -> Result<Index, IndexError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema_version(&conn)?;
        Ok(Index { conn })
    }

    /// Starts a run and returns its id. `reason` is a
    /// [`crate::store::segmenter::RunReason`] name.
    pub fn insert_run(
        &self,
        camera: &str,
        start_utc_ns: i64,
        reason: &str,
    ) -> Result<i64, IndexError> {
        self.conn.execute(
            "INSERT INTO run (camera, start_utc_ns, reason) VALUES (?1, ?2, ?3)",
            params![camera, start_utc_ns, reason],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The segment of `camera` that starts last before `start_utc_ns`, in any state.
    fn predecessor(
        conn: &Connection,
        camera: &str,
        start_utc_ns: i64,
    ) -> rusqlite::Result<Option<SegmentRow>> {
        conn.prepare_cached(&format!(
            "SELECT {SEGMENT_COLS} FROM segment WHERE camera = ?1 AND start_utc_ns < ?2 \
             ORDER BY start_utc_ns DESC LIMIT 1"
        ))?
        .query_row(params![camera, start_utc_ns], row_to_segment)
        .optional()
    }

    /// What a new segment `s` gets from the one before it: the media sequence number (the
    /// previous one's plus its fragment count), the discontinuity sequence number (plus one if
    /// `s` starts a discontinuity) and whether it starts one.
    fn next_seqs(conn: &Connection, s: &SegmentRow) -> rusqlite::Result<(i64, i64, bool)> {
        Ok(match Self::predecessor(conn, &s.camera, s.start_utc_ns)? {
            None => (0, 0, true),
            Some(p) => {
                let disc = !continuous(&p, s);
                (
                    p.media_seq + p.fragments.len() as i64,
                    p.disc_seq + i64::from(disc),
                    disc,
                )
            }
        })
    }

    /// Recomputes `disc_start` of the first segment of `camera` that starts at or after
    /// `from_utc_ns` (`inclusive`) or strictly after it, against its current predecessor: after
    /// a delete, a rewrite or an insert before it.
    fn refresh_disc_start(
        conn: &Connection,
        camera: &str,
        from_utc_ns: i64,
        inclusive: bool,
    ) -> rusqlite::Result<()> {
        let next = conn
            .prepare_cached(&format!(
                "SELECT {SEGMENT_COLS} FROM segment WHERE camera = ?1 \
                 AND (start_utc_ns > ?2 OR (?3 AND start_utc_ns = ?2)) \
                 ORDER BY start_utc_ns LIMIT 1"
            ))?
            .query_row(params![camera, from_utc_ns, inclusive], row_to_segment)
            .optional()?;
        if let Some(n) = next {
            let disc = Self::predecessor(conn, camera, n.start_utc_ns)?
                .is_none_or(|p| !continuous(&p, &n));
            if disc != n.disc_start {
                conn.prepare_cached("UPDATE segment SET disc_start = ?2 WHERE id = ?1")?
                    .execute(params![n.id, disc])?;
            }
        }
        Ok(())
    }

    /// Inserts `s`; returns the new row's id and the sequence numbers it was given.
    fn insert_segment_on(conn: &Connection, s: &SegmentRow) -> rusqlite::Result<Inserted> {
        let (media_seq, disc_seq, disc_start) = Self::next_seqs(conn, s)?;
        conn.execute(
            "INSERT INTO segment (camera, run_id, start_utc_ns, duration_ns, size_bytes, alloc_bytes, \
             init_size_bytes, fragments, codec, path, state, uploaded_utc_ns, timescale, \
             decode_time, media_seq, disc_seq, disc_start, audio_codec) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                s.camera,
                s.run_id,
                s.start_utc_ns,
                s.duration_ns,
                s.size_bytes,
                s.alloc_bytes,
                s.init_size_bytes,
                encode_fragments(&s.fragments),
                s.codec,
                s.path,
                s.state as i64,
                s.uploaded_utc_ns,
                s.timescale,
                s.decode_time as i64,
                media_seq,
                disc_seq,
                disc_start,
                s.audio_codec
            ],
        )?;
        let id = conn.last_insert_rowid();
        // Usually there is no later segment; rebuilds and recovery may insert before one.
        Self::refresh_disc_start(conn, &s.camera, s.start_utc_ns, false)?;
        Ok(Inserted {
            id,
            media_seq,
            disc_seq,
            disc_start,
        })
    }

    fn complete_on(conn: &Connection, s: &SegmentRow) -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE segment SET duration_ns = ?2, size_bytes = ?3, alloc_bytes = ?4, fragments = ?5, \
             state = 1 WHERE id = ?1",
            params![s.id, s.duration_ns, s.size_bytes, s.alloc_bytes, encode_fragments(&s.fragments)],
        )?;
        Ok(())
    }

    /// Inserts a segment row (open or complete) and returns its id.
    pub fn insert_segment(&self, s: &SegmentRow) -> Result<i64, IndexError> {
        Ok(Self::insert_segment_on(&self.conn, s)?.id)
    }

    /// Inserts many rows in one transaction (rebuilds, tests, benchmarks); returns their ids.
    pub fn insert_segments(&mut self, rows: &[SegmentRow]) -> Result<Vec<i64>, IndexError> {
        let tx = self.conn.transaction()?;
        let ids = rows
            .iter()
            .map(|r| Self::insert_segment_on(&tx, r).map(|i| i.id))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(ids)
    }

    /// In one transaction: marks `closed` complete with its final sizes and fragments, and inserts
    /// `opened` (if any) as the next open segment with keep class `opened_keep` ([`Keep::Mode`],
    /// or for an EVR camera transient or clip). This is the one transaction a segment costs.
    /// Returns what `opened` was given on insert.
    pub fn roll(
        &mut self,
        closed: Option<&SegmentRow>,
        opened: Option<&SegmentRow>,
        opened_keep: Keep,
    ) -> Result<Option<Inserted>, IndexError> {
        let tx = self.conn.transaction()?;
        if let Some(c) = closed {
            Self::complete_on(&tx, c)?;
        }
        let id = match opened {
            Some(o) => {
                let i = Self::insert_segment_on(&tx, o)?;
                if opened_keep != Keep::Mode {
                    tx.prepare_cached("UPDATE segment SET keep = ?2 WHERE id = ?1")?
                        .execute(params![i.id, opened_keep as i64])?;
                }
                Some(i)
            }
            None => None,
        };
        tx.commit()?;
        Ok(id)
    }

    /// Playback: the open and complete segments of `camera` that overlap `[from_utc_ns,
    /// to_utc_ns)`, by start. Uses the `(camera, start_utc_ns)` index: the segment that starts
    /// last at or before `from`, then every one that starts before `to`.
    pub fn segments_overlapping(
        &self,
        camera: &str,
        from_utc_ns: i64,
        to_utc_ns: i64,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SEGMENT_COLS} FROM segment WHERE camera = ?1 AND state IN (0, 1) \
             AND start_utc_ns < ?3 AND start_utc_ns >= COALESCE((SELECT start_utc_ns FROM segment \
             WHERE camera = ?1 AND start_utc_ns <= ?2 ORDER BY start_utc_ns DESC LIMIT 1), ?2) \
             ORDER BY start_utc_ns"
        ))?;
        let rows = st.query_map(params![camera, from_utc_ns, to_utc_ns], row_to_segment)?;
        let mut v: Vec<SegmentRow> = rows.collect::<Result<_, _>>()?;
        v.retain(|s| s.end_utc_ns() > from_utc_ns || s.state == SegmentState::Open);
        Ok(v)
    }

    /// Playback: the segments that bound the continuous spans of `camera` within `[from_utc_ns,
    /// to_utc_ns)`, by start, without fragment lists or paths: the last one that starts at or
    /// before `from`, the first one after it, every one that starts a discontinuity in the range
    /// together with the one before it, and the last one that starts before `to`. Consecutive
    /// rows of the answer belong to one span unless the later has `disc_start`, so availableMedia
    /// reads about two rows per gap instead of every segment (the `segment_disc` partial index).
    pub fn span_bounds(
        &self,
        camera: &str,
        from_utc_ns: i64,
        to_utc_ns: i64,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        const COLS: &str =
            "id, run_id, start_utc_ns, duration_ns, init_size_bytes, codec, state, disc_start";
        let slim = |r: &rusqlite::Row<'_>| -> rusqlite::Result<SegmentRow> {
            Ok(SegmentRow {
                id: r.get(0)?,
                camera: camera.to_owned(),
                run_id: r.get(1)?,
                start_utc_ns: r.get(2)?,
                duration_ns: r.get(3)?,
                size_bytes: 0,
                alloc_bytes: 0,
                init_size_bytes: r.get(4)?,
                fragments: Vec::new(),
                codec: r.get(5)?,
                audio_codec: None,
                path: String::new(),
                state: SegmentState::from_i64(r.get(6)?),
                uploaded_utc_ns: None,
                timescale: 0,
                decode_time: 0,
                media_seq: 0,
                disc_seq: 0,
                disc_start: r.get(7)?,
            })
        };
        let mut out: Vec<SegmentRow> = Vec::new();
        let mut last_before = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM segment WHERE camera = ?1 AND state IN (0, 1) \
             AND start_utc_ns <= ?2 ORDER BY start_utc_ns DESC LIMIT 1"
        ))?;
        let mut push = |v: Option<SegmentRow>| out.extend(v);
        push(
            last_before
                .query_row(params![camera, from_utc_ns], slim)
                .optional()?,
        );
        push(
            last_before
                .query_row(params![camera, to_utc_ns - 1], slim)
                .optional()?,
        );
        push(
            self.conn
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM segment WHERE camera = ?1 AND state IN (0, 1) \
                     AND start_utc_ns > ?2 AND start_utc_ns < ?3 ORDER BY start_utc_ns LIMIT 1"
                ))?
                .query_row(params![camera, from_utc_ns, to_utc_ns], slim)
                .optional()?,
        );
        let discs: Vec<SegmentRow> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM segment WHERE camera = ?1 AND disc_start = 1 \
                 AND start_utc_ns > ?2 AND start_utc_ns < ?3 AND state IN (0, 1) \
                 ORDER BY start_utc_ns"
            ))?
            .query_map(params![camera, from_utc_ns, to_utc_ns], slim)?
            .collect::<Result<_, _>>()?;
        for d in discs {
            let before = last_before.query_row(params![camera, d.start_utc_ns - 1], slim);
            out.extend(before.optional()?);
            out.push(d);
        }
        out.sort_by_key(|r| r.start_utc_ns);
        out.dedup_by_key(|r| r.id);
        Ok(out)
    }

    /// Upload: the oldest `limit` complete segments that are not uploaded yet, across cameras,
    /// by start (the `segment_eviction` index). An EVR camera's transient media (no clip covers
    /// it) is never uploaded. `holds`: (camera, t) pairs whose segments ending after `t` (UTC ns)
    /// are not ready yet and are skipped, so that they cannot crowd out other cameras' segments.
    pub fn upload_candidates(
        &self,
        limit: usize,
        holds: &[(String, i64)],
    ) -> Result<Vec<SegmentRow>, IndexError> {
        let mut sql = format!(
            "SELECT {SEGMENT_COLS} FROM segment WHERE state = 1 AND uploaded_utc_ns IS NULL \
             AND keep != 0"
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        for (camera, t) in holds {
            sql += &format!(
                " AND NOT (camera = ?{} AND start_utc_ns + duration_ns > ?{})",
                args.len() + 1,
                args.len() + 2
            );
            args.push(camera.clone().into());
            args.push((*t).into());
        }
        sql += &format!(" ORDER BY start_utc_ns LIMIT ?{}", args.len() + 1);
        args.push((limit as i64).into());
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), row_to_segment)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Upload backlog: complete segments not uploaded yet (transient media excluded), their
    /// bytes, and the start (UTC ns) of the oldest.
    pub fn upload_backlog(&self) -> Result<(u64, u64, Option<i64>), IndexError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), MIN(start_utc_ns) FROM segment \
             WHERE state = 1 AND uploaded_utc_ns IS NULL AND keep != 0",
            )?
            .query_row([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get(2)?,
                ))
            })?)
    }

    /// The upload backlog per camera: (camera, segments, bytes), as [`Self::upload_backlog`]
    /// counts them; cameras with none are left out.
    pub fn upload_backlog_by_camera(&self) -> Result<Vec<(String, u64, u64)>, IndexError> {
        let mut st = self.conn.prepare_cached(
            "SELECT camera, COUNT(*), COALESCE(SUM(size_bytes), 0) FROM segment \
             WHERE state = 1 AND uploaded_utc_ns IS NULL AND keep != 0 GROUP BY camera",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that segment `id` was uploaded at `at_utc_ns` (no-op for a row that is gone).
    pub fn set_uploaded(&self, id: i64, at_utc_ns: i64) -> Result<(), IndexError> {
        self.conn
            .prepare_cached("UPDATE segment SET uploaded_utc_ns = ?2 WHERE id = ?1")?
            .execute(params![id, at_utc_ns])?;
        Ok(())
    }

    /// Stores an event marker; idempotent for the same event, refuses a different one with a
    /// taken id.
    pub fn insert_event(&self, e: &EventRow) -> Result<EventInsert, IndexError> {
        let n = self.conn.execute(
            "INSERT INTO event (camera, event_id, label, time_utc_ns, duration_ns, received_utc_ns, \
             objects) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (camera, event_id) DO NOTHING",
            params![
                e.camera,
                e.id,
                e.label,
                e.time_utc_ns,
                e.duration_ns,
                e.received_utc_ns,
                objects_to_json(&e.objects)
            ],
        )?;
        if n == 1 {
            return Ok(EventInsert::Inserted);
        }
        let same: bool = self.conn.query_row(
            "SELECT label = ?3 AND time_utc_ns = ?4 AND duration_ns IS ?5 FROM event \
             WHERE camera = ?1 AND event_id = ?2",
            params![e.camera, e.id, e.label, e.time_utc_ns, e.duration_ns],
            |r| r.get(0),
        )?;
        Ok(if same {
            EventInsert::Duplicate
        } else {
            EventInsert::Conflict
        })
    }

    /// Events of `camera` that happen within `[from_utc_ns, to_utc_ns]` (an event with a duration
    /// counts if it overlaps), by time; at most `limit`.
    pub fn events_between(
        &self,
        camera: &str,
        from_utc_ns: i64,
        to_utc_ns: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, IndexError> {
        // Events are short next to a day: look back at most 24 h for ones that began earlier.
        let mut st = self.conn.prepare_cached(
            "SELECT camera, event_id, label, time_utc_ns, duration_ns, received_utc_ns, objects \
             FROM event WHERE camera = ?1 AND time_utc_ns <= ?3 AND time_utc_ns >= ?2 - 86400000000000 \
             AND time_utc_ns + COALESCE(duration_ns, 0) >= ?2 ORDER BY time_utc_ns LIMIT ?4",
        )?;
        let rows = st.query_map(params![camera, from_utc_ns, to_utc_ns, limit as i64], |r| {
            Ok(EventRow {
                camera: r.get(0)?,
                id: r.get(1)?,
                label: r.get(2)?,
                time_utc_ns: r.get(3)?,
                duration_ns: r.get(4)?,
                received_utc_ns: r.get(5)?,
                objects: objects_from_json(r.get(6)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Playback: start times (UTC ns) of the first `limit` open or complete segments of `camera`
    /// that start a discontinuity after `after_utc_ns`, in order (the `segment_disc` partial
    /// index).
    pub fn disc_starts_after(
        &self,
        camera: &str,
        after_utc_ns: i64,
        limit: usize,
    ) -> Result<Vec<i64>, IndexError> {
        let mut st = self.conn.prepare_cached(
            "SELECT start_utc_ns FROM segment WHERE camera = ?1 AND disc_start = 1 \
             AND start_utc_ns > ?2 AND state IN (0, 1) ORDER BY start_utc_ns LIMIT ?3",
        )?;
        let rows = st.query_map(params![camera, after_utc_ns, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Playback: the end (UTC ns) of the open or complete segment of `camera` that starts last
    /// before `utc_ns`, if any: where the media before a discontinuity stops.
    pub fn media_end_before(&self, camera: &str, utc_ns: i64) -> Result<Option<i64>, IndexError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT start_utc_ns + duration_ns FROM segment WHERE camera = ?1 \
                 AND start_utc_ns < ?2 AND state IN (0, 1) ORDER BY start_utc_ns DESC LIMIT 1",
            )?
            .query_row(params![camera, utc_ns], |r| r.get(0))
            .optional()?)
    }

    /// Playback: whether any open or complete segment of `camera` overlaps `[from_utc_ns,
    /// to_utc_ns)`. One index lookup: the last segment that starts before `to` (segments of a
    /// camera do not overlap).
    pub fn has_media(
        &self,
        camera: &str,
        from_utc_ns: i64,
        to_utc_ns: i64,
    ) -> Result<bool, IndexError> {
        let end: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT start_utc_ns + duration_ns, state FROM segment WHERE camera = ?1 \
                 AND start_utc_ns < ?2 AND state IN (0, 1) ORDER BY start_utc_ns DESC LIMIT 1",
            )?
            .query_row(params![camera, to_utc_ns], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(end.is_some_and(|(e, state)| e > from_utc_ns || state == 0))
    }

    /// Playback: the start of the first and the end of the last open or complete segment of
    /// `camera` (UTC ns), if it has any.
    pub fn media_bounds(&self, camera: &str) -> Result<Option<(i64, i64)>, IndexError> {
        let first: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT start_utc_ns FROM segment WHERE camera = ?1 AND state IN (0, 1) \
                 ORDER BY start_utc_ns LIMIT 1",
            )?
            .query_row([camera], |r| r.get(0))
            .optional()?;
        let last: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT start_utc_ns + duration_ns FROM segment WHERE camera = ?1 \
                 AND state IN (0, 1) ORDER BY start_utc_ns DESC LIMIT 1",
            )?
            .query_row([camera], |r| r.get(0))
            .optional()?;
        Ok(first.zip(last))
    }

    /// Per camera: (camera, segments, bytes held) over rows that still have a file.
    pub fn camera_totals(&self) -> Result<Vec<(String, i64, i64)>, IndexError> {
        let mut st = self.conn.prepare_cached(
            "SELECT camera, COUNT(*), COALESCE(SUM(size_bytes), 0) FROM segment \
             WHERE state IN (0, 1) GROUP BY camera ORDER BY camera",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The row with this id.
    pub fn segment(&self, id: i64) -> Result<Option<SegmentRow>, IndexError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {SEGMENT_COLS} FROM segment WHERE id = ?1"))?
            .query_row([id], row_to_segment)
            .optional()?)
    }

    /// Rows in a state, oldest first.
    pub fn segments_in_state(&self, state: SegmentState) -> Result<Vec<SegmentRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SEGMENT_COLS} FROM segment WHERE state = ?1 ORDER BY start_utc_ns"
        ))?;
        let rows = st.query_map([state as i64], row_to_segment)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every row, by camera then start.
    pub fn all_segments(&self) -> Result<Vec<SegmentRow>, IndexError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {SEGMENT_COLS} FROM segment ORDER BY camera, start_utc_ns"
        ))?;
        let rows = st.query_map([], row_to_segment)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` complete segments in eviction order (DESIGN section 5): by keep class
    /// (transient, uploaded, not uploaded, clip not uploaded), oldest first in each. Uses the
    /// `segment_keep_class` index of [`SCHEMA_V5`] (same expression).
    pub fn eviction_candidates(&self, limit: usize) -> Result<Vec<SegmentRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SEGMENT_COLS} FROM segment WHERE state = 1 \
             ORDER BY (CASE WHEN keep = 0 THEN 0 WHEN uploaded_utc_ns IS NOT NULL THEN 1 \
             WHEN keep = 1 THEN 2 ELSE 3 END), start_utc_ns LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], row_to_segment)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Complete segments of `camera` past retention, oldest first: clip media (keep class
    /// [`Keep::Clip`]) that ended at or before `clip_before_utc_ns`, other media that ended at or
    /// before `before_utc_ns`.
    pub fn expired(
        &self,
        camera: &str,
        before_utc_ns: i64,
        clip_before_utc_ns: i64,
        limit: usize,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SEGMENT_COLS} FROM segment WHERE state = 1 AND camera = ?1 \
             AND start_utc_ns + duration_ns <= MAX(?2, ?3) \
             AND start_utc_ns + duration_ns <= (CASE WHEN keep = 2 THEN ?3 ELSE ?2 END) \
             ORDER BY start_utc_ns LIMIT ?4"
        ))?;
        let rows = st.query_map(
            params![camera, before_utc_ns, clip_before_utc_ns, limit as i64],
            row_to_segment,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks rows as being deleted, in one transaction (step 1 of DESIGN section 4, invariant 4).
    pub fn mark_deleting(&mut self, ids: &[i64]) -> Result<(), IndexError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE segment SET state = 2 WHERE id = ?1")?;
            for id in ids {
                st.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops rows, in one transaction (last step of a deletion, or a row whose file is gone).
    pub fn delete_rows(&mut self, ids: &[i64]) -> Result<(), IndexError> {
        let tx = self.conn.transaction()?;
        {
            let mut find =
                tx.prepare_cached("SELECT camera, start_utc_ns FROM segment WHERE id = ?1")?;
            let mut st = tx.prepare_cached("DELETE FROM segment WHERE id = ?1")?;
            let mut gone = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(at) = find
                    .query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .optional()?
                {
                    gone.push(at);
                }
                st.execute([id])?;
            }
            // The segment after a deleted one now follows a hole (or nothing).
            for (camera, start) in &gone {
                Self::refresh_disc_start(&tx, camera, *start, false)?;
            }
            tx.execute(
                "DELETE FROM run WHERE NOT EXISTS (SELECT 1 FROM segment WHERE run_id = run.id) \
                 AND id NOT IN (SELECT MAX(id) FROM run GROUP BY camera)",
                [],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces a row's sizes, duration, fragments and state (recovery and repair).
    pub fn rewrite_segment(&self, s: &SegmentRow) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE segment SET duration_ns = ?2, size_bytes = ?3, alloc_bytes = ?4, fragments = ?5, \
             state = ?6, init_size_bytes = ?7, codec = ?8, timescale = ?9, decode_time = ?10, \
             audio_codec = ?11 WHERE id = ?1",
            params![
                s.id,
                s.duration_ns,
                s.size_bytes,
                s.alloc_bytes,
                encode_fragments(&s.fragments),
                s.state as i64,
                s.init_size_bytes,
                s.codec,
                s.timescale,
                s.decode_time as i64,
                s.audio_codec
            ],
        )?;
        // Its codec, init size or end may have changed: its own flag and its successor's.
        Self::refresh_disc_start(&self.conn, &s.camera, s.start_utc_ns, true)?;
        Self::refresh_disc_start(&self.conn, &s.camera, s.start_utc_ns, false)?;
        Ok(())
    }

    /// Sum of `alloc_bytes` over all rows that still have a file.
    pub fn total_alloc_bytes(&self) -> Result<u64, IndexError> {
        let v: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(alloc_bytes), 0) FROM segment",
            [],
            |r| r.get(0),
        )?;
        Ok(v.max(0) as u64)
    }

    /// The camera's segment with the latest start before `utc_ns`, if any.
    pub fn segment_before(
        &self,
        camera: &str,
        utc_ns: i64,
    ) -> Result<Option<SegmentRow>, IndexError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {SEGMENT_COLS} FROM segment WHERE camera = ?1 AND start_utc_ns < ?2 \
                     ORDER BY start_utc_ns DESC LIMIT 1"
                ),
                params![camera, utc_ns],
                row_to_segment,
            )
            .optional()?)
    }

    /// The newest segment row of a camera, if any.
    pub fn newest_segment(&self, camera: &str) -> Result<Option<SegmentRow>, IndexError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {SEGMENT_COLS} FROM segment WHERE camera = ?1 ORDER BY start_utc_ns DESC LIMIT 1"
                ),
                [camera],
                row_to_segment,
            )
            .optional()?)
    }

    /// Whether a row exists for this relative path.
    pub fn has_path(&self, path: &str) -> Result<bool, IndexError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM segment WHERE path = ?1", [path], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Cameras that have rows.
    pub fn cameras(&self) -> Result<Vec<String>, IndexError> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT camera FROM segment ORDER BY camera")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Runs of a camera as (id, start_utc_ns, reason), oldest first.
    pub fn runs(&self, camera: &str) -> Result<Vec<(i64, i64, String)>, IndexError> {
        let mut st = self
            .conn
            .prepare("SELECT id, start_utc_ns, reason FROM run WHERE camera = ?1 ORDER BY id")?;
        let rows = st.query_map([camera], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves a segment to another run (used by `fsck --rebuild`).
    pub fn set_run(&self, segment_id: i64, run_id: i64) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE segment SET run_id = ?2 WHERE id = ?1",
            params![segment_id, run_id],
        )?;
        Ok(())
    }

    /// Deletes runs that have no segment.
    pub fn drop_empty_runs(&self) -> Result<(), IndexError> {
        self.conn.execute(
            "DELETE FROM run WHERE NOT EXISTS (SELECT 1 FROM segment WHERE run_id = run.id)",
            [],
        )?;
        Ok(())
    }

    /// Deletes every row (used by `fsck --rebuild` before re-inserting from the files).
    pub fn clear(&mut self) -> Result<(), IndexError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch("DELETE FROM segment; DELETE FROM run;")?;
        tx.commit()?;
        Ok(())
    }

    /// Checkpoints the WAL into the main file (on clean shutdown).
    pub fn checkpoint(&self) -> Result<(), IndexError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_schema_comment_names_every_run_reason() {
        use crate::store::segmenter::RunReason;
        let line = SCHEMA_V1
            .lines()
            .find(|l| l.trim_start().starts_with("reason"))
            .unwrap();
        for r in RunReason::ALL {
            assert!(
                line.contains(&format!("'{}'", r.as_str())),
                "{r} missing: {line}"
            );
        }
        assert_eq!(line.matches('\'').count(), 2 * RunReason::ALL.len());
    }
    use super::*;

    fn seg(camera: &str, run: i64, start: i64, path: &str) -> SegmentRow {
        SegmentRow {
            id: 0,
            camera: camera.into(),
            run_id: run,
            start_utc_ns: start,
            duration_ns: 30_000_000_000,
            size_bytes: 1000,
            alloc_bytes: 4096,
            init_size_bytes: 100,
            fragments: vec![FragmentEntry {
                size_bytes: 900,
                duration_us: 30_000_000,
            }],
            codec: "avc1".into(),
            audio_codec: None,
            path: path.into(),
            state: SegmentState::Complete,
            uploaded_utc_ns: None,
            timescale: 90_000,
            decode_time: 0,
            media_seq: 0,
            disc_seq: 0,
            disc_start: false,
        }
    }

    /// DESIGN section 5 with EVR: transient first, then uploaded, then not uploaded, then clip
    /// media not uploaded; oldest first in each class. Retention keeps clip media longer, and
    /// transient media is never offered for upload.
    #[test]
    fn keep_classes_order_eviction_retention_and_upload() {
        const S: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.sqlite3")).unwrap();
        let r = ix.insert_run("a", 0, "connect").unwrap();
        // (name, start s, keep, uploaded)
        let rows = [
            ("clip-old", 0, Keep::Clip, false),
            ("cvr-old", 30, Keep::Mode, false),
            ("clip-up", 60, Keep::Clip, true),
            ("cvr-up", 90, Keep::Mode, true),
            ("ring", 120, Keep::Transient, false),
            ("cvr-new", 150, Keep::Mode, false),
        ];
        for (name, start, keep, up) in rows {
            let mut s = seg("a", r, start * S, name);
            s.uploaded_utc_ns = up.then_some(1);
            let id = ix.roll(None, Some(&s), keep).unwrap().unwrap().id;
            ix.rewrite_segment(&SegmentRow { id, ..s }).unwrap();
        }
        let order: Vec<String> = ix
            .eviction_candidates(10)
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(
            order,
            ["ring", "clip-up", "cvr-up", "cvr-old", "cvr-new", "clip-old"]
        );
        let up: Vec<String> = ix
            .upload_candidates(10, &[])
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(up, ["clip-old", "cvr-old", "cvr-new"]);
        // A hold on the camera from 40 s on: only what ended by then.
        let held: Vec<String> = ix
            .upload_candidates(10, &[("a".into(), 40 * S)])
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(held, ["clip-old"]);
        assert_eq!(ix.upload_backlog().unwrap().0, 3);
        // Retention at 100 s, clip retention at 10 s: clip media that ended by 10 s only.
        let expired: Vec<String> = ix
            .expired("a", 100 * S, 10 * S, 10)
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(expired, ["cvr-old"]);
        let expired: Vec<String> = ix
            .expired("a", 100 * S, 100 * S, 10)
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(expired, ["clip-old", "cvr-old", "clip-up"]);
        let ring: Vec<String> = ix
            .transient_expired("a", 200 * S, 10)
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(ring, ["ring"]);
        // A clip marks what it covers, including the open segment.
        assert_eq!(ix.mark_clip_media("a", 125 * S, 160 * S).unwrap(), 2);
        assert!(ix.transient_expired("a", 200 * S, 10).unwrap().is_empty());
        // The camera became EVR: what its mode kept is transient now, clip media stays.
        assert_eq!(ix.align_keep_with_mode("a", true).unwrap(), 2);
        let keeps: Vec<Keep> = ix
            .all_segments()
            .unwrap()
            .iter()
            .map(|s| ix.keep_of(s.id).unwrap().unwrap())
            .collect();
        assert_eq!(
            keeps,
            [
                Keep::Clip,
                Keep::Transient,
                Keep::Clip,
                Keep::Transient,
                Keep::Clip,
                Keep::Clip
            ]
        );
    }

    #[test]
    fn migrations_and_eviction_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.sqlite3");
        let ix = Index::open(&p).unwrap();
        let r = ix.insert_run("a", 0, "connect").unwrap();
        let a1 = ix.insert_segment(&seg("a", r, 10, "a1")).unwrap();
        let mut up = seg("a", r, 20, "a2");
        up.uploaded_utc_ns = Some(99);
        let a2 = ix.insert_segment(&up).unwrap();
        let a3 = ix.insert_segment(&seg("a", r, 5, "a3")).unwrap();
        let order: Vec<i64> = ix
            .eviction_candidates(10)
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(order, vec![a2, a3, a1], "uploaded first, then oldest first");
        drop(ix);
        let mut ix = Index::open(&p).unwrap(); // reopening does not re-run migrations
        assert_eq!(ix.total_alloc_bytes().unwrap(), 3 * 4096);
        ix.mark_deleting(&[a1]).unwrap();
        assert_eq!(
            ix.segments_in_state(SegmentState::Deleting).unwrap()[0].id,
            a1
        );
        ix.delete_rows(&[a1]).unwrap();
        assert_eq!(ix.all_segments().unwrap().len(), 2);
    }

    #[test]
    fn roll_closes_and_opens_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.sqlite3")).unwrap();
        let r = ix.insert_run("a", 0, "connect").unwrap();
        let mut open = seg("a", r, 0, "p0");
        open.state = SegmentState::Open;
        open.id = ix.insert_segment(&open).unwrap();
        open.fragments.push(FragmentEntry {
            size_bytes: 5,
            duration_us: 7,
        });
        let mut next = seg("a", r, 30, "p1");
        next.state = SegmentState::Open;
        let id = ix
            .roll(Some(&open), Some(&next), Keep::Mode)
            .unwrap()
            .unwrap()
            .id;
        let all = ix.all_segments().unwrap();
        assert_eq!(all[0].state, SegmentState::Complete);
        assert_eq!(all[0].fragments.len(), 2);
        assert_eq!(all[1].id, id);
        assert_eq!(all[1].state, SegmentState::Open);
    }

    fn flags(ix: &Index) -> Vec<(i64, bool)> {
        ix.all_segments()
            .unwrap()
            .iter()
            .map(|s| (s.start_utc_ns / 1_000_000_000, s.disc_start))
            .collect()
    }

    #[test]
    fn discontinuities_are_kept_on_insert_delete_and_rewrite() {
        const S: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.sqlite3")).unwrap();
        let r1 = ix.insert_run("a", 0, "connect").unwrap();
        let r2 = ix.insert_run("a", 130 * S, "reconnect").unwrap();
        let mut ids = Vec::new();
        for (run, start) in [(r1, 0), (r1, 30), (r1, 60), (r1, 100), (r2, 130), (r2, 160)] {
            let mut row = seg("a", run, start * S, &format!("p{start}"));
            if start == 30 {
                row.start_utc_ns += GAP_TOLERANCE_NS; // a 50 ms hole is no gap
            }
            ids.push(ix.insert_segment(&row).unwrap());
        }
        ix.insert_segment(&seg("b", r1, 30 * S, "b30")).unwrap(); // other cameras do not count
        let want = [
            (0, true),
            (30, false),
            (60, false),
            (100, true),
            (130, true),
            (160, false),
            (30, true), // camera b
        ];
        assert_eq!(flags(&ix), want);
        // Deleting a segment makes the next one follow a hole.
        ix.delete_rows(&[ids[1]]).unwrap();
        assert!(flags(&ix).contains(&(60, true)));
        // Filling it again (a rebuild inserting out of order) joins them again.
        ix.insert_segment(&seg("a", r1, 30 * S, "p30b")).unwrap();
        assert!(flags(&ix).contains(&(60, false)) && flags(&ix).contains(&(30, false)));
        // A rewrite that changes the init segment separates it from its successor.
        let mut s130 = ix.segment(ids[4]).unwrap().unwrap();
        s130.init_size_bytes = 200;
        ix.rewrite_segment(&s130).unwrap();
        assert!(flags(&ix).contains(&(160, true)));
        // Deleting the first segment leaves the next one first: a discontinuity by definition.
        ix.delete_rows(&[ids[0]]).unwrap();
        assert!(flags(&ix).contains(&(30, true)));
    }

    #[test]
    fn span_bounds_reads_only_gap_boundaries_and_gives_the_same_spans() {
        use crate::playback::timeline::spans;
        const S: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.sqlite3")).unwrap();
        let r = ix.insert_run("a", 0, "connect").unwrap();
        let rows: Vec<SegmentRow> = (0..100)
            .map(|i| {
                // Holes of 2 s before segments 40 and 70.
                let start = i * 30 * S
                    + if i >= 70 {
                        4 * S
                    } else if i >= 40 {
                        2 * S
                    } else {
                        0
                    };
                seg("a", r, start, &format!("p{i}"))
            })
            .collect();
        ix.insert_segments(&rows).unwrap();
        for (from, to) in [
            (0, 4000 * S),
            (45 * S, 2500 * S),
            (1200 * S, 1201 * S),
            (1201 * S, 2101 * S),
        ] {
            let all = ix.segments_overlapping("a", from, to).unwrap();
            let bounds = ix.span_bounds("a", from, to).unwrap();
            assert!(bounds.len() <= 7, "{} rows", bounds.len());
            assert_eq!(
                spans(&bounds, from, to),
                spans(&all, from, to),
                "{from}..{to}"
            );
        }
        assert_eq!(
            spans(&ix.span_bounds("a", 0, 4000 * S).unwrap(), 0, 4000 * S).len(),
            3
        );
    }

    #[test]
    fn migration_to_v3_finds_existing_discontinuities() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.sqlite3");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(SCHEMA_V2).unwrap();
            c.execute_batch(
                "INSERT INTO run VALUES (1, 'a', 0, 'connect'), (2, 'a', 0, 'reconnect'); \
                 INSERT INTO segment (camera, run_id, start_utc_ns, duration_ns, size_bytes, \
                 alloc_bytes, init_size_bytes, fragments, codec, path, state) VALUES \
                 ('a', 1, 0, 30000000000, 1, 1, 1, x'', 'avc1', 'p0', 1), \
                 ('a', 1, 30000000000, 30000000000, 1, 1, 1, x'', 'avc1', 'p1', 1), \
                 ('a', 1, 61000000000, 30000000000, 1, 1, 1, x'', 'avc1', 'p2', 1), \
                 ('a', 2, 91000000000, 30000000000, 1, 1, 1, x'', 'avc1', 'p3', 1), \
                 ('a', 2, 121000000000, 30000000000, 1, 1, 2, x'', 'avc1', 'p4', 1); \
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let ix = Index::open(&p).unwrap();
        assert_eq!(
            flags(&ix),
            [(0, true), (30, false), (61, true), (91, true), (121, true)]
        );
    }
}
