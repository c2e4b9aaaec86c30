//! The storage writer: the one thread that writes the card (DESIGN section 3).
//!
//! Ingest threads hand it init segments and fragments through a byte-bounded queue
//! ([`WriterHandle`]; a full queue drops the fragment and starts a new run, it never blocks a
//! pipeline). The writer appends fragments to each camera's open segment, rolls segments at
//! `segment_length` on a fragment boundary, syncs per `sync_interval`, evicts before a write would
//! pass the size limit or the free-space floor (DESIGN section 5), applies retention, and commits
//! one index transaction per segment. Crash-safe order (DESIGN section 4, invariant 3): the file is
//! created with `O_EXCL`, written and `fdatasync`ed, its directory `fsync`ed, then its row is
//! committed; closing syncs again before the row is marked complete.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{debug, error, info, warn};

use super::fsutil::{self, allocated_bytes, fsync_dir, is_enospc, round_up};
use super::layout::{self, segment_rel_path};
use super::live::LiveSegments;
use super::{Store, StoreError};
use crate::index::{FragmentEntry, Inserted, SegmentRow, SegmentState};

/// Bytes of media that may wait in the writer's queue before fragments are dropped.
pub const DEFAULT_QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// The bytes of one fragment, written without copying where the source allows it.
pub trait Payload: Send + 'static {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes all bytes to `f` at its current position.
    fn write_to(&self, f: &mut File) -> io::Result<()>;
}

impl Payload for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn write_to(&self, f: &mut File) -> io::Result<()> {
        f.write_all(self)
    }
}

/// One fragment (`moof` + `mdat`, starting at a keyframe) from a camera.
pub struct Fragment {
    /// Camera id.
    pub camera: Arc<str>,
    /// The bytes.
    pub payload: Box<dyn Payload>,
    /// Wall-clock time of the fragment's first sample, UTC ns since 1970.
    pub utc_ns: i64,
    /// Duration in ns.
    pub duration_ns: u64,
    /// Base media decode time (`tfdt`) in the track's timescale ticks, 0 if unknown.
    pub decode_time: u64,
    /// `Some(reason)` if this fragment starts a new run (`connect`, `reconnect`, `clock_step`,
    /// `restart`, `dropped`): the media timeline is not continuous with the previous fragment.
    pub new_run: Option<&'static str>,
}

/// Messages to the writer.
pub enum WriterMsg {
    /// A camera's init segment (`ftyp` + `moov`); every later segment of the camera starts with it.
    Init {
        /// Camera id.
        camera: Arc<str>,
        /// The init segment bytes.
        data: Vec<u8>,
    },
    /// A fragment.
    Fragment(Fragment),
    /// The camera stopped or was lost: close its open segment (the next fragment starts a new run).
    EndRun {
        /// Camera id.
        camera: Arc<str>,
    },
    /// Store an event marker; the outcome goes to `reply`.
    AddEvent {
        /// The event.
        event: crate::index::EventRow,
        /// Where the outcome goes (an index error as text).
        reply: std::sync::mpsc::SyncSender<Result<crate::index::EventInsert, String>>,
    },
    /// The uploader stored segment `id` at `at_utc_ns` (UTC ns).
    Uploaded {
        /// Segment row id.
        id: i64,
        /// When the store confirmed it.
        at_utc_ns: i64,
    },
    /// Close every open segment, commit, and end the thread.
    Shutdown,
}

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

