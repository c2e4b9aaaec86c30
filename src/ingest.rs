//! Camera ingest: one GStreamer pipeline per camera, rebuilt on every loss (DESIGN section 3).
//!
//! `rtspsrc → rtph26Xdepay → h26Xparse → h26Xtimestamper → isofmp4mux → appsink`. The appsink
//! callback does no I/O: it tells the init segment (`HEADER|DISCONT`) from fragments (`HEADER`),
//! stamps each fragment with its UTC time, and hands it to the storage writer. A supervisor thread
//! per camera watches the bus and a data watchdog on the depayloader; on any loss (error, EOS it did
//! not ask for, no data for `stall_timeout`) it pushes EOS into the muxer so the half-built fragment
//! is kept, tears the pipeline down and rebuilds it after an exponential backoff from 1 s to 30 s
//! growing by a factor of 1.2 per failure, with ±10 % jitter: 15 s into an outage the next attempt
//! is at most about 4 s away (a rebooting camera is back on record within 5 s of its return), and
//! a camera that stays away is asked every 30 s after about 3 minutes.
//! Storage and index work do not belong here.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::clock::{mono_ns, now_utc_ns};
use crate::config::motion::Sample;
use crate::config::{CameraConfig, PipelineElements, TimeSource, Transport};
use crate::motion::analyser::Analyser;
use crate::motion::branch::{KeyframeBranch, Substream, TimelineFn};
use crate::store::segfile::Payload;
use crate::store::segmenter::RunReason;
use crate::store::writer::{Fragment, WriterHandle, WriterMsg};

/// Initialises GStreamer and registers the statically linked fMP4 muxer (`isofmp4mux`).
pub fn init_gstreamer() -> Result<(), gst::glib::Error> {
    gst::init()?;
    gstfmp4::plugin_register_static()
        .map_err(|e| gst::glib::Error::new(gst::CoreError::Failed, &e.to_string()))?;
    Ok(())
}

/// A fragment as the muxer produced it: a buffer list written with one `writev` where possible.
struct BufferListPayload(gst::BufferList);

impl Payload for BufferListPayload {
    fn len(&self) -> usize {
        self.0.iter().map(|b| b.size()).sum()
    }
    fn write_to(&self, f: &mut std::fs::File) -> std::io::Result<()> {
        use std::io::Write;
        let maps: Vec<gst::BufferMap<'_, gst::buffer::Readable>> = self
            .0
            .iter()
            .map(|b| b.map_readable())
            .collect::<Result<_, _>>()
            .map_err(|_| std::io::Error::other("buffer not readable"))?;
        let mut slices: Vec<std::io::IoSlice<'_>> = maps
            .iter()
            .map(|m| std::io::IoSlice::new(m.as_slice()))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = f.write_vectored(rest)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }
    fn edit_head(&mut self, edit: &mut dyn FnMut(&mut [u8]) -> bool) -> bool {
        // The muxer hands the fragment header (styp, prft, moof, mdat header) over as the first
        // buffer; making it writable copies those few hundred bytes at most.
        let Some(b) = self.0.make_mut().get_mut(0) else {
            return false;
        };
        let Ok(mut m) = b.map_writable() else {
            return false;
        };
        edit(m.as_mut_slice())
    }
}

/// Growth of the reconnect delay per failed attempt.
pub const BACKOFF_FACTOR: f64 = 1.2;

/// A new element of `factory`. Errors: the element is not installed, named in the message.
pub fn make_element(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element {factory:?} is not available"))
}

