//! The per-camera segment lifecycle as a pure state machine: what to do with each init segment,
//! fragment, end of run and tick, decided without files, SQLite or clock calls.
//!
//! The storage writer ([`super::writer`]) feeds a [`Segmenter`] one [`Input`] at a time, with the
//! monotonic time of the input, and executes the [`Action`]s it returns in the crash-safe order of
//! DESIGN section 4. If executing a write fails, the writer says so with [`Input::WriteFailed`]:
//! the fragment is lost, so the timeline has a hole and the next fragment starts a new run
//! ([`RunReason::Dropped`]).
//!
//! Rules (DESIGN section 2, "run"; section 4):
//! - A run is consecutive segments on one continuous media timeline. The first fragment after an
//!   end of run, a fragment marked as a new run by ingest, or the first fragment after a new init
//!   segment with other bytes (a camera changing resolution or codec parameters) starts one.
//! - A new init segment with other bytes closes the open segment at once: its fragments were
//!   muxed under the old `moov` and must stay with it ([`RunReason::CodecChange`]).
//! - A segment rolls on the first fragment that arrives once it holds at least `segment_length`
//!   of media (segments end on fragment boundaries, so on keyframes).
//! - The first fragment of a segment is synced at once (the file and its row must agree after a
//!   crash); later ones when the last sync is at least `sync_interval` old, and a tick syncs a
//!   segment that has waited that long with unsynced bytes (a camera that went quiet).
//!
//! Space accounting, eviction and index rows are not here: see [`super::reclaim`] and
//! [`super::writer`].

use std::sync::Arc;

/// Why a run started; stored in the index (`run.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunReason {
    /// The first connection to the camera since edgerec started.
    Connect,
    /// A connection after the camera was lost.
    Reconnect,
    /// Recording was switched on again (MQTT `recording/set`, `cmd/setRecording`).
    Restart,
    /// The wall clock stepped by more than 1 s against media time.
    ClockStep,
    /// A new init segment with other bytes: resolution or codec parameters changed.
    CodecChange,
    /// Fragments were lost (writer queue full, no space even after eviction, a write error).
    Dropped,
    /// Crash recovery adopted a segment that was open when edgerec stopped.
    Recovered,
    /// `edgerec fsck --rebuild` recreated the index from the files.
    Rebuild,
}

impl RunReason {
    /// Every reason, in the order of the schema comment.
    pub const ALL: [RunReason; 8] = [
        RunReason::Connect,
        RunReason::Reconnect,
        RunReason::Restart,
        RunReason::ClockStep,
        RunReason::CodecChange,
        RunReason::Dropped,
        RunReason::Recovered,
        RunReason::Rebuild,
    ];

    /// The name stored in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            RunReason::Connect => "connect",
            RunReason::Reconnect => "reconnect",
            RunReason::Restart => "restart",
            RunReason::ClockStep => "clock_step",
            RunReason::CodecChange => "codec_change",
            RunReason::Dropped => "dropped",
            RunReason::Recovered => "recovered",
            RunReason::Rebuild => "rebuild",
        }
    }

    /// Parses a stored name; `None` for a name this version does not know.
    pub fn parse(s: &str) -> Option<RunReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for RunReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the segmenter needs to know of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Media duration, ns.
    pub duration_ns: u64,
    /// Bytes (`moof` + `mdat`).
    pub size_bytes: u64,
    /// Set by ingest when this fragment does not continue the previous one's timeline.
    pub new_run: Option<RunReason>,
}

/// One input, with the monotonic time (ns) at which it is handled.
#[derive(Debug, Clone)]
pub enum Input {
    /// An init segment (`ftyp` + `moov`, ISO/IEC 14496-12 section 8.2, 8.8.1) arrived.
    Init(Arc<[u8]>),
    /// A fragment (`moof` + `mdat`, starting at a keyframe) arrived.
    Fragment(FragmentInfo),
    /// The camera stopped or was lost.
    EndRun,
    /// Time passed (the writer ticks about once a second).
    Tick,
    /// Executing the actions for the last fragment failed: the fragment is lost.
    WriteFailed,
}