/// How many recent eviction records [`WriterStats::evictions_since`] can return.
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
    /// Fragments dropped (queue full or no space after eviction).
    pub dropped_fragments: AtomicU64,
    /// Storage errors other than a full disk.
    pub storage_errors: AtomicU64,
    /// Bytes in use: media (allocated) plus index, as last computed.
    pub used_bytes: AtomicU64,
    /// Increments on every loop turn that made progress; a watchdog compares it over time.
    pub heartbeat: AtomicU64,
    /// Eviction totals per camera id.
    pub evictions: std::sync::Mutex<std::collections::BTreeMap<String, EvictionTotals>>,
    /// The last [`EVICTION_LOG_LEN`] evictions.
    pub eviction_log: std::sync::Mutex<std::collections::VecDeque<EvictionRecord>>,
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
        let log = self.eviction_log.lock().unwrap_or_else(|e| e.into_inner());
        let lost = log.front().map_or(0, |f| f.seq.saturating_sub(seq + 1));
        (log.iter().filter(|r| r.seq > seq).cloned().collect(), lost)
    }

    fn count_eviction(&self, v: &SegmentRow) {
        {
            let mut log = self.eviction_log.lock().unwrap_or_else(|e| e.into_inner());
            let seq = log.back().map_or(1, |b| b.seq + 1);
            if log.len() == EVICTION_LOG_LEN {
                log.pop_front();
            }
            log.push_back(EvictionRecord {
                seq,
                camera: v.camera.clone(),
                start_utc_ns: v.start_utc_ns,
                end_utc_ns: v.end_utc_ns(),
                bytes: v.alloc_bytes.max(0) as u64,
                uploaded: v.uploaded_utc_ns.is_some(),
            });
        }
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

/// Per-camera settings the writer needs.
#[derive(Debug, Clone)]
pub struct CameraPolicy {
    /// Roll a segment once it holds at least this much media.
    pub segment_length: Duration,
    /// Delete media older than this.
    pub retention: Option<Duration>,
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The SQLite index file (its size counts toward the limit).
    pub index_path: PathBuf,
    /// Limit for media (allocated) plus index, bytes.
    pub max_size_bytes: u64,
    /// Free space to keep on the filesystem, bytes.
    pub min_free_bytes: u64,
    /// `fdatasync` the open segment when the last sync is at least this old (zero: every fragment).
    pub sync_interval: Duration,
    /// Per camera.
    pub cameras: HashMap<String, CameraPolicy>,
    /// Camera used for unknown ids (tests, cameras added later).
    pub default_policy: CameraPolicy,
}

/// Sending side of the writer queue; cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<WriterMsg>,
    queued_bytes: Arc<AtomicU64>,
    max_queued_bytes: u64,
    stats: Arc<WriterStats>,
    live: LiveSegments,
}

