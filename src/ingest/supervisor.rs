//! The camera loop: builds the pipeline, watches its bus and a data watchdog, and on any loss
//! flushes the muxer, tears the pipeline down and rebuilds it after the backoff (see the
//! module docs of [`super`]).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use tracing::{debug, info, warn};

use super::chain::{ChainBuilder, Input};
use super::retina::RetinaRun;
use super::rtspsrc::rtsp_source;
use super::sink::SinkState;
use super::{camera_backoff, CameraStatus};
use crate::clock::mono_ns;
use crate::config::motion::Sample;
use crate::config::{CameraConfig, PipelineElements, Source, TimeSource, Transport};
use crate::motion::analyser::Analyser;
use crate::motion::branch::{KeyframeBranch, Substream, TimelineFn};
use crate::store::segmenter::RunReason;
use crate::store::writer::{WriterHandle, WriterMsg};

/// Why a pipeline run ended.
enum Ended {
    Stopped,
    SwitchedOff,
    Lost(String),
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
        let last_data_mono = Arc::new(AtomicI64::new(0));
        let mux_slot: Arc<Mutex<Option<gst::Element>>> = Arc::default();
        let sink_state = Arc::new(Mutex::new(SinkState::new(
            camera.clone(),
            self.writer.clone(),
            self.status.clone(),
            self.cfg.time_source,
            reason,
        )));
        let link_error: Arc<Mutex<Option<String>>> = Arc::default();
        let branch_slot: Arc<Mutex<Option<KeyframeBranch>>> = Arc::default();
        let timeline: TimelineFn = {
            let st = sink_state.clone();
            Arc::new(move |running| st.lock().ok()?.utc_of(running))
        };
        let chain = ChainBuilder {
            camera: camera.clone(),
            pipeline: pipeline.downgrade(),
            elements: self.elements.clone(),
            fragment_ns: self.cfg.fragment_duration.as_nanos() as u64,
            sink_state: sink_state.clone(),
            got_media: got_media.clone(),
            last_data: last_data_mono.clone(),
            keyframe_motion: self
                .cfg
                .motion
                .as_ref()
                .filter(|m| m.sample == Sample::Keyframes)
                .and_then(|m| Some((m.decoder.clone(), self.analyser.clone()?))),
            timeline,
            branch_slot: branch_slot.clone(),
            mux_slot: mux_slot.clone(),
        };
        let bus = pipeline.bus().ok_or("pipeline has no bus")?;
        let mut retina_run = None;
        match self.cfg.source {
            Source::Rtspsrc => {
                self.add_rtspsrc(&pipeline, chain, &link_error)?;
                pipeline
                    .set_state(gst::State::Playing)
                    .map_err(|e| format!("cannot start: {e}"))?;
            }
            Source::Retina => {
                // PLAYING first (an empty pipeline gets there at once): the chain is added
                // from the RTSP thread and follows the pipeline's state. Added while the
                // pipeline was still on its way, the appsink could stay in PAUSED and block the
                // muxer on its preroll, and with it the RTSP thread.
                pipeline
                    .set_state(gst::State::Playing)
                    .map_err(|e| format!("cannot start: {e}"))?;
                retina_run = Some(RetinaRun::start(
                    &self.cfg,
                    &pipeline,
                    chain,
                    last_data_mono.clone(),
                    link_error.clone(),
                    self.status.clone(),
                )?)
            }
        }
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
        // Push EOS into the muxer (retina: through the timestamper) so it emits its half-built
        // fragment, and wait for it to reach the appsink before tearing down.
        let mux = mux_slot.lock().unwrap().take();
        if let Some(run) = retina_run {
            run.stop();
        }
        if let Some(mux) = mux {
            if self.cfg.source == Source::Rtspsrc {
                for pad in mux.sink_pads() {
                    pad.send_event(gst::event::Eos::new());
                }
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

    /// Adds an `rtspsrc` for the camera to `pipeline`; its first video pad gets `chain`.
    fn add_rtspsrc(
        &self,
        pipeline: &gst::Pipeline,
        chain: ChainBuilder,
        link_error: &Arc<Mutex<Option<String>>>,
    ) -> Result<(), String> {
        let src = rtsp_source(&self.cfg)?;
        // Over TCP packets arrive complete and in order: the jitter buffer has nothing to
        // reorder, and its per-packet timers (lost-packet detection, timestamp smoothing) cost
        // a thread wake-up per RTP packet. Turn them off; media time stays the sender's RTP time.
        let tcp = self.cfg.transport == Transport::Tcp;
        let rtcp_time = self.cfg.time_source == TimeSource::Rtcp;
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
        let video_selected = Arc::new(AtomicBool::new(false));
        src.connect("select-stream", false, move |args| {
            let caps = args[2].get::<gst::Caps>().ok()?;
            let is_video = caps
                .structure(0)
                .and_then(|s| s.get::<&str>("media").ok())
                .is_some_and(|m| m == "video");
            let take = is_video && !video_selected.swap(true, Ordering::SeqCst);
            Some(take.to_value())
        });
        pipeline.add(&src).map_err(|e| e.to_string())?;
        let link_error = link_error.clone();
        src.connect_pad_added(move |_src, pad| {
            let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
            let enc = caps
                .as_ref()
                .and_then(|c| c.structure(0))
                .and_then(|s| s.get::<String>("encoding-name").ok())
                .unwrap_or_default();
            if let Err(e) = chain.attach(&enc, pad, Input::Rtp, false) {
                *link_error.lock().unwrap() = Some(e);
            }
        });
        Ok(())
    }
}