/// Adds `chain` to `pipeline`, links it in order, starts it (downstream first) and links the
/// new `rtspsrc` pad `pad` to its head. Errors: a link is refused (caps) or an element does not
/// start, in words.
pub fn attach_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    chain: &[&gst::Element],
) -> Result<(), String> {
    pipeline.add_many(chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(chain).map_err(|e| format!("link: {e}"))?;
    for e in chain.iter().rev() {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let head = chain.first().ok_or("empty chain")?;
    pad.link(
        &head
            .static_pad("sink")
            .ok_or("the chain's head has no sink pad")?,
    )
    .map_err(|e| format!("link rtspsrc: {e:?}"))?;
    Ok(())
}

/// An `rtspsrc` set up for camera `cfg` as every connection to it is (the recorder's runs and
/// `edgerec probe`): URL, jitter-buffer latency, transport, credentials (never logged) and the
/// stall timeout as both the TCP and the UDP receive timeout.
///
/// Errors: the `rtspsrc` element is missing (gst-plugins-good not installed).
pub fn rtsp_source(cfg: &CameraConfig) -> Result<gst::Element, String> {
    let src = make_element("rtspsrc")?;
    src.set_property("location", &cfg.url);
    src.set_property("latency", cfg.latency_ms);
    src.set_property_from_str(
        "protocols",
        match cfg.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        },
    );
    if let Some(u) = &cfg.username {
        src.set_property("user-id", u);
    }
    if let Some(p) = &cfg.password {
        src.set_property("user-pw", p);
    }
    src.set_property("tcp-timeout", cfg.stall_timeout.as_micros() as u64);
    src.set_property("timeout", cfg.stall_timeout.as_micros() as u64);
    Ok(src)
}

/// The camera reconnect backoff: 1 s growing ×[`BACKOFF_FACTOR`] per failure to 30 s, ±10 % jitter.
pub fn camera_backoff() -> Backoff {
    Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(30),
        BACKOFF_FACTOR,
        0.1,
    )
}

/// Live status of one camera, shared with status reporting.
#[derive(Debug, Default)]
pub struct CameraStatus {
    /// Whether the pipeline is delivering media.
    pub connected: AtomicBool,
    /// Pipeline rebuilds after a loss.
    pub reconnects: AtomicU64,
    /// Fragment bytes handed to the writer.
    pub bytes: AtomicU64,
    /// UTC ns of the last fragment handed on (0: none yet).
    pub last_fragment_utc_ns: AtomicI64,
    /// The recording switch is off ([`crate::control`]): the supervisor flushes the last
    /// fragment, ends the run and waits until it is on again (checked every 50 ms).
    pub switched_off: AtomicBool,
    /// The supervisor is recording (running or retrying a pipeline): false while switched off
    /// or stopped. It follows `switched_off` once the change took effect.
    pub recording: AtomicBool,
    /// Why the last pipeline run was lost (empty before the first loss).
    pub last_loss: Mutex<String>,
    /// Motion detection counters and events (all zero when motion is off).
    pub motion: Arc<crate::motion::MotionStatus>,
}

/// Why a pipeline run ended.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_back_from_a_reboot_is_tried_again_within_4_5_s_whatever_the_jitter() {
        for u in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let mut b = camera_backoff();
            let (mut t, mut attempts) = (Duration::ZERO, Vec::new());
            while t < Duration::from_secs(60) {
                t += b.next_delay_with(u);
                attempts.push(t);
            }
            // A camera that returns 5 to 16 s into an outage (a reboot) is tried again within 4.5 s.
            for tenth in 50..=160 {
                let back = Duration::from_millis(tenth * 100);
                let next = *attempts.iter().find(|at| **at >= back).unwrap();
                assert!(
                    next - back <= Duration::from_millis(4500),
                    "jitter {u}: back at {back:?}, next attempt at {next:?}"
                );
            }
        }
    }
}

#[derive(Debug)]
enum Ended {
    Stopped,
    SwitchedOff,
    Lost(String),
}

/// Maps a run's media timeline onto UTC.
struct Timeline {
    base_utc_ns: i64,
    base_running_ns: u64,
    wall_minus_mono_ns: i64,
    /// Anchored on the camera's RTCP sender-report clock rather than the system clock.
    from_camera: bool,
}

/// How long fragments are held waiting for the first RTCP sender report.
const RTCP_WAIT: Duration = Duration::from_secs(5);

/// A fragment waiting for its time.
struct Held {
    payload: BufferListPayload,
    decode_time: u64,
    running_ns: u64,
    duration_ns: u64,
    new_run: Option<RunReason>,
    /// Its time by the system clock if it arrived while no timeline existed; used if no sender
    /// report ever comes.
    system_utc_ns: Option<i64>,
}

struct SinkState {
    camera: Arc<str>,
    writer: WriterHandle,
    status: Arc<CameraStatus>,
    time_source: TimeSource,
    timeline: Option<Timeline>,
    next_new_run: Option<RunReason>,
    pending: Vec<Held>,
    pending_since: Option<Instant>,
    rtcp_missing: bool,
}