/// What the store must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a new run (an index row) before the next `Create`.
    StartRun(RunReason),
    /// Create a segment file holding the init segment and this fragment, sync it, and commit its
    /// row as open.
    Create,
    /// Close the open segment and create the next one with this fragment, committed together.
    Roll,
    /// Append this fragment to the open segment; `sync`: `fdatasync` it afterwards.
    Append {
        /// Whether to sync after the write.
        sync: bool,
    },
    /// `fdatasync` the open segment now.
    Sync,
    /// Sync and close the open segment and commit it complete; the run ends.
    Close,
    /// Drop this fragment (it cannot be written: no init segment yet).
    Drop,
}

/// Per-camera settings of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Roll once a segment holds at least this much media, ns.
    pub segment_length_ns: u64,
    /// Sync the open segment when the last sync is at least this old, ns (0: every fragment).
    pub sync_interval_ns: u64,
}

#[derive(Debug, Clone)]
struct Open {
    duration_ns: u64,
    size_bytes: u64,
    last_sync_mono_ns: i64,
    unsynced: bool,
}

/// The lifecycle of one camera's segments. See the module doc for the rules.
#[derive(Debug, Clone)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    init: Option<Arc<[u8]>>,
    in_run: bool,
    open: Option<Open>,
    pending: Option<RunReason>,
    runs_started: u64,
}

impl Segmenter {
    /// A camera with no init segment and no run.
    pub fn new(cfg: SegmenterConfig) -> Self {
        Segmenter {
            cfg,
            init: None,
            in_run: false,
            open: None,
            pending: None,
            runs_started: 0,
        }
    }

    /// The current init segment (every new segment starts with it).
    pub fn init(&self) -> Option<&Arc<[u8]>> {
        self.init.as_ref()
    }