impl WriterHandle {
    /// Queues a fragment without blocking. Returns false (and counts a drop) if the queue holds
    /// `max_queued_bytes` already; the caller must then mark its next fragment as a new run.
    pub fn send_fragment(&self, f: Fragment) -> bool {
        let n = f.payload.len() as u64;
        if self.queued_bytes.load(Ordering::Relaxed) + n > self.max_queued_bytes {
            self.stats.dropped_fragments.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.queued_bytes.fetch_add(n, Ordering::Relaxed);
        if self.tx.try_send(WriterMsg::Fragment(f)).is_err() {
            self.queued_bytes.fetch_sub(n, Ordering::Relaxed);
            self.stats.dropped_fragments.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Queues a control message without blocking; false if the queue is full (the caller
    /// reports that it could not be done now).
    pub fn try_send(&self, m: WriterMsg) -> bool {
        self.tx.try_send(m).is_ok()
    }

    /// Sends a control message (init segment, end of run, shutdown); blocks only if the
    /// message-count bound is reached, which fragments alone cannot cause.
    pub fn send(&self, m: WriterMsg) {
        let _ = self.tx.send(m);
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// The open segments, fragment by fragment, for live playback.
    pub fn live(&self) -> &LiveSegments {
        &self.live
    }
}

struct OpenSegment {
    row: SegmentRow,
    file: File,
    abs: PathBuf,
    last_sync: Instant,
    synced: bool,
}

#[derive(Default)]
struct CamState {
    /// The camera's init segment (shared by every segment of the run, not copied) and its
    /// sample entry four-cc and media timescale, read once when it arrives.
    init: Option<(Arc<[u8]>, String, u32)>,
    run_id: Option<i64>,
    open: Option<OpenSegment>,
    pending_reason: Option<&'static str>,
}

/// The writer; run it with [`Writer::spawn`].
pub struct Writer {
    store: Store,
    cfg: WriterConfig,
    cams: HashMap<Arc<str>, CamState>,
    stats: Arc<WriterStats>,
    live: LiveSegments,
    queued_bytes: Arc<AtomicU64>,
    complete_alloc: u64,
    block_size: u64,
    last_housekeeping: Instant,
}

impl Writer {
    /// Creates a writer over a recovered store.
    pub fn new(mut store: Store, cfg: WriterConfig) -> Result<Writer, StoreError> {
        let complete_alloc = store.index().total_alloc_bytes()?;
        let block_size = fsutil::fs_stats(store.root())
            .map(|s| s.block_size)
            .unwrap_or(4096);
        Ok(Writer {
            store,
            cfg,
            cams: HashMap::new(),
            stats: Arc::new(WriterStats::default()),
            live: LiveSegments::new(),
            queued_bytes: Arc::new(AtomicU64::new(0)),
            complete_alloc,
            block_size,
            last_housekeeping: Instant::now() - Duration::from_secs(3600),
        })
    }

    /// Starts the writer thread. Returns the handle for producers and the thread's join handle.
    pub fn spawn(self) -> io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let handle = WriterHandle {
            tx,
            queued_bytes: self.queued_bytes.clone(),
            max_queued_bytes: DEFAULT_QUEUE_BYTES,
            stats: self.stats.clone(),
            live: self.live.clone(),
        };
        let jh = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || self.run(rx))?;
        Ok((handle, jh))
    }

    fn run(mut self, rx: Receiver<WriterMsg>) {
        self.housekeeping();
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(WriterMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.last_housekeeping.elapsed() >= Duration::from_secs(10) {
                self.housekeeping();
            }
            self.stats.heartbeat.fetch_add(1, Ordering::Relaxed);
        }
        let cams: Vec<Arc<str>> = self.cams.keys().cloned().collect();
        for c in cams {
            self.end_run(&c);
        }
        if let Err(e) = self.store.index().checkpoint() {
            warn!("index checkpoint at shutdown: {e}");
        }
        info!("storage writer stopped; all segments closed");
    }

    fn handle(&mut self, m: WriterMsg) {
        match m {
            WriterMsg::Init { camera, data } => {
                let st = self.cams.entry(camera).or_default();
                let (codec, timescale) = codec_of(&data);
                st.init = Some((Arc::from(data), codec, timescale));
            }
            WriterMsg::Fragment(f) => {
                let n = f.payload.len() as u64;
                self.on_fragment(f);
                self.queued_bytes.fetch_sub(n, Ordering::Relaxed);
            }
            WriterMsg::EndRun { camera } => self.end_run(&camera),
            WriterMsg::AddEvent { event, reply } => {
                let r = self
                    .store
                    .index()
                    .insert_event(&event)
                    .map_err(|e| e.to_string());
                let _ = reply.try_send(r);
            }
            WriterMsg::Uploaded { id, at_utc_ns } => {
                if let Err(e) = self.store.index().set_uploaded(id, at_utc_ns) {
                    warn!(segment = id, "cannot record the upload: {e}");
                }
            }
            WriterMsg::Shutdown => {}
        }
    }

    fn policy(&self, camera: &str) -> &CameraPolicy {
        self.cfg
            .cameras
            .get(camera)
            .unwrap_or(&self.cfg.default_policy)
    }

    /// Closes a camera's open segment and forgets its run.
    fn end_run(&mut self, camera: &Arc<str>) {
        let open = self.cams.get_mut(camera).and_then(|c| {
            c.run_id = None;
            c.open.take()
        });
        if let Some(o) = open {
            if let Err(e) = self.close_segment(o, None) {
                self.storage_error(camera, &e);
            }
            self.live.closed(camera);
        }
    }

    fn storage_error(&self, camera: &str, e: &dyn std::fmt::Display) {
        self.stats.storage_errors.fetch_add(1, Ordering::Relaxed);
        error!(camera, "storage error: {e}");
    }

    /// Syncs and closes `o`, then commits it as complete together with `next` (if any) as the
    /// next open row; returns what the new row was given.
    fn close_segment(
        &mut self,
        mut o: OpenSegment,
        next: Option<&SegmentRow>,
    ) -> Result<Option<Inserted>, StoreError> {
        if !o.synced {
            o.file.sync_data().map_err(super::io_at(&o.abs))?;
        }
        if let Some(d) = o.abs.parent() {
            fsync_dir(d).map_err(super::io_at(d))?;
        }
        let meta = o.file.metadata().map_err(super::io_at(&o.abs))?;
        o.row.alloc_bytes =
            allocated_bytes(&meta).max(round_up(meta.len(), self.block_size)) as i64;
        o.row.state = SegmentState::Complete;
        let inserted = self.store.index().roll(Some(&o.row), next)?;
        self.complete_alloc += o.row.alloc_bytes as u64;
        self.stats.segments_closed.fetch_add(1, Ordering::Relaxed);
        debug!(camera = %o.row.camera, path = %o.row.path, bytes = o.row.size_bytes,
               duration_ms = o.row.duration_ns / 1_000_000, "segment closed");
        Ok(inserted)
    }

    fn open_alloc(&self) -> u64 {
        self.cams
            .values()
            .filter_map(|c| c.open.as_ref())
            .map(|o| round_up(o.row.size_bytes as u64, self.block_size))
            .sum()
    }

    /// Evicts whole complete segments, oldest first (uploaded ones before the others), until `n`
    /// more bytes fit under the size limit and above the free-space floor. Returns false if the
    /// room cannot be made (only open segments left).
    fn ensure_space(&mut self, n: u64) -> bool {
        let n = round_up(n, self.block_size);
        loop {
            let used =
                self.complete_alloc + self.open_alloc() + Store::index_bytes(&self.cfg.index_path);
            self.stats.used_bytes.store(used, Ordering::Relaxed);
            let over = (used + n).saturating_sub(self.cfg.max_size_bytes);
            let free = fsutil::fs_stats(self.store.root())
                .map(|s| s.free_bytes)
                .unwrap_or(u64::MAX);
            let short = (self.cfg.min_free_bytes + n).saturating_sub(free);
            let need = over.max(short);
            if need == 0 {
                return true;
            }
            let why = if over >= short {
                "size limit"
            } else {
                "free-space floor"
            };
            if !self.evict(need, why) {
                return false;
            }
        }
    }

    /// Deletes at least `need` allocated bytes of complete segments in eviction order. Returns
    /// false if there was nothing to delete.
    fn evict(&mut self, need: u64, why: &str) -> bool {
        let candidates = match self.store.index().eviction_candidates(64) {
            Ok(c) => c,
            Err(e) => {
                self.storage_error("-", &e);
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
        self.live
            .deleted(&victims.iter().map(|v| v.id).collect::<Vec<_>>());
        match self.store.delete_segments(&victims) {
            Ok(d) => {
                self.complete_alloc = self.complete_alloc.saturating_sub(d.alloc_bytes);
                self.stats
                    .evicted_segments
                    .fetch_add(d.segments, Ordering::Relaxed);
                self.stats
                    .evicted_bytes
                    .fetch_add(d.alloc_bytes, Ordering::Relaxed);
                for v in &victims {
                    self.stats.count_eviction(v);
                    let (s, e) = (layout::utc(v.start_utc_ns), layout::utc(v.end_utc_ns()));
                    if v.uploaded_utc_ns.is_none() {
                        info!(camera = %v.camera, from = %s, to = %e, bytes = v.alloc_bytes,
                              uploaded = false, "evicted ({why})");
                    } else {
                        debug!(camera = %v.camera, from = %s, to = %e, bytes = v.alloc_bytes,
                               uploaded = true, "evicted ({why})");
                    }
                }
                true
            }
            Err(e) => {
                self.storage_error("-", &e);
                false
            }
        }
    }

    /// Retention: deletes complete segments older than each camera's `retention`.
    fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        let now = now_utc_ns();
        let with_retention: Vec<(String, Duration)> = self
            .cfg
            .cameras
            .iter()
            .filter_map(|(c, p)| p.retention.map(|r| (c.clone(), r)))
            .collect();
        for (camera, retention) in with_retention {
            let before = now - retention.as_nanos() as i64;
            loop {
                let expired = match self.store.index().expired(&camera, before, 256) {
                    Ok(v) if !v.is_empty() => v,
                    Ok(_) => break,
                    Err(e) => {
                        self.storage_error(&camera, &e);
                        break;
                    }
                };
                self.live
                    .deleted(&expired.iter().map(|v| v.id).collect::<Vec<_>>());
                match self.store.delete_segments(&expired) {
                    Ok(d) => {
                        self.complete_alloc = self.complete_alloc.saturating_sub(d.alloc_bytes);
                        self.stats
                            .expired_segments
                            .fetch_add(d.segments, Ordering::Relaxed);
                        info!(
                            camera,
                            segments = d.segments,
                            "retention deleted media older than {:?}",
                            retention
                        );
                    }
                    Err(e) => {
                        self.storage_error(&camera, &e);
                        break;
                    }
                }
            }
        }
    }

    fn on_fragment(&mut self, f: Fragment) {
        let camera = f.camera.clone();
        let seg_len = self.policy(&camera).segment_length.as_nanos() as i64;
        let st = self.cams.entry(camera.clone()).or_default();
        let Some(init_len) = st.init.as_ref().map(|(i, _, _)| i.len()) else {
            warn!(camera = %camera, "fragment before init segment: dropped");
            self.stats.dropped_fragments.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut reason = f.new_run.or(st.pending_reason.take());
        if st.run_id.is_none() && reason.is_none() {
            reason = Some("connect");
        }
        if reason.is_some() && st.run_id.is_some() {
            self.end_run(&camera);
        }
        let st = self.cams.get(&camera).expect("camera state");
        let roll = match &st.open {
            None => true,
            Some(o) => o.row.duration_ns >= seg_len,
        };
        let need = f.payload.len() as u64 + if roll { init_len as u64 } else { 0 };
        for attempt in 0..3 {
            if !self.ensure_space(need) {
                warn!(camera = %camera, "no room for a fragment even after eviction: dropped");
                break;
            }
            let res = if roll {
                self.start_segment(&camera, &f, reason)
            } else {
                self.append(&camera, &f)
            };
            match res {
                Ok(()) => {
                    self.stats
                        .bytes_written
                        .fetch_add(f.payload.len() as u64, Ordering::Relaxed);
                    self.stats.fragments_written.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) if is_enospc_err(&e) => {
                    warn!(camera = %camera, attempt, "filesystem full: evicting and retrying");
                    if !self.evict(need.max(8 * 1024 * 1024), "disk full") {
                        break;
                    }
                }
                Err(e) => {
                    self.storage_error(&camera, &e);
                    break;
                }
            }
        }
        // The fragment is lost: the timeline has a hole, so the next fragment starts a new run.
        self.stats.dropped_fragments.fetch_add(1, Ordering::Relaxed);
        self.end_run(&camera);
        if let Some(st) = self.cams.get_mut(&camera) {
            st.pending_reason = Some("dropped");
        }
    }

    /// Appends a fragment to the open segment, undoing a partial write on error.
    fn append(&mut self, camera: &Arc<str>, f: &Fragment) -> Result<(), StoreError> {
        let sync_interval = self.cfg.sync_interval;
        let o = self
            .cams
            .get_mut(camera)
            .and_then(|c| c.open.as_mut())
            .expect("open segment");
        let before = o.row.size_bytes as u64;
        match write_payload(
            &mut o.file,
            f.payload.as_ref(),
            sync_interval,
            &mut o.last_sync,
        ) {
            Ok(synced) => o.synced = synced,
            Err(e) => {
                let _ = o.file.set_len(before);
                let _ = std::io::Seek::seek(&mut o.file, io::SeekFrom::Start(before));
                return Err(super::io_at(&o.abs)(e));
            }
        }
        o.row.size_bytes += f.payload.len() as i64;
        o.row.duration_ns += f.duration_ns as i64;
        o.row.fragments.push(entry(f));
        self.live.appended(camera, entry(f), f.duration_ns as i64);
        Ok(())
    }

    /// Creates the next segment file with the init segment and this fragment, then commits it
    /// (closing the previous segment of the camera in the same transaction).
    fn start_segment(
        &mut self,
        camera: &Arc<str>,
        f: &Fragment,
        reason: Option<&'static str>,
    ) -> Result<(), StoreError> {
        let root = self.store.root().to_owned();
        let st = self.cams.get_mut(camera).expect("camera state");
        let (init, codec, timescale) = st.init.clone().expect("init");
        let run_id = match st.run_id {
            Some(r) => r,
            None => {
                let r =
                    self.store
                        .index()
                        .insert_run(camera, f.utc_ns, reason.unwrap_or("connect"))?;
                self.cams.get_mut(camera).expect("camera state").run_id = Some(r);
                info!(camera = %camera, run = r, reason = reason.unwrap_or("connect"), "run started");
                r
            }
        };
        let (file, abs, rel, start) = create_exclusive(&root, camera, f.utc_ns)?;
        let mut file = file;
        let mut last_sync = Instant::now();
        let written = file.write_all(&init).and_then(|_| {
            write_payload(
                &mut file,
                f.payload.as_ref(),
                Duration::ZERO,
                &mut last_sync,
            )
            .map(|_| ())
        });
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(&abs);
            return Err(super::io_at(&abs)(e));
        }
        let dir = abs.parent().expect("segment dir").to_owned();
        fsync_dir(&dir).map_err(super::io_at(&dir))?;
        let row = SegmentRow {
            id: 0,
            camera: camera.to_string(),
            run_id,
            start_utc_ns: start,
            duration_ns: f.duration_ns as i64,
            size_bytes: (init.len() + f.payload.len()) as i64,
            alloc_bytes: 0,
            init_size_bytes: init.len() as i64,
            fragments: vec![entry(f)],
            codec,
            path: rel,
            state: SegmentState::Open,
            uploaded_utc_ns: None,
            timescale,
            decode_time: f.decode_time,
            media_seq: 0,
            disc_seq: 0,
            disc_start: false,
        };
        let prev = self.cams.get_mut(camera).and_then(|c| c.open.take());
        let inserted = match prev {
            Some(p) => self.close_segment(p, Some(&row))?,
            None => self.store.index().roll(None, Some(&row))?,
        };
        let mut row = row;
        if let Some(i) = inserted {
            (row.id, row.media_seq, row.disc_seq, row.disc_start) =
                (i.id, i.media_seq, i.disc_seq, i.disc_start);
        }
        self.live.opened(&row);
        self.cams.get_mut(camera).expect("camera state").open = Some(OpenSegment {
            row,
            file,
            abs,
            last_sync,
            synced: true,
        });
        Ok(())
    }
}

fn is_enospc_err(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if is_enospc(source))
}

fn entry(f: &Fragment) -> FragmentEntry {
    FragmentEntry {
        size_bytes: f.payload.len() as u32,
        duration_us: (f.duration_ns / 1000) as u32,
    }
}

/// Writes a payload, then `fdatasync`s if the last sync is at least `sync_interval` old.
/// Returns whether the file is synced now.
fn write_payload(
    file: &mut File,
    p: &dyn Payload,
    sync_interval: Duration,
    last_sync: &mut Instant,
) -> io::Result<bool> {
    p.write_to(file)?;
    if last_sync.elapsed() >= sync_interval {
        file.sync_data()?;
        *last_sync = Instant::now();
        return Ok(true);
    }
    Ok(false)
}

/// Creates a new segment file with `O_EXCL`; if the name is taken (a clock stepped back), the
/// start is moved forward by 1 ms until a free name is found. Returns (file, abs, rel, start).
fn create_exclusive(
    root: &Path,
    camera: &str,
    mut start: i64,
) -> Result<(File, PathBuf, String, i64), StoreError> {
    for _ in 0..1000 {
        let rel = segment_rel_path(camera, start);
        let abs = root.join(&rel);
        let dir = abs.parent().expect("segment dir");
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(super::io_at(dir))?;
            // Make the new directories durable before the file inside them.
            let media = root.join(layout::MEDIA_DIR);
            let mut d = dir.to_path_buf();
            while d.starts_with(&media) {
                if let Some(p) = d.parent() {
                    fsync_dir(p).map_err(super::io_at(p))?;
                    d = p.to_path_buf();
                } else {
                    break;
                }
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&abs)
        {
            Ok(f) => return Ok((f, abs, rel, start)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => start += 1_000_000,
            Err(e) => return Err(super::io_at(&abs)(e)),
        }
    }
    Err(StoreError::Io {
        path: root.join(segment_rel_path(camera, start)),
        source: io::Error::new(io::ErrorKind::AlreadyExists, "no free segment name"),
    })
}

/// The sample entry four-cc of an init segment (`avc1`, `hvc1`, ...), or `unknown`.
/// The sample entry four-cc and the media timescale of an init segment.
fn codec_of(init: &[u8]) -> (String, u32) {
    crate::mp4::scan(&mut io::Cursor::new(init))
        .map(|s| (s.codec, s.timescale))
        .unwrap_or_else(|_| ("unknown".into(), 0))
}

/// The system clock as UTC ns since 1970.
pub fn now_utc_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