impl SinkState {
    fn on_sample(&mut self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        let Some(mut list) = sample.buffer_list_owned() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        if list.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let first = list.get(0).expect("non-empty");
        if first
            .flags()
            .contains(gst::BufferFlags::DISCONT | gst::BufferFlags::HEADER)
        {
            let data = first
                .map_readable()
                .map_err(|_| gst::FlowError::Error)?
                .to_vec();
            self.writer.send(WriterMsg::Init {
                camera: self.camera.clone(),
                data,
            });
            list.make_mut().remove(0..1);
            if list.is_empty() {
                return Ok(gst::FlowSuccess::Ok);
            }
        }
        let first = list.get(0).expect("non-empty");
        let duration_ns = first.duration().map(|d| d.nseconds()).unwrap_or(0);
        let segment = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
        let running = first
            .pts()
            .and_then(|p| segment.as_ref().and_then(|s| s.to_running_time(p)))
            .map(|t| t.nseconds())
            .unwrap_or(0);
        let now_utc = now_utc_ns();
        let wall_minus_mono = now_utc - mono_ns();
        let prft = if self.time_source == TimeSource::Rtcp {
            first
                .map_readable()
                .ok()
                .and_then(|m| crate::mp4::prft_utc_ns(m.as_slice()))
        } else {
            None
        };
        debug!(camera = %self.camera, running_ms = running / 1_000_000, duration_ms = duration_ns / 1_000_000,
               prft = ?prft, "fragment");
        if let Some(t) = &self.timeline {
            let stepped = match (t.from_camera, prft) {
                // Camera time: a jump of the sender-report clock against media time.
                (true, Some(p)) => {
                    (p - (t.base_utc_ns + running as i64 - t.base_running_ns as i64)).abs()
                        > 1_000_000_000
                }
                // System time: a jump of the real-time clock against the monotonic clock.
                (false, _) => (wall_minus_mono - t.wall_minus_mono_ns).abs() > 1_000_000_000,
                (true, None) => false,
            };
            if stepped {
                warn!(camera = %self.camera, "clock stepped by more than 1 s: starting a new run");
                self.timeline = None;
                self.next_new_run.get_or_insert(RunReason::ClockStep);
            }
        }
        let decode_time = first
            .map_readable()
            .ok()
            .and_then(|m| crate::mp4::fragment_decode_time(m.as_slice()))
            .unwrap_or(0);
        let payload = BufferListPayload(list);
        // Only a fragment that starts a timeline, or waits for a sender report, needs its system
        // time; the others are stamped from the run's timeline.
        let sys = self
            .timeline
            .is_none()
            .then(|| self.system_timeline(sink, running, now_utc, wall_minus_mono));
        let held = Held {
            payload,
            decode_time,
            running_ns: running,
            duration_ns,
            new_run: self.next_new_run.take(),
            system_utc_ns: sys.as_ref().map(|t| t.base_utc_ns),
        };
        if let Some(sys) = sys {
            if let Some(p) = prft {
                self.timeline = Some(Timeline {
                    base_utc_ns: p,
                    base_running_ns: running,
                    wall_minus_mono_ns: wall_minus_mono,
                    from_camera: true,
                });
                info!(camera = %self.camera, held = self.pending.len(),
                      "timeline anchored to the camera's RTCP sender-report clock");
            } else if self.time_source == TimeSource::Rtcp && !self.rtcp_missing {
                // Hold fragments (bounded) until the first sender report says what time they are.
                let since = *self.pending_since.get_or_insert_with(Instant::now);
                self.pending.push(held);
                if since.elapsed() < RTCP_WAIT {
                    return Ok(gst::FlowSuccess::Ok);
                }
                warn!(camera = %self.camera, "no RTCP sender report within {RTCP_WAIT:?}: using the system clock");
                self.rtcp_missing = true;
                self.finish();
                return Ok(gst::FlowSuccess::Ok);
            } else {
                self.timeline = Some(sys);
            }
        }
        self.pending.push(held);
        self.flush_pending();
        Ok(gst::FlowSuccess::Ok)
    }

