//! The storage writer: the one thread that writes the card (DESIGN section 3).
//!
//! Ingest threads hand it init segments and fragments through a byte-bounded queue
//! ([`WriterHandle`]; a full queue drops the fragment and starts a new run, it never blocks a
//! pipeline). For each camera a [`Segmenter`] decides what happens to each input (start a run,
//! create, append, roll, sync, close); the writer executes those actions in the crash-safe order
//! (DESIGN section 4, invariant 3): a file is created with `O_EXCL`, written and `fdatasync`ed,
//! its directory `fsync`ed, then its row is committed; closing syncs again before the row is
//! marked complete, and one index transaction covers each segment. Before each write the
//! [`Reclaimer`] makes room under the size limit and the free-space floor (DESIGN section 5).
//!
//! Not here: when to roll or start a run ([`super::segmenter`]), what to evict
//! ([`super::reclaim`]), counters ([`super::stats`]), index chores that only pass through the
//! writer because it owns the one index connection ([`super::chores`]).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{debug, info, warn};

use super::clips::Clips;
use super::fsutil::is_enospc;
use super::live::LiveSegments;
use super::reclaim::{storage_error, Cause, KeepPolicy, Limits, Reclaimer};
use super::segfile::{Payload, SegmentFile};
use super::segmenter::{Action, FragmentInfo, Input, RunReason, Segmenter, SegmenterConfig};
use super::stats::WriterStats;
use super::{chores, Store, StoreError};
use crate::clock::{Clock, SystemClock};
use crate::config::Mode;
use crate::evr::gate::GateConfig;
use crate::index::EventInsert;
use crate::index::{FragmentEntry, SegmentRow, SegmentState};

/// Bytes of media that may wait in the writer's queue before fragments are dropped.
pub const DEFAULT_QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// How often the writer applies retention.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

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
    /// `Some(reason)` if this fragment starts a new run: the media timeline is not continuous
    /// with the previous fragment.
    pub new_run: Option<RunReason>,
}

/// Messages to the writer.
pub enum WriterMsg {
    /// A camera's init segment (`ftyp` + `moov`); every later segment of the camera starts with
    /// it. One with other bytes in the middle of a run closes the open segment and starts a new
    /// run (`codec_change`).
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
    /// The uploader stored the description object of clip `id` at `at_utc_ns` (UTC ns).
    ClipUploaded {
        /// Clip row id.
        id: i64,
        /// When the store confirmed it.
        at_utc_ns: i64,
    },
    /// Close every open segment, commit, and end the thread.
    Shutdown,
}

/// Per-camera settings the writer needs.
#[derive(Debug, Clone)]
pub struct CameraPolicy {
    /// Roll a segment once it holds at least this much media.
    pub segment_length: Duration,
    /// Delete media older than this.
    pub retention: Option<Duration>,
    /// CVR or EVR (seed `001_*`).
    pub mode: Mode,
    /// The signal gate's settings (clips on either mode).
    pub gate: GateConfig,
    /// Keep clip media this long instead of `retention`.
    pub clip_retention: Option<Duration>,
}

impl CameraPolicy {
    /// A CVR camera with the seed's gate settings and no clip retention.
    pub fn cvr(segment_length: Duration, retention: Option<Duration>) -> CameraPolicy {
        CameraPolicy {
            segment_length,
            retention,
            mode: Mode::Cvr,
            gate: GateConfig::SEED_DEFAULT,
            clip_retention: None,
        }
    }

    fn keep_policy(&self) -> KeepPolicy {
        KeepPolicy {
            retention: self.retention,
            clip_retention: self.clip_retention,
            transient_horizon: (self.mode == Mode::Evr).then(|| {
                Duration::from_nanos(self.gate.preroll_horizon_ns() as u64) + self.segment_length
            }),
        }
    }
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

/// A camera's open segment: its row (fragments as written) and its file.
struct OpenSegment {
    row: SegmentRow,
    file: SegmentFile,
    /// Its tracks' timescales, for the time rebase of each fragment.
    scales: crate::mp4::TrackScales,
    /// Video ticks by which the file's time starts before its first video frame (its audio
    /// starts that much earlier; [`super::timebase::lead_of_others`]).
    lead: u64,
}

struct Cam {
    seg: Segmenter,
    run_id: Option<i64>,
    open: Option<OpenSegment>,
    /// End of the last fragment written, UTC ns.
    media_end_utc_ns: Option<i64>,
}

/// The writer; run it with [`Writer::spawn`].
pub struct Writer {
    store: Store,
    cfg: WriterConfig,
    clock: Arc<dyn Clock>,
    cams: HashMap<Arc<str>, Cam>,
    reclaim: Reclaimer,
    clips: Clips,
    stats: Arc<WriterStats>,
    live: LiveSegments,
    queued_bytes: Arc<AtomicU64>,
    last_tick_mono_ns: i64,
    last_housekeeping_mono_ns: Option<i64>,
}

impl Writer {
    /// Creates a writer over a recovered store, on the system clock.
    ///
    /// Errors: the index cannot be read.
    pub fn new(store: Store, cfg: WriterConfig) -> Result<Writer, StoreError> {
        Self::with_clock(store, cfg, Arc::new(SystemClock))
    }