    /// Whether a segment is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Media in the open segment, ns (0 if none).
    pub fn open_duration_ns(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.duration_ns)
    }

    /// Bytes of the open segment including its init segment (0 if none).
    pub fn open_size_bytes(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.size_bytes)
    }

    /// Handles one input at monotonic time `now_ns`; returns the actions in execution order.
    pub fn handle(&mut self, input: Input, now_ns: i64) -> Vec<Action> {
        match input {
            Input::Init(data) => self.on_init(data),
            Input::Fragment(f) => self.on_fragment(f, now_ns),
            Input::EndRun => self.end_run(None),
            Input::Tick => match &mut self.open {
                Some(o)
                    if o.unsynced
                        && now_ns - o.last_sync_mono_ns >= self.cfg.sync_interval_ns as i64 =>
                {
                    o.unsynced = false;
                    o.last_sync_mono_ns = now_ns;
                    vec![Action::Sync]
                }
                _ => Vec::new(),
            },
            Input::WriteFailed => self.end_run(Some(RunReason::Dropped)),
        }
    }

    fn on_init(&mut self, data: Arc<[u8]>) -> Vec<Action> {
        let changed = self.init.as_ref().is_some_and(|i| **i != *data);
        self.init = Some(data);
        if changed && self.in_run {
            return self.end_run(Some(RunReason::CodecChange));
        }
        Vec::new()
    }

    fn end_run(&mut self, then: Option<RunReason>) -> Vec<Action> {
        self.in_run = false;
        if then.is_some() {
            self.pending = then;
        }
        match self.open.take() {
            Some(_) => vec![Action::Close],
            None => Vec::new(),
        }
    }

    fn on_fragment(&mut self, f: FragmentInfo, now_ns: i64) -> Vec<Action> {
        let Some(init) = &self.init else {
            return vec![Action::Drop];
        };
        let init_len = init.len() as u64;
        let mut out = Vec::with_capacity(3);
        let reason = f.new_run.or(self.pending.take());
        if reason.is_some() && self.in_run {
            out.extend(self.end_run(None));
        }
        if !self.in_run {
            let r = reason.unwrap_or(if self.runs_started == 0 {
                RunReason::Connect
            } else {
                RunReason::Reconnect
            });
            self.in_run = true;
            self.runs_started += 1;
            out.push(Action::StartRun(r));
        }
        let fresh = Open {
            duration_ns: f.duration_ns,
            size_bytes: init_len + f.size_bytes,
            last_sync_mono_ns: now_ns,
            unsynced: false,
        };
        match &mut self.open {
            None => {
                self.open = Some(fresh);
                out.push(Action::Create);
            }
            Some(o) if o.duration_ns >= self.cfg.segment_length_ns => {
                *o = fresh;
                out.push(Action::Roll);
            }
            Some(o) => {
                o.duration_ns += f.duration_ns;
                o.size_bytes += f.size_bytes;
                let sync = now_ns - o.last_sync_mono_ns >= self.cfg.sync_interval_ns as i64;
                if sync {
                    o.last_sync_mono_ns = now_ns;
                }
                o.unsynced = !sync;
                out.push(Action::Append { sync });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000 * MS;

    /// A camera on a simulated monotonic clock: every fragment advances it by its duration.
    struct Sim {
        seg: Segmenter,
        now: i64,
    }

    impl Sim {
        fn new(segment_s: u64, sync_ms: u64) -> Sim {
            Sim {
                seg: Segmenter::new(SegmenterConfig {
                    segment_length_ns: segment_s * S as u64,
                    sync_interval_ns: sync_ms * MS as u64,
                }),
                now: 0,
            }
        }
        fn init(&mut self, bytes: &[u8]) -> Vec<Action> {
            self.seg.handle(Input::Init(Arc::from(bytes)), self.now)
        }
        fn frag(&mut self, ms: u64, new_run: Option<RunReason>) -> Vec<Action> {
            let a = self.seg.handle(
                Input::Fragment(FragmentInfo {
                    duration_ns: ms * MS as u64,
                    size_bytes: 100,
                    new_run,
                }),
                self.now,
            );
            self.now += ms as i64 * MS;
            a
        }
        fn input(&mut self, i: Input) -> Vec<Action> {
            self.seg.handle(i, self.now)
        }
    }

    #[test]
    fn reasons_round_trip_and_are_distinct() {
        for r in RunReason::ALL {
            assert_eq!(RunReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RunReason::parse("other"), None);
        let mut names: Vec<_> = RunReason::ALL.iter().map(|r| r.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn fragment_before_init_is_dropped() {
        let mut s = Sim::new(30, 0);
        assert_eq!(s.frag(1000, None), [Drop]);
        assert!(!s.seg.is_open());
    }

    #[test]
    fn first_run_connects_then_rolls_at_segment_length_on_a_fragment_boundary() {
        let mut s = Sim::new(3, 0);
        s.init(b"init");
        assert_eq!(s.frag(1000, None), [StartRun(RunReason::Connect), Create]);
        assert_eq!(s.frag(1000, None), [Append { sync: true }]);
        // 2 s held: not yet 3 s, append.
        assert_eq!(s.frag(1500, None), [Append { sync: true }]);
        assert_eq!(s.seg.open_duration_ns(), 3_500 * MS as u64);
        // 3.5 s held >= 3 s: this fragment starts the next segment.
        assert_eq!(s.frag(1000, None), [Roll]);
        assert_eq!(s.seg.open_duration_ns(), 1_000 * MS as u64);
        assert_eq!(s.seg.open_size_bytes(), 4 + 100);
    }

    #[test]
    fn end_of_run_closes_and_the_next_run_is_a_reconnect() {
        let mut s = Sim::new(30, 0);
        s.init(b"init");
        s.frag(1000, None);
        assert_eq!(s.input(Input::EndRun), [Close]);
        assert_eq!(s.input(Input::EndRun), []);
        assert_eq!(s.frag(1000, None), [StartRun(RunReason::Reconnect), Create]);
    }

    #[test]
    fn ingest_reason_wins_and_closes_the_open_run() {
        let mut s = Sim::new(30, 0);
        s.init(b"init");
        s.frag(1000, Some(RunReason::Connect));
        assert_eq!(
            s.frag(1000, Some(RunReason::ClockStep)),
            [Close, StartRun(RunReason::ClockStep), Create]
        );
    }

    #[test]
    fn same_init_again_changes_nothing() {
        let mut s = Sim::new(30, 0);
        s.init(b"init");
        s.frag(1000, None);
        assert_eq!(s.init(b"init"), []);
        assert_eq!(s.frag(1000, None), [Append { sync: true }]);
    }

    #[test]
    fn new_init_mid_run_closes_at_once_and_starts_a_codec_change_run() {
        let mut s = Sim::new(30, 0);
        s.init(b"init-640x480");
        s.frag(1000, None);
        s.frag(1000, None);
        assert_eq!(s.init(b"init-1280x720"), [Close]);
        assert!(!s.seg.is_open());
        assert_eq!(
            s.frag(1000, None),
            [StartRun(RunReason::CodecChange), Create]
        );
        assert_eq!(&**s.seg.init().unwrap(), b"init-1280x720");
        // The new segment counts the new init segment's size.
        assert_eq!(s.seg.open_size_bytes(), 13 + 100);
    }

    #[test]
    fn new_init_between_runs_is_no_codec_change() {
        let mut s = Sim::new(30, 0);
        s.init(b"a");
        s.frag(1000, None);
        s.input(Input::EndRun);
        assert_eq!(s.init(b"bb"), []);
        assert_eq!(
            s.frag(1000, Some(RunReason::Reconnect)),
            [StartRun(RunReason::Reconnect), Create]
        );
    }

    #[test]
    fn a_reconnect_reason_beats_a_pending_codec_change() {
        let mut s = Sim::new(30, 0);
        s.init(b"a");
        s.frag(1000, None);
        s.init(b"bb");
        assert_eq!(
            s.frag(1000, Some(RunReason::Reconnect)),
            [StartRun(RunReason::Reconnect), Create]
        );
    }

    #[test]
    fn a_failed_write_ends_the_run_and_the_next_is_dropped() {
        let mut s = Sim::new(30, 0);
        s.init(b"init");
        s.frag(1000, None);
        s.frag(1000, None);
        assert_eq!(s.input(Input::WriteFailed), [Close]);
        assert_eq!(s.frag(1000, None), [StartRun(RunReason::Dropped), Create]);
        // A failed create: the executor closes whatever is open (nothing), the reason carries over.
        assert_eq!(s.input(Input::WriteFailed), [Close]);
        assert_eq!(s.frag(1000, None), [StartRun(RunReason::Dropped), Create]);
    }

    #[test]
    fn sync_interval_syncs_on_fragments_and_ticks() {
        let mut s = Sim::new(30, 2500);
        s.init(b"init");
        assert_eq!(s.frag(1000, None), [StartRun(RunReason::Connect), Create]);
        // t = 1 s, 2 s: the create's sync is younger than 2.5 s.
        assert_eq!(s.frag(1000, None), [Append { sync: false }]);
        assert_eq!(s.frag(1000, None), [Append { sync: false }]);
        // t = 3 s: 3 s since the create's sync.
        assert_eq!(s.frag(1000, None), [Append { sync: true }]);
        // t = 4 s: unsynced again; ticks sync it once the last sync is 2.5 s old.
        assert_eq!(s.frag(1000, None), [Append { sync: false }]);
        // t = 5 s: 2 s since the sync at 3 s.
        assert_eq!(s.input(Input::Tick), []);
        s.now += 500 * MS; // 5.5 s
        assert_eq!(s.input(Input::Tick), [Sync]);
        s.now += 10 * S;
        assert_eq!(s.input(Input::Tick), [], "nothing unsynced");
    }

    #[test]
    fn zero_sync_interval_syncs_every_fragment() {
        let mut s = Sim::new(30, 0);
        s.init(b"init");
        s.frag(1000, None);
        for _ in 0..5 {
            assert_eq!(s.frag(40, None), [Append { sync: true }]);
        }
        assert_eq!(s.input(Input::Tick), []);
    }

    #[test]
    fn tick_without_a_segment_does_nothing() {
        let mut s = Sim::new(30, 0);
        assert_eq!(s.input(Input::Tick), []);
        s.init(b"init");
        assert_eq!(s.input(Input::Tick), []);
    }
}