    /// A timeline from the system clock: the fragment starting at `running` was captured
    /// (pipeline clock now − its running time) ago.
    fn system_timeline(
        &self,
        sink: &gst_app::AppSink,
        running: u64,
        now_utc: i64,
        wall_minus_mono: i64,
    ) -> Timeline {
        let age = match (sink.clock(), sink.base_time()) {
            (Some(c), Some(b)) => c.time().nseconds().saturating_sub(b.nseconds() + running) as i64,
            _ => 0,
        };
        Timeline {
            base_utc_ns: now_utc - age,
            base_running_ns: running,
            wall_minus_mono_ns: wall_minus_mono,
            from_camera: false,
        }
    }

    /// Hands on fragments still held for a sender report, stamped by the system clock (the
    /// pipeline ended or no report came).
    fn finish(&mut self) {
        if self.timeline.is_none() {
            if let Some((h, utc)) = self
                .pending
                .first()
                .and_then(|h| Some((h, h.system_utc_ns?)))
            {
                self.timeline = Some(Timeline {
                    base_utc_ns: utc,
                    base_running_ns: h.running_ns,
                    wall_minus_mono_ns: now_utc_ns() - mono_ns(),
                    from_camera: false,
                });
            }
        }
        self.flush_pending();
    }

    /// Stamps held fragments from the timeline and hands them to the writer, in order.
    fn flush_pending(&mut self) {
        let Some(t) = &self.timeline else { return };
        let (base_utc, base_running) = (t.base_utc_ns, t.base_running_ns as i64);
        self.pending_since = None;
        for h in std::mem::take(&mut self.pending) {
            let utc_ns = base_utc + (h.running_ns as i64 - base_running);
            let n = h.payload.len() as u64;
            let new_run = h.new_run.or(self.next_new_run.take());
            let f = Fragment {
                camera: self.camera.clone(),
                payload: Box::new(h.payload),
                utc_ns,
                duration_ns: h.duration_ns,
                decode_time: h.decode_time,
                new_run,
            };
            if self.writer.send_fragment(f) {
                self.status.bytes.fetch_add(n, Ordering::Relaxed);
                self.status
                    .last_fragment_utc_ns
                    .store(utc_ns, Ordering::Relaxed);
            } else {
                warn!(camera = %self.camera, "writer queue full: fragment dropped");
                self.next_new_run = Some(RunReason::Dropped);
            }
        }
    }
}

/// Runs a camera until `stop` is set: builds the pipeline, watches it, rebuilds it on loss.
pub struct CameraSupervisor {
    cfg: CameraConfig,
    elements: PipelineElements,
    writer: WriterHandle,
    status: Arc<CameraStatus>,
    stop: Arc<AtomicBool>,
    /// The camera's motion analysis, one for all runs (its counters and aggregation window go
    /// on; each new run warms its background up again).
    analyser: Option<Arc<Mutex<Analyser>>>,
}

impl CameraSupervisor {
    /// Creates a supervisor; `stop` ends it (checked every 100 ms).
    pub fn new(
        cfg: CameraConfig,
        elements: PipelineElements,
        writer: WriterHandle,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let status = Arc::new(CameraStatus::default());
        let analyser = cfg.motion.as_ref().map(|m| {
            Arc::new(Mutex::new(Analyser::new(
                Arc::from(cfg.id.as_str()),
                m.clone(),
                status.motion.clone(),
                Box::new(writer.clone()),
            )))
        });
        Self {
            cfg,
            elements,
            writer,
            status,
            stop,
            analyser,
        }
    }

    /// The camera's live status.
    pub fn status(&self) -> Arc<CameraStatus> {
        self.status.clone()
    }