    /// Creates a writer over a recovered store on `clock` (tests use a simulated one).
    ///
    /// Errors: the index cannot be read.
    pub fn with_clock(
        mut store: Store,
        cfg: WriterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Writer, StoreError> {
        let policies = cfg
            .cameras
            .iter()
            .map(|(c, p)| (c.clone(), p.keep_policy()))
            .collect();
        let stats = Arc::new(WriterStats::default());
        let gates: Vec<_> = cfg
            .cameras
            .iter()
            .map(|(c, p)| (c.clone(), p.mode, p.gate))
            .collect();
        let clips = Clips::restore(&mut store, &gates, &stats, clock.utc_ns())?;
        let limits = Limits {
            index_path: cfg.index_path.clone(),
            max_size_bytes: cfg.max_size_bytes,
            min_free_bytes: cfg.min_free_bytes,
        };
        let reclaim = Reclaimer::new(&mut store, limits, policies)?;
        let now = clock.mono_ns();
        Ok(Writer {
            store,
            cfg,
            clock,
            cams: HashMap::new(),
            reclaim,
            clips,
            stats,
            live: LiveSegments::new(),
            queued_bytes: Arc::new(AtomicU64::new(0)),
            last_tick_mono_ns: now,
            last_housekeeping_mono_ns: None,
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
        self.tick();
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(WriterMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.tick();
            self.stats.heartbeat.fetch_add(1, Ordering::Relaxed);
        }
        self.shutdown();
        info!("storage writer stopped; all segments closed");
    }

    /// Closes every open segment and checkpoints the index.
    fn shutdown(&mut self) {
        let cams: Vec<Arc<str>> = self.cams.keys().cloned().collect();
        for c in cams {
            self.input(&c, Input::EndRun);
        }
        if let Err(e) = self.store.index().checkpoint() {
            warn!("index checkpoint at shutdown: {e}");
        }
    }

    /// Once a second: tick every camera's segmenter (syncs) and trim the pre-roll rings; every
    /// loop turn: close clips whose time is up; every 10 s: retention.
    fn tick(&mut self) {
        let now = self.clock.mono_ns();
        if now - self.last_tick_mono_ns >= 1_000_000_000 {
            self.last_tick_mono_ns = now;
            let cams: Vec<Arc<str>> = self.cams.keys().cloned().collect();
            for c in cams {
                self.input(&c, Input::Tick);
            }
            let utc = self.clock.utc_ns();
            self.reclaim
                .trim_preroll(&mut self.store, &self.live, &self.stats, utc);
        }
        let utc = self.clock.utc_ns();
        let cams = &self.cams;
        let media = |c: &str| {
            cams.get(c)
                .map_or((false, None), |c| (c.run_id.is_some(), c.media_end_utc_ns))
        };
        if let Err(e) = self.clips.on_tick(&mut self.store, &self.stats, utc, media) {
            storage_error(&self.stats, "-", &e);
        }
        let due = self
            .last_housekeeping_mono_ns
            .is_none_or(|t| now - t >= HOUSEKEEPING_INTERVAL.as_nanos() as i64);
        if due {
            self.last_housekeeping_mono_ns = Some(now);
            let utc = self.clock.utc_ns();
            self.reclaim
                .apply_retention(&mut self.store, &self.live, &self.stats, utc);
        }
    }

    fn handle(&mut self, m: WriterMsg) {
        match m {
            WriterMsg::Init { camera, data } => self.input(&camera, Input::Init(Arc::from(data))),
            WriterMsg::Fragment(f) => {
                let n = f.payload.len() as u64;
                self.on_fragment(f);
                self.queued_bytes.fetch_sub(n, Ordering::Relaxed);
            }
            WriterMsg::EndRun { camera } => self.input(&camera, Input::EndRun),
            WriterMsg::AddEvent { event, reply } => {
                let r = chores::add_event(&mut self.store, &event);
                if r == Ok(EventInsert::Inserted) {
                    let connected = self
                        .cams
                        .get(&*event.camera)
                        .is_some_and(|c| c.run_id.is_some());
                    if let Err(e) =
                        self.clips
                            .on_event(&mut self.store, &self.stats, &event, connected)
                    {
                        storage_error(&self.stats, &event.camera, &e);
                    }
                }
                let _ = reply.try_send(r);
            }
            WriterMsg::Uploaded { id, at_utc_ns } => {
                chores::record_upload(&mut self.store, id, at_utc_ns)
            }
            WriterMsg::ClipUploaded { id, at_utc_ns } => {
                chores::record_clip_upload(&mut self.store, id, at_utc_ns)
            }
            WriterMsg::Shutdown => {}
        }
    }

    fn cam(&mut self, camera: &Arc<str>) -> &mut Cam {
        if !self.cams.contains_key(camera) {
            let p = self
                .cfg
                .cameras
                .get(&**camera)
                .unwrap_or(&self.cfg.default_policy);
            let seg = Segmenter::new(SegmenterConfig {
                segment_length_ns: p.segment_length.as_nanos() as u64,
                sync_interval_ns: self.cfg.sync_interval.as_nanos() as u64,
            });
            self.cams.insert(
                camera.clone(),
                Cam {
                    seg,
                    run_id: None,
                    open: None,
                    media_end_utc_ns: None,
                },
            );
        }
        self.cams.get_mut(camera).expect("camera state")
    }

    /// Feeds an input that carries no fragment and executes what it asks (close, sync).
    fn input(&mut self, camera: &Arc<str>, i: Input) {
        let now = self.clock.mono_ns();
        for a in self.cam(camera).seg.handle(i, now) {
            match a {
                Action::Close => self.close(camera),
                Action::Sync => self.sync(camera),
                other => debug_assert!(false, "{other:?} without a fragment"),
            }
        }
    }

    fn on_fragment(&mut self, mut f: Fragment) {
        let camera = f.camera.clone();
        let info = FragmentInfo {
            duration_ns: f.duration_ns,
            size_bytes: f.payload.len() as u64,
            new_run: f.new_run,
        };
        let now = self.clock.mono_ns();
        let actions = self.cam(&camera).seg.handle(Input::Fragment(info), now);
        let mut written = false;
        for a in actions {
            let ok = match a {
                Action::Drop => {
                    warn!(camera = %camera, "fragment before init segment: dropped");
                    self.stats.dropped_fragments.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Action::Close => {
                    self.close(&camera);
                    true
                }
                Action::Sync => {
                    self.sync(&camera);
                    true
                }
                Action::StartRun(reason) => self.start_run(&camera, reason, f.utc_ns),
                Action::Create | Action::Roll | Action::Append { .. } => {
                    written = self.write(&camera, a, &mut f);
                    written
                }
            };
            if !ok {
                break;
            }
        }
        if written {
            self.stats
                .bytes_written
                .fetch_add(f.payload.len() as u64, Ordering::Relaxed);
            self.stats.fragments_written.fetch_add(1, Ordering::Relaxed);
            let end = f.utc_ns + f.duration_ns as i64;
            self.cam(&camera).media_end_utc_ns = Some(end);
            self.clips.on_media(&self.stats, &camera, end);
        } else {
            // The fragment is lost: the timeline has a hole, so the next fragment starts a run.
            self.stats.dropped_fragments.fetch_add(1, Ordering::Relaxed);
            self.input(&camera, Input::WriteFailed);
        }
    }

    fn start_run(&mut self, camera: &Arc<str>, reason: RunReason, utc_ns: i64) -> bool {
        match self
            .store
            .index()
            .insert_run(camera, utc_ns, reason.as_str())
        {
            Ok(r) => {
                self.cam(camera).run_id = Some(r);
                info!(camera = %camera, run = r, reason = %reason, "run started");
                true
            }
            Err(e) => {
                storage_error(&self.stats, camera, &e);
                false
            }
        }
    }

    fn open_alloc(&self) -> u64 {
        self.cams
            .values()
            .filter_map(|c| c.open.as_ref())
            .map(|o| self.reclaim.blocks(o.file.len))
            .sum()
    }

    /// Executes a create, roll or append of `f`: makes room first, and on `ENOSPC` evicts and
    /// tries again (three times). Returns false if the fragment could not be written.
    fn write(&mut self, camera: &Arc<str>, a: Action, f: &mut Fragment) -> bool {
        let init_len = match a {
            Action::Create | Action::Roll => self
                .cams
                .get(camera)
                .and_then(|c| c.seg.init())
                .map_or(0, |i| i.len() as u64),
            _ => 0,
        };
        let need = f.payload.len() as u64 + init_len;
        for attempt in 0..3 {
            let open_alloc = self.open_alloc();
            if !self.reclaim.ensure_space(
                &mut self.store,
                &self.live,
                &self.stats,
                need,
                open_alloc,
            ) {
                warn!(camera = %camera, "no room for a fragment even after eviction: dropped");
                return false;
            }
            let res = match a {
                Action::Append { sync } => self.append(camera, f, sync),
                _ => self.create(camera, f, a == Action::Roll),
            };
            match res {
                Ok(()) => return true,
                Err(e) if is_enospc_err(&e) => {
                    warn!(camera = %camera, attempt, "filesystem full: evicting and retrying");
                    if !self.reclaim.evict(
                        &mut self.store,
                        &self.live,
                        &self.stats,
                        need.max(8 * 1024 * 1024),
                        Cause::DiskFull,
                    ) {
                        return false;
                    }
                }
                Err(e) => {
                    storage_error(&self.stats, camera, &e);
                    return false;
                }
            }
        }
        false
    }

    /// Appends a fragment to the open segment.
    fn append(
        &mut self,
        camera: &Arc<str>,
        f: &mut Fragment,
        sync: bool,
    ) -> Result<(), StoreError> {
        let o = self
            .cams
            .get_mut(camera)
            .and_then(|c| c.open.as_mut())
            .expect("append needs an open segment");
        relative_time(f, o.row.decode_time.saturating_sub(o.lead), &o.scales);
        o.file.append(f.payload.as_ref(), sync)?;
        o.row.size_bytes += f.payload.len() as i64;
        o.row.duration_ns += f.duration_ns as i64;
        o.row.fragments.push(entry(f));
        self.live.appended(camera, entry(f), f.duration_ns as i64);
        Ok(())
    }

    /// Creates the next segment file with the init segment and this fragment, then commits its
    /// row; with `roll`, the camera's open segment is closed in the same transaction.
    fn create(
        &mut self,
        camera: &Arc<str>,
        f: &mut Fragment,
        roll: bool,
    ) -> Result<(), StoreError> {
        let root = self.store.root().to_owned();
        let cam = self.cams.get_mut(camera).expect("camera state");
        let init = cam
            .seg
            .init()
            .expect("create needs an init segment")
            .clone();
        let run_id = cam.run_id.expect("create needs a run");
        let (codec, timescale, audio_codec) = codec_of(&init);
        let scales = crate::mp4::TrackScales::of_init(&init);
        let mut lead = 0;
        if scales.others.is_empty() {
            relative_time(f, f.decode_time, &scales);
        } else {
            f.payload.edit_head(&mut |h| {
                lead = super::timebase::lead_of_others(h, &scales);
                false
            });
            relative_time(f, f.decode_time.saturating_sub(lead), &scales);
        }
        let (file, start) =
            SegmentFile::create(&root, camera, f.utc_ns, &init, f.payload.as_ref())?;
        let mut row = SegmentRow {
            id: 0,
            camera: camera.to_string(),
            run_id,
            start_utc_ns: start,
            duration_ns: f.duration_ns as i64,
            size_bytes: file.len as i64,
            alloc_bytes: 0,
            init_size_bytes: init.len() as i64,
            fragments: vec![entry(f)],
            codec,
            audio_codec,
            path: file.rel.clone(),
            state: SegmentState::Open,
            uploaded_utc_ns: None,
            timescale,
            decode_time: f.decode_time,
            media_seq: 0,
            disc_seq: 0,
            disc_start: false,
        };
        let prev = if roll { cam.open.take() } else { None };
        let keep = self.clips.keep_for(camera, start);
        let committed = match prev {
            Some(p) => self.finish(p, Some((&row, keep))),
            None => self
                .store
                .index()
                .roll(None, Some(&row), keep)
                .map_err(StoreError::from),
        };
        let inserted = match committed {
            Ok(i) => i,
            Err(e) => {
                let _ = std::fs::remove_file(&file.abs);
                return Err(e);
            }
        };
        if let Some(i) = inserted {
            (row.id, row.media_seq, row.disc_seq, row.disc_start) =
                (i.id, i.media_seq, i.disc_seq, i.disc_start);
        }
        self.live.opened(&row);
        self.cam(camera).open = Some(OpenSegment {
            row,
            file,
            scales,
            lead,
        });
        Ok(())
    }

    /// Syncs and closes `o`, then commits it as complete together with `next` (if any) as the
    /// next open row; returns what the new row was given.
    fn finish(
        &mut self,
        o: OpenSegment,
        next: Option<(&SegmentRow, crate::index::Keep)>,
    ) -> Result<Option<crate::index::Inserted>, StoreError> {
        let OpenSegment { mut row, file, .. } = o;
        row.alloc_bytes = file.finish(self.reclaim.block_size())? as i64;
        row.state = SegmentState::Complete;
        let (next, keep) = match next {
            Some((r, k)) => (Some(r), k),
            None => (None, crate::index::Keep::Mode),
        };
        let inserted = self.store.index().roll(Some(&row), next, keep)?;
        self.reclaim.closed(row.alloc_bytes as u64);
        self.stats.segments_closed.fetch_add(1, Ordering::Relaxed);
        debug!(camera = %row.camera, path = %row.path, bytes = row.size_bytes,
               duration_ms = row.duration_ns / 1_000_000, "segment closed");
        Ok(inserted)
    }

    /// Closes a camera's open segment (if any) and forgets its run.
    fn close(&mut self, camera: &Arc<str>) {
        let cam = self.cam(camera);
        cam.run_id = None;
        if let Some(o) = cam.open.take() {
            if let Err(e) = self.finish(o, None) {
                storage_error(&self.stats, camera, &e);
            }
            self.live.closed(camera);
        }
    }

    fn sync(&mut self, camera: &Arc<str>) {
        if let Some(o) = self.cam(camera).open.as_mut() {
            if let Err(e) = o.file.sync() {
                storage_error(&self.stats, camera, &e);
            }
        }
    }
}

/// Makes a fragment's media time count from `base`, its segment's first `tfdt`
/// ([`super::timebase`]). Fragments without a known `tfdt` (0) are left alone.
fn relative_time(f: &mut Fragment, base: u64, scales: &crate::mp4::TrackScales) {
    if f.decode_time == 0 || base == 0 {
        return;
    }
    let t = f.decode_time.saturating_sub(base);
    f.payload
        .edit_head(&mut |h| super::timebase::rebase(h, t, scales));
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

/// The video sample entry four-cc (`avc1`, `hvc1`, ...; `unknown` if unreadable), the media
/// timescale (0 if unknown) and the audio codec (`mp4a.40.2`, if any) of an init segment.
fn codec_of(init: &[u8]) -> (String, u32, Option<String>) {
    crate::mp4::scan(&mut io::Cursor::new(init))
        .map(|s| (s.codec, s.timescale, s.audio_codec))
        .unwrap_or_else(|_| ("unknown".into(), 0, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;

    const S: i64 = 1_000_000_000;
    const T0: i64 = 1_576_900_868_000_000_000;

    fn writer(dir: &std::path::Path, clock: &SimulatedClock) -> Writer {
        writer_with(dir, clock, CameraPolicy::cvr(Duration::from_secs(3), None))
    }

    /// A writer with camera `cam` under `policy`, on a store in `dir`.
    fn writer_with(dir: &std::path::Path, clock: &SimulatedClock, policy: CameraPolicy) -> Writer {
        let index_path = dir.join("index.sqlite3");
        let store = Store::open(dir, &index_path).unwrap();
        let cfg = WriterConfig {
            index_path,
            max_size_bytes: 1 << 30,
            min_free_bytes: 0,
            sync_interval: Duration::ZERO,
            cameras: HashMap::from([("cam".to_string(), policy.clone())]),
            default_policy: policy,
        };
        Writer::with_clock(store, cfg, Arc::new(clock.clone())).unwrap()
    }

    fn frag(clock: &SimulatedClock, bytes: &[u8]) -> WriterMsg {
        let f = Fragment {
            camera: Arc::from("cam"),
            payload: Box::new(bytes.to_vec()),
            utc_ns: clock.utc_ns(),
            duration_ns: S as u64,
            decode_time: 0,
            new_run: None,
        };
        clock.advance(S);
        WriterMsg::Fragment(f)
    }

    fn init(data: &[u8]) -> WriterMsg {
        WriterMsg::Init {
            camera: Arc::from("cam"),
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_new_init_segment_mid_run_closes_the_segment_and_starts_a_codec_change_run() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let mut w = writer(dir.path(), &clock);
        w.handle(init(b"INIT-640x480"));
        w.handle(frag(&clock, b"f1"));
        w.handle(frag(&clock, b"f2"));
        w.handle(init(b"INIT-1280x720"));
        w.handle(frag(&clock, b"f3"));
        w.shutdown();
        let ix = w.store.index();
        let runs: Vec<String> = ix.runs("cam").unwrap().into_iter().map(|r| r.2).collect();
        assert_eq!(runs, ["connect", "codec_change"]);
        let segs = ix.all_segments().unwrap();
        assert_eq!(segs.len(), 2);
        assert!(segs.iter().all(|s| s.state == SegmentState::Complete));
        assert_ne!(segs[0].run_id, segs[1].run_id);
        assert_eq!(segs[1].start_utc_ns, T0 + 2 * S);
        let read = |s: &SegmentRow| std::fs::read(dir.path().join(&s.path)).unwrap();
        assert_eq!(read(&segs[0]), b"INIT-640x480f1f2");
        assert_eq!(read(&segs[1]), b"INIT-1280x720f3");
        assert_eq!(segs[1].init_size_bytes, 13);
    }

    #[test]
    fn segments_roll_at_segment_length_and_end_runs_close_them() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let mut w = writer(dir.path(), &clock);
        w.handle(init(b"I"));
        for _ in 0..4 {
            w.handle(frag(&clock, b"ff"));
        }
        w.handle(WriterMsg::EndRun {
            camera: Arc::from("cam"),
        });
        w.handle(frag(&clock, b"gg"));
        w.shutdown();
        let ix = w.store.index();
        let segs = ix.all_segments().unwrap();
        let shape: Vec<(i64, i64, usize)> = segs
            .iter()
            .map(|s| {
                (
                    (s.start_utc_ns - T0) / S,
                    s.duration_ns / S,
                    s.fragments.len(),
                )
            })
            .collect();
        assert_eq!(shape, [(0, 3, 3), (3, 1, 1), (4, 1, 1)]);
        assert_eq!(segs[0].run_id, segs[1].run_id);
        let runs: Vec<String> = ix.runs("cam").unwrap().into_iter().map(|r| r.2).collect();
        assert_eq!(runs, ["connect", "reconnect"]);
        assert_eq!(w.stats.fragments_written.load(Ordering::Relaxed), 5);
        assert_eq!(w.stats.segments_closed.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_fragment_before_any_init_segment_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let mut w = writer(dir.path(), &clock);
        w.handle(frag(&clock, b"f"));
        assert_eq!(w.stats.dropped_fragments.load(Ordering::Relaxed), 1);
        assert!(w.store.index().all_segments().unwrap().is_empty());
    }

    #[test]
    fn retention_runs_on_the_writer_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let mut w = writer(dir.path(), &clock);
        w.cfg.cameras.get_mut("cam").unwrap().retention = Some(Duration::from_secs(60));
        let policies = HashMap::from([(
            "cam".to_string(),
            KeepPolicy {
                retention: Some(Duration::from_secs(60)),
                ..KeepPolicy::default()
            },
        )]);
        let limits = Limits {
            index_path: w.cfg.index_path.clone(),
            max_size_bytes: 1 << 30,
            min_free_bytes: 0,
        };
        w.reclaim = Reclaimer::new(&mut w.store, limits, policies).unwrap();
        w.handle(init(b"I"));
        for _ in 0..4 {
            w.handle(frag(&clock, b"ff"));
        }
        w.tick();
        assert_eq!(w.store.index().all_segments().unwrap().len(), 2);
        // 63 s after the first segment ended (at T0 + 3 s), only it has expired.
        clock.advance(62 * S);
        w.tick();
        let left: Vec<i64> = w
            .store
            .index()
            .all_segments()
            .unwrap()
            .iter()
            .map(|s| (s.start_utc_ns - T0) / S)
            .collect();
        assert_eq!(left, [3]);
        assert_eq!(w.stats.expired_segments.load(Ordering::Relaxed), 1);
    }

    fn evr_writer(dir: &std::path::Path, clock: &SimulatedClock) -> Writer {
        let policy = CameraPolicy {
            mode: Mode::Evr,
            gate: GateConfig {
                evaluation_window_ns: S,
                offset_ns: -5 * S,
                minimum_ns: 10 * S,
                maximum_ns: 10 * S,
                late_events: crate::evr::gate::LateEvents::Drop,
            },
            ..CameraPolicy::cvr(Duration::from_secs(3), None)
        };
        writer_with(dir, clock, policy)
    }

    fn event(w: &mut Writer, id: &str, time_utc_ns: i64, now: i64) -> EventInsert {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        w.handle(WriterMsg::AddEvent {
            event: crate::index::EventRow {
                camera: "cam".into(),
                id: id.into(),
                label: "door".into(),
                time_utc_ns,
                duration_ns: None,
                received_utc_ns: now,
                objects: vec!["car".into()],
            },
            reply: tx,
        });
        rx.recv().unwrap().unwrap()
    }

    #[test]
    fn evr_keeps_the_clip_and_deletes_the_pre_roll_ring_past_its_horizon() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let mut w = evr_writer(dir.path(), &clock);
        w.handle(init(b"I"));
        for k in 0..60 {
            if k == 30 {
                let now = clock.utc_ns();
                assert_eq!(event(&mut w, "e1", now, now), EventInsert::Inserted);
                assert_eq!(event(&mut w, "e1", now, now), EventInsert::Duplicate);
            }
            w.handle(frag(&clock, b"ff"));
            w.tick();
        }
        let ix = w.store.index();
        let clips = ix.clips_overlapping("cam", T0, T0 + 100 * S).unwrap();
        assert_eq!(clips.len(), 1);
        let c = &clips[0];
        assert!(!c.open);
        assert_eq!(c.close_reason.as_deref(), Some("minimum"));
        assert_eq!(
            (c.requested_start_utc_ns - T0, c.end_utc_ns - T0),
            (25 * S, 40 * S)
        );
        assert_eq!(ix.clip_events(&[c.id]).unwrap()[0].id, "e1");
        let now = clock.utc_ns();
        let horizon = (5 + 1 + 3) * S;
        let mut kept = Vec::new();
        for s in ix.all_segments().unwrap() {
            let keep = ix.keep_of(s.id).unwrap().unwrap();
            let (a, b) = ((s.start_utc_ns - T0) / S, (s.end_utc_ns() - T0) / S);
            match keep {
                crate::index::Keep::Clip => kept.push((a, b)),
                // Trimmed once a second.
                crate::index::Keep::Transient => assert!(
                    s.end_utc_ns() > now - horizon - S || s.state == SegmentState::Open,
                    "transient [{a}, {b}) is past the horizon"
                ),
                crate::index::Keep::Mode => panic!("an EVR camera has no mode-kept media"),
            }
        }
        // Segments of 3 s from T0: [24, 27) holds the requested start 25, [39, 42) the end 40.
        assert_eq!(kept.first().unwrap().0, 24);
        assert_eq!(kept.last().unwrap().1, 42);
        assert!(kept.windows(2).all(|p| p[0].1 == p[1].0), "{kept:?}");
        assert_eq!(
            w.stats.transient_deleted_segments.load(Ordering::Relaxed),
            8 + 3,
            "[0, 24) and [42, 51) went"
        );
        let (notices, lost) = w.stats.clip_log.since(0);
        let changes: Vec<_> = notices.iter().map(|n| n.change).collect();
        use crate::store::stats::ClipChange::*;
        assert_eq!((changes, lost), (vec![Started, Available, Stopped], 0));
    }

    #[test]
    fn evr_open_clip_survives_a_restart_and_closes_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let mut w = evr_writer(dir.path(), &clock);
        w.handle(init(b"I"));
        for _ in 0..10 {
            w.handle(frag(&clock, b"ff"));
        }
        let now = clock.utc_ns();
        event(&mut w, "e1", now, now);
        w.handle(frag(&clock, b"ff"));
        drop(w); // no shutdown: as after kill -9
        let mut w = evr_writer(dir.path(), &clock);
        assert!(w.store.index().open_clips().unwrap().len() == 1);
        w.handle(init(b"I"));
        for _ in 0..12 {
            w.handle(frag(&clock, b"ff"));
            w.tick();
        }
        let c = &w
            .store
            .index()
            .clips_overlapping("cam", T0, T0 + 100 * S)
            .unwrap()[0];
        assert_eq!(c.close_reason.as_deref(), Some("minimum"));
        assert_eq!(c.end_utc_ns, now + 10 * S);
        // A late event (arrives 5 s after it happened, window 1 s) is dropped and counted.
        let now = clock.utc_ns();
        event(&mut w, "late", now - 5 * S, now);
        assert_eq!(WriterStats::get(&w.stats.late_events_dropped, "cam"), 1);
        assert!(w.store.index().open_clips().unwrap().is_empty());
    }

    /// Under a small limit eviction takes the keep classes in order: an EVR camera's transient
    /// ring, then uploaded media, then media not uploaded, and clip media last; files and rows
    /// go together.
    #[test]
    fn eviction_takes_keep_classes_in_order_under_a_small_limit() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SimulatedClock::new(T0);
        let evr = CameraPolicy {
            mode: Mode::Evr,
            gate: GateConfig {
                evaluation_window_ns: S,
                offset_ns: -60 * S, // a long ring: nothing is trimmed during the test
                minimum_ns: 2 * S,
                maximum_ns: 2 * S,
                late_events: crate::evr::gate::LateEvents::Drop,
            },
            ..CameraPolicy::cvr(Duration::from_secs(3), None)
        };
        let mut w = writer_with(dir.path(), &clock, evr.clone());
        w.cfg.cameras.insert(
            "cvr".into(),
            CameraPolicy::cvr(Duration::from_secs(3), None),
        );
        let frag_of = |camera: &str, t: i64| {
            WriterMsg::Fragment(Fragment {
                camera: Arc::from(camera),
                payload: Box::new(vec![7u8; 16 * 1024]),
                utc_ns: t,
                duration_ns: S as u64,
                decode_time: 0,
                new_run: None,
            })
        };
        w.handle(init(b"I"));
        w.handle(WriterMsg::Init {
            camera: Arc::from("cvr"),
            data: b"I".to_vec(),
        });
        for k in 0..24 {
            let t = clock.utc_ns();
            if k == 6 {
                event(&mut w, "e", t, t);
            }
            w.handle(frag_of("cam", t));
            w.handle(frag_of("cvr", t));
            clock.advance(S);
        }
        // Every other complete CVR segment is uploaded.
        let cvr: Vec<SegmentRow> = w
            .store
            .index()
            .all_segments()
            .unwrap()
            .into_iter()
            .filter(|s| s.camera == "cvr" && s.state == SegmentState::Complete)
            .collect();
        for s in cvr.iter().step_by(2) {
            w.handle(WriterMsg::Uploaded {
                id: s.id,
                at_utc_ns: T0,
            });
        }
        let class = |w: &mut Writer, s: &SegmentRow| {
            let keep = w.store.index().keep_of(s.id).unwrap().unwrap();
            match (keep, s.uploaded_utc_ns.is_some()) {
                (crate::index::Keep::Transient, _) => 0,
                (_, true) => 1,
                (crate::index::Keep::Mode, false) => 2,
                (crate::index::Keep::Clip, false) => 3,
            }
        };
        let before: Vec<(SegmentRow, u8)> = {
            let rows = w.store.index().all_segments().unwrap();
            rows.into_iter()
                .filter(|s| s.state == SegmentState::Complete)
                .map(|s| {
                    let c = class(&mut w, &s);
                    (s, c)
                })
                .collect()
        };
        let count = |c: u8| before.iter().filter(|b| b.1 == c).count();
        assert!(
            (0..4).all(|c| count(c) >= 1),
            "every class is present: {:?}",
            (0..4).map(count).collect::<Vec<_>>()
        );
        // Room for all transient and uploaded segments plus one more segment must be made. The
        // index's own bytes are left out of this limit so that its WAL cannot shift the count.
        let take = count(0) + count(1) + 1;
        let mut sorted = before.clone();
        sorted.sort_by_key(|b| (b.1, b.0.start_utc_ns));
        let need: u64 = sorted[..take].iter().map(|b| b.0.alloc_bytes as u64).sum();
        let limits = Limits {
            index_path: dir.path().join("not-counted"),
            max_size_bytes: 0,
            min_free_bytes: 0,
        };
        w.reclaim = Reclaimer::new(&mut w.store, limits.clone(), HashMap::new()).unwrap();
        let used = w.reclaim.used_bytes(w.open_alloc());
        // Asking for one block more than the limit leaves: exactly `need` bytes must go.
        w.reclaim = Reclaimer::new(
            &mut w.store,
            Limits {
                max_size_bytes: used + 4096 - need,
                ..limits
            },
            HashMap::new(),
        )
        .unwrap();
        let open_alloc = w.open_alloc();
        assert!(w
            .reclaim
            .ensure_space(&mut w.store, &w.live, &w.stats, 1, open_alloc));
        let left: Vec<i64> = w
            .store
            .index()
            .all_segments()
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        for (i, (s, c)) in sorted.iter().enumerate() {
            let gone = !left.contains(&s.id);
            assert_eq!(
                gone,
                i < take,
                "segment {} of class {c} (#{i} in eviction order): gone = {gone}",
                s.path
            );
            assert_eq!(dir.path().join(&s.path).exists(), !gone);
        }
        assert_eq!(
            w.stats.evicted_segments.load(Ordering::Relaxed),
            take as u64
        );
    }
}