    /// Starts the supervisor thread.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("cam-{}", self.cfg.id))
            .spawn(move || self.run())
    }

    fn run(self) {
        let camera: Arc<str> = Arc::from(self.cfg.id.as_str());
        let substream_stop = Arc::new(AtomicBool::new(false));
        let substream = self.spawn_substream(&camera, &substream_stop);
        let mut backoff = camera_backoff();
        let mut attempt = 0u64;
        let mut ran_before = false;
        while !self.stop.load(Ordering::Relaxed) {
            if self.status.switched_off.load(Ordering::Relaxed) {
                if self.status.recording.swap(false, Ordering::Relaxed) {
                    info!(camera = %camera, "recording switched off");
                }
                std::thread::sleep(Duration::from_millis(50));
                attempt = 0;
                backoff.reset();
                continue;
            }
            if !self.status.recording.swap(true, Ordering::Relaxed) {
                info!(camera = %camera, "recording");
            }
            // The first connection of the process, a connection after recording was switched on
            // again, or one after the camera was lost.
            let reason = match (attempt, ran_before) {
                (0, false) => RunReason::Connect,
                (0, true) => RunReason::Restart,
                _ => RunReason::Reconnect,
            };
            attempt += 1;
            ran_before = true;
            let started = Instant::now();
            let got_media = Arc::new(AtomicBool::new(false));
            let ended = match self.run_pipeline(&camera, reason, &got_media) {
                Ok(e) => e,
                Err(e) => Ended::Lost(format!("pipeline: {e}")),
            };
            if let Ended::Lost(why) = &ended {
                *self
                    .status
                    .last_loss
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = why.clone();
            }
            self.status.connected.store(false, Ordering::Relaxed);
            self.writer.send(WriterMsg::EndRun {
                camera: camera.clone(),
            });
            match ended {
                Ended::Stopped => break,
                Ended::SwitchedOff => continue,
                Ended::Lost(why) => {
                    if got_media.load(Ordering::Relaxed)
                        && started.elapsed() > Duration::from_secs(5)
                    {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    warn!(camera = %camera, url = %self.cfg.redacted_url(), retry_in_s = delay.as_secs_f32(),
                          "camera lost: {why}");
                    self.status.reconnects.fetch_add(1, Ordering::Relaxed);
                    let until = Instant::now() + delay;
                    while Instant::now() < until
                        && !self.stop.load(Ordering::Relaxed)
                        && !self.status.switched_off.load(Ordering::Relaxed)
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        self.status.recording.store(false, Ordering::Relaxed);
        substream_stop.store(true, Ordering::Relaxed);
        if let Some(t) = substream {
            let _ = t.join();
        }
        info!(camera = %camera, "camera stopped");
    }

    /// Starts the substream motion analysis when the camera has one.
    fn spawn_substream(
        &self,
        camera: &Arc<str>,
        stop: &Arc<AtomicBool>,
    ) -> Option<std::thread::JoinHandle<()>> {
        let m = self.cfg.motion.as_ref()?;
        let Sample::Substream { url, fps } = &m.sample else {
            return None;
        };
        let sub = Substream {
            camera: camera.clone(),
            url: url.clone(),
            username: self.cfg.username.clone(),
            password: self.cfg.password.clone(),
            fps: *fps,
            stall_timeout: self.cfg.stall_timeout,
            status: self.status.clone(),
        };
        match sub.spawn(self.analyser.clone()?, stop.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(camera = %camera, "motion: cannot start the substream thread: {e}");
                None
            }
        }
    }

    fn run_pipeline(
        &self,
        camera: &Arc<str>,
        reason: RunReason,
        got_media: &Arc<AtomicBool>,
    ) -> Result<Ended, String> {
        let pipeline = gst::Pipeline::with_name(&format!("cam-{}", self.cfg.id));
        let src = rtsp_source(&self.cfg)?;
        // Over TCP packets arrive complete and in order: the jitter buffer has nothing to
        // reorder, and its per-packet timers (lost-packet detection, timestamp smoothing) cost
        // a thread wake-up per RTP packet. Turn them off; media time stays the sender's RTP time.
        let tcp = self.cfg.transport == Transport::Tcp;
        let rtcp_time = self.cfg.time_source == TimeSource::Rtcp;
        {
            src.connect("new-manager", false, move |args| {
                let manager = args[1].get::<gst::Element>().ok()?;
                // Camera time: rtpbin tags buffers with the sender-report clock, the muxer turns
                // that into a `prft` box per fragment (never `ntp-sync=true`: it breaks the muxer).
                if rtcp_time && manager.has_property("add-reference-timestamp-meta") {
                    manager.set_property("add-reference-timestamp-meta", true);
                }
                if !tcp {
                    return None;
                }
                if manager.has_property("do-lost") {
                    manager.set_property("do-lost", false);
                }
                if manager.has_property("buffer-mode") {
                    manager.set_property_from_str("buffer-mode", "none");
                }
                None
            });
        }
        let video_selected = Arc::new(AtomicBool::new(false));
        {
            let vs = video_selected.clone();
            src.connect("select-stream", false, move |args| {
                let caps = args[2].get::<gst::Caps>().ok()?;
                let is_video = caps
                    .structure(0)
                    .and_then(|s| s.get::<&str>("media").ok())
                    .is_some_and(|m| m == "video");
                let take = is_video && !vs.swap(true, Ordering::SeqCst);
                Some(take.to_value())
            });
        }
        pipeline.add(&src).map_err(|e| e.to_string())?;

        let last_data_mono = Arc::new(AtomicI64::new(0));
        let mux_slot: Arc<Mutex<Option<gst::Element>>> = Arc::default();
        let sink_state = Arc::new(Mutex::new(SinkState {
            camera: camera.clone(),
            writer: self.writer.clone(),
            status: self.status.clone(),
            time_source: self.cfg.time_source,
            timeline: None,
            next_new_run: Some(reason),
            pending: Vec::new(),
            pending_since: None,
            rtcp_missing: false,
        }));
        let link_error: Arc<Mutex<Option<String>>> = Arc::default();
        let branch_slot: Arc<Mutex<Option<KeyframeBranch>>> = Arc::default();
        let keyframe_motion = self
            .cfg
            .motion
            .as_ref()
            .filter(|m| m.sample == Sample::Keyframes)
            .and_then(|m| Some((m.decoder.clone(), self.analyser.clone()?)));
        {
            let branch_slot = branch_slot.clone();
            let keyframe_motion = keyframe_motion.clone();
            let camera = camera.clone();
            let timeline: TimelineFn = {
                let st = sink_state.clone();
                Arc::new(move |running| {
                    let st = st.lock().ok()?;
                    let t = st.timeline.as_ref()?;
                    Some(t.base_utc_ns + running as i64 - t.base_running_ns as i64)
                })
            };
            let pipeline_weak = pipeline.downgrade();
            let elements = self.elements.clone();
            let fragment_ns = self.cfg.fragment_duration.as_nanos() as u64;
            let last_data = last_data_mono.clone();
            let mux_slot = mux_slot.clone();
            let sink_state = sink_state.clone();
            let link_error = link_error.clone();
            let got_media = got_media.clone();
            src.connect_pad_added(move |_src, pad| {
                let Some(pipeline) = pipeline_weak.upgrade() else {
                    return;
                };
                let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
                let enc = caps
                    .as_ref()
                    .and_then(|c| c.structure(0))
                    .and_then(|s| s.get::<String>("encoding-name").ok())
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let names = match enc.as_str() {
                    "H264" => [
                        &elements.h264_depay,
                        &elements.h264_parse,
                        &elements.h264_timestamper,
                    ],
                    "H265" => [
                        &elements.h265_depay,
                        &elements.h265_parse,
                        &elements.h265_timestamper,
                    ],
                    other => {
                        *link_error.lock().unwrap() = Some(format!(
                            "unsupported video encoding {other:?} (H264 and H265 are)"
                        ));
                        return;
                    }
                };
                let build = || -> Result<(), String> {
                    let mk = make_element;
                    let depay = mk(names[0])?;
                    let parse = mk(names[1])?;
                    if let Some((decoder, analyser)) = &keyframe_motion {
                        let caps_name = if enc == "H264" {
                            "video/x-h264"
                        } else {
                            "video/x-h265"
                        };
                        let src = parse.static_pad("src").ok_or("parser has no src pad")?;
                        match KeyframeBranch::attach(
                            camera.clone(),
                            &src,
                            caps_name,
                            decoder.as_deref(),
                            analyser.clone(),
                            timeline.clone(),
                        ) {
                            Ok(b) => *branch_slot.lock().unwrap() = Some(b),
                            Err(e) => {
                                warn!(camera = %camera, "motion detection off for this run: {e}")
                            }
                        }
                    }
                    let ts = mk(names[2])?;
                    let mux = mk(&elements.muxer)?;
                    if mux.has_property("fragment-duration") {
                        mux.set_property("fragment-duration", fragment_ns);
                    }
                    if mux.has_property("send-force-keyunit") {
                        mux.set_property("send-force-keyunit", false);
                    }
                    // A camera that changes resolution or codec parameters: the muxer emits a
                    // new init segment before the next fragment (the writer starts a
                    // `codec_change` run on it) instead of failing on incompatible caps.
                    if mux.has_property("header-update-mode") {
                        mux.set_property_from_str("header-update-mode", "caps");
                    }
                    // Media time continues across runs: tfdt counts from 1970 (UTC at the
                    // pipeline's start plus its running time), so a reconnect never sends a
                    // player's decode time backwards (ffmpeg's HLS demuxer keeps one MP4 demuxer
                    // across EXT-X-DISCONTINUITY and drops frames whose DTS goes back).
                    if mux.has_property("decode-time-offset") {
                        mux.set_property("decode-time-offset", now_utc_ns());
                    }
                    let sink = gst_app::AppSink::builder()
                        .sync(false)
                        .buffer_list(true)
                        .max_buffers(0)
                        .build();
                    {
                        let st = sink_state.clone();
                        let got = got_media.clone();
                        sink.set_callbacks(
                            gst_app::AppSinkCallbacks::builder()
                                .new_sample(move |s| {
                                    got.store(true, Ordering::Relaxed);
                                    st.lock().unwrap().on_sample(s)
                                })
                                .build(),
                        );
                    }
                    let ld = last_data.clone();
                    depay
                        .static_pad("src")
                        .ok_or("depayloader has no src pad")?
                        .add_probe(
                            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                            move |_, _| {
                                ld.store(mono_ns(), Ordering::Relaxed);
                                gst::PadProbeReturn::Ok
                            },
                        );
                    attach_chain(
                        &pipeline,
                        pad,
                        &[&depay, &parse, &ts, &mux, sink.upcast_ref()],
                    )?;
                    *mux_slot.lock().unwrap() = Some(mux);
                    Ok(())
                };
                if let Err(e) = build() {
                    *link_error.lock().unwrap() = Some(e);
                }
            });
        }

        let bus = pipeline.bus().ok_or("pipeline has no bus")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start: {e}"))?;
        info!(camera = %camera, url = %self.cfg.redacted_url(), "connecting");
        let start = Instant::now();
        let stall_ns = self.cfg.stall_timeout.as_nanos() as i64;
        let mut connected_logged = false;
        let ended = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Ended::Stopped;
            }
            if self.status.switched_off.load(Ordering::Relaxed) {
                break Ended::SwitchedOff;
            }
            if let Some(e) = link_error.lock().unwrap().take() {
                break Ended::Lost(e);
            }
            if let Some(b) = branch_slot.lock().unwrap().as_ref() {
                b.poll();
            }
            let last = last_data_mono.load(Ordering::Relaxed);
            if last == 0 {
                if start.elapsed() > self.cfg.stall_timeout * 2 {
                    break Ended::Lost(format!(
                        "no media within {:?} of connecting",
                        self.cfg.stall_timeout * 2
                    ));
                }
            } else {
                if !connected_logged {
                    connected_logged = true;
                    self.status.connected.store(true, Ordering::Relaxed);
                    info!(camera = %camera, "receiving media");
                }
                if mono_ns() - last > stall_ns {
                    break Ended::Lost(format!("no data for {:?}", self.cfg.stall_timeout));
                }
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            use gst::MessageView;
            match msg.view() {
                MessageView::Eos(_) => break Ended::Lost("end of stream".into()),
                MessageView::Error(e) => {
                    break Ended::Lost(format!(
                        "{} ({})",
                        e.error(),
                        e.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default()
                    ))
                }
                MessageView::Warning(w) => {
                    debug!(camera = %camera, "gstreamer warning: {}", w.error())
                }
                _ => {}
            }
        };
        // Push EOS into the muxer so it emits its half-built fragment, and wait for it to reach
        // the appsink before tearing down.
        let mux = mux_slot.lock().unwrap().take();
        if let Some(mux) = mux {
            for pad in mux.sink_pads() {
                pad.send_event(gst::event::Eos::new());
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                match bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                    Some(m) if matches!(m.view(), gst::MessageView::Eos(_)) => break,
                    Some(m) if matches!(m.view(), gst::MessageView::Error(_)) => break,
                    _ => {}
                }
            }
        }
        let _ = pipeline.set_state(gst::State::Null);
        branch_slot.lock().unwrap().take();
        sink_state.lock().unwrap().finish();
        Ok(ended)
    }
}
