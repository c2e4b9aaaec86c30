//! The GStreamer side of motion detection: frames in, [`super::analyser::Analyser`] called.
//!
//! **Key frames** (`sample = "keyframes"`): a buffer probe on the recording pipeline's parser
//! output hands every key frame (and nothing else: decoding is the whole cost, so non-key frames
//! are dropped before the decoder) to a small analysis pipeline of its own:
//! `appsrc (leaky, one buffer, keeps the newest) ! decoder ! videoconvert ! appsink (one buffer)`.
//! The recording thread does one non-blocking push per GOP; the decoding and the analysis run on
//! the analysis pipeline's streaming thread. The analysis pipeline has its own bus, so a decoder
//! that fails or a frame that does not negotiate stops motion detection (with a warning) and never
//! the recording: a `tee` in the recording pipeline would pass a decoder's flow error back to the
//! parser and end the run.
//!
//! **Substream** (`sample = "substream"`): a pipeline of its own on the camera's second stream,
//! `rtspsrc ! decodebin ! videorate (drop only, at most fps) ! videoconvert ! appsink`, supervised
//! by its own thread with the camera backoff.
//!
//! Detection rules belong to [`super::detector`]; recording's pipeline to `crate::ingest`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tracing::{info, warn};

use super::analyser::Analyser;
use super::detector::Luma;
use crate::clock::now_utc_ns;

/// Maps a running time of the recording pipeline (ns) to UTC ns, when the run's timeline is known.
pub type TimelineFn = Arc<dyn Fn(u64) -> Option<i64> + Send + Sync>;

/// Raw formats whose first plane is 8-bit luma; the appsink accepts only these.
const LUMA_FORMATS: [&str; 7] = ["I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "GRAY8"];

/// Test seam: `EDGEREC_MOTION_TEST_DELAY_MS` slows every analysed frame by that long, to show
/// that a slow analysis never changes recording.
fn test_delay() -> Option<Duration> {
    std::env::var("EDGEREC_MOTION_TEST_DELAY_MS")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

/// The decoder for `caps_name` (`video/x-h264` or `video/x-h265`): `configured` if set (it must
/// exist), else the highest-ranked decoder whose sink accepts the codec (a board's hardware
/// decoder outranks software ones).
///
/// Errors: the configured element does not exist, or no decoder for the codec is installed.
pub fn pick_decoder(caps_name: &str, configured: Option<&str>) -> Result<String, String> {
    if let Some(name) = configured {
        return gst::ElementFactory::find(name)
            .map(|_| name.to_owned())
            .ok_or_else(|| format!("motion decoder {name:?} is not installed"));
    }
    let caps = gst::Caps::new_empty_simple(caps_name);
    let list = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::MARGINAL,
    );
    let mut found: Vec<gst::ElementFactory> = list
        .into_iter()
        .filter(|f| {
            f.static_pad_templates()
                .iter()
                .any(|t| t.direction() == gst::PadDirection::Sink && t.caps().can_intersect(&caps))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.rank()));
    found
        .first()
        .map(|f| f.name().to_string())
        .ok_or_else(|| format!("no decoder for {caps_name} is installed"))
}

/// Checks that every motion `decoder` the config names is installed.
///
/// Errors: a [`crate::config::ConfigError::Rule`] naming `camera[i].motion.decoder`, or GStreamer
/// cannot be initialised.
pub fn check_decoders(cfg: &crate::config::Config) -> Result<(), crate::config::ConfigError> {
    let named: Vec<(usize, &str)> = cfg
        .cameras
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.motion.as_ref()?.decoder.as_deref()?)))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let rule = |key: String, rule: String| crate::config::ConfigError::Rule { key, rule };
    crate::ingest::init_gstreamer()
        .map_err(|e| rule("camera[].motion.decoder".into(), format!("GStreamer: {e}")))?;
    for (i, name) in named {
        if gst::ElementFactory::find(name).is_none() {
            return Err(rule(
                format!("camera[{i}].motion.decoder"),
                format!("GStreamer element {name:?} is not installed (gst-inspect-1.0 lists those that are)"),
            ));
        }
    }
    Ok(())
}

/// Reads the luma plane of a raw video sample and calls `f` with it.
fn with_luma<R>(sample: &gst::Sample, f: impl FnOnce(&Luma) -> R) -> Option<R> {
    let caps = sample.caps()?;
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    let buffer = sample.buffer()?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
    let data = frame.plane_data(0).ok()?;
    let stride = frame.plane_stride()[0] as usize;
    Some(f(&Luma {
        width: info.width() as usize,
        height: info.height() as usize,
        stride,
        data,
    }))
}

/// CPU time of the calling thread, ns.
fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// An appsink that keeps only the newest frame and runs the analysis on the streaming thread;
/// `utc` maps the frame's PTS to UTC ns. Every piece of work on that thread (decoding included)
/// is counted into the camera's CPU figure.
fn analysis_sink(
    analyser: Arc<Mutex<Analyser>>,
    utc: impl Fn(&gst::Sample) -> i64 + Send + Sync + 'static,
) -> gst_app::AppSink {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", gst::List::new(LUMA_FORMATS))
        .build();
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .max_buffers(1)
        .drop(true)
        .build();
    let delay = test_delay();
    let last_cpu = std::sync::atomic::AtomicU64::new(0);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let Ok(sample) = s.pull_sample() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                let t = utc(&sample);
                let mut a = analyser.lock().unwrap_or_else(|e| e.into_inner());
                with_luma(&sample, |l| a.frame(l, t));
                // This thread decodes and analyses, nothing else: its CPU time is the branch's.
                let now = thread_cpu_ns();
                let before = last_cpu.swap(now, Ordering::Relaxed);
                a.status()
                    .cpu_ns
                    .fetch_add(now.saturating_sub(before), Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    sink
}

/// The key-frame analysis of one recording run: attach it to the parser's src pad, drop it
/// (or call [`KeyframeBranch::stop`]) when the run ends.
pub struct KeyframeBranch {
    pipeline: gst::Pipeline,
    failed: Arc<AtomicBool>,
    camera: Arc<str>,
}

impl KeyframeBranch {
    /// Builds the analysis pipeline for camera `camera` and attaches it to `parser_src` (the
    /// recording parser's src pad, `video/x-h264` or `video/x-h265` in `avc`/`hvc1` form).
    /// `timeline` maps the recording's running time to UTC.
    ///
    /// Errors: no decoder for the codec, or an element is missing.
    pub fn attach(
        camera: Arc<str>,
        parser_src: &gst::Pad,
        caps_name: &str,
        decoder: Option<&str>,
        analyser: Arc<Mutex<Analyser>>,
        timeline: TimelineFn,
    ) -> Result<KeyframeBranch, String> {
        let dec_name = pick_decoder(caps_name, decoder)?;
        // A new run is a new encoder session: warm up again.
        analyser.lock().unwrap_or_else(|e| e.into_inner()).restart();
        let mk = |f: &str| {
            gst::ElementFactory::make(f)
                .build()
                .map_err(|_| format!("GStreamer element {f:?} is not available"))
        };
        let pipeline = gst::Pipeline::with_name(&format!("motion-{camera}"));
        let src = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(true)
            .max_bytes(0)
            .build();
        // Keep one buffer, the newest (GStreamer 1.20 properties, set by name).
        src.set_property("max-buffers", 1u64);
        src.set_property("max-time", 0u64);
        src.set_property_from_str("leaky-type", "downstream");
        let dec = mk(&dec_name)?;
        // One thread, no frame threading: a key frame comes out as soon as it is decoded, and
        // the branch's CPU time is that one thread's.
        if dec.has_property("max-threads") {
            dec.set_property("max-threads", 1i32);
        }
        // A broken frame is skipped, never an error.
        if dec.has_property("max-errors") {
            dec.set_property("max-errors", -1i32);
        }
        let convert = mk("videoconvert")?;
        let sink = analysis_sink(analyser, move |s| {
            let pts = s.buffer().and_then(|b| b.pts()).map(|p| p.nseconds());
            pts.and_then(|p| timeline(p)).unwrap_or_else(now_utc_ns)
        });
        let all = [
            src.upcast_ref::<gst::Element>(),
            &dec,
            &convert,
            sink.upcast_ref(),
        ];
        pipeline.add_many(all).map_err(|e| e.to_string())?;
        gst::Element::link_many(all).map_err(|e| format!("motion link: {e}"))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("motion pipeline cannot start: {e}"))?;
        info!(camera = %camera, decoder = %dec_name, "motion: analysing key frames");
        let failed = Arc::new(AtomicBool::new(false));
        {
            let failed = failed.clone();
            let src = src.clone();
            let camera = camera.clone();
            parser_src.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    if failed.load(Ordering::Relaxed) {
                        return gst::PadProbeReturn::Ok;
                    }
                    match &info.data {
                        Some(gst::PadProbeData::Event(e)) => {
                            if let gst::EventView::Caps(c) = e.view() {
                                src.set_caps(Some(&c.caps_owned()));
                            }
                        }
                        Some(gst::PadProbeData::Buffer(b))
                            if !b.flags().contains(gst::BufferFlags::DELTA_UNIT) =>
                        {
                            // Stamp the copy with its running time in the recording pipeline.
                            let running = pad
                                .sticky_event::<gst::event::Segment>(0)
                                .and_then(|s| {
                                    let seg = s.segment().downcast_ref::<gst::ClockTime>()?.clone();
                                    seg.to_running_time(b.pts()?)
                                });
                            let mut copy = b.copy();
                            {
                                let c = copy.make_mut();
                                c.set_pts(running);
                                c.set_dts(running);
                            }
                            if src.push_buffer(copy).is_err() {
                                warn!(camera = %camera, "motion: analysis pipeline stopped taking frames");
                                failed.store(true, Ordering::Relaxed);
                            }
                        }
                        _ => {}
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        Ok(KeyframeBranch {
            pipeline,
            failed,
            camera,
        })
    }

    /// Checks the analysis pipeline's bus: an error stops motion detection for this run (with a
    /// warning) and nothing else.
    pub fn poll(&self) {
        let Some(bus) = self.pipeline.bus() else {
            return;
        };
        while let Some(m) = bus.pop() {
            if let gst::MessageView::Error(e) = m.view() {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    warn!(camera = %self.camera, "motion detection stopped for this run: {}", e.error());
                }
            }
        }
    }

    /// Stops the analysis pipeline.
    pub fn stop(&self) {
        self.failed.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for KeyframeBranch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings of a substream analysis.
pub struct Substream {
    /// Camera id.
    pub camera: Arc<str>,
    /// The substream's URL.
    pub url: String,
    /// Credentials of the camera.
    pub username: Option<String>,
    /// Credentials of the camera.
    pub password: Option<String>,
    /// Frames analysed per second.
    pub fps: u32,
    /// Reconnect when no frame came for twice this long.
    pub stall_timeout: Duration,
    /// The camera's status: while its recording switch is off, the substream is closed and
    /// nothing is analysed (an operator who switches a camera off expects no clips from it either).
    pub status: Arc<crate::ingest::CameraStatus>,
}

impl Substream {
    /// Runs the substream analysis on a thread of its own until `stop` is set; reconnects with
    /// the camera backoff.
    pub fn spawn(
        self,
        analyser: Arc<Mutex<Analyser>>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("motion-{}", self.camera))
            .spawn(move || {
                let mut backoff = crate::ingest::camera_backoff();
                while !stop.load(Ordering::Relaxed) {
                    if self.status.switched_off.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    let started = Instant::now();
                    let why = self
                        .run_once(&analyser, &stop)
                        .unwrap_or_else(|e| format!("pipeline: {e}"));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if self.status.switched_off.load(Ordering::Relaxed) {
                        info!(camera = %self.camera, "motion: substream closed while recording is switched off");
                        backoff.reset();
                        continue;
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    warn!(camera = %self.camera, url = %crate::config::redact_url(&self.url),
                          retry_in_s = delay.as_secs_f32(), "motion substream lost: {why}");
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
    }

    /// One connection: returns why it ended.
    fn run_once(
        &self,
        analyser: &Arc<Mutex<Analyser>>,
        stop: &AtomicBool,
    ) -> Result<String, String> {
        let mk = |f: &str| {
            gst::ElementFactory::make(f)
                .build()
                .map_err(|_| format!("GStreamer element {f:?} is not available"))
        };
        let pipeline = gst::Pipeline::with_name(&format!("motion-sub-{}", self.camera));
        let src = mk("rtspsrc")?;
        src.set_property("location", &self.url);
        src.set_property("latency", 0u32);
        src.set_property_from_str("protocols", "tcp");
        if let Some(u) = &self.username {
            src.set_property("user-id", u);
        }
        if let Some(p) = &self.password {
            src.set_property("user-pw", p);
        }
        let decode = mk("decodebin")?;
        let rate = mk("videorate")?;
        rate.set_property("drop-only", true);
        rate.set_property("max-rate", self.fps as i32);
        let convert = mk("videoconvert")?;
        let last_frame = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let sink = {
            let last = last_frame.clone();
            analysis_sink(analyser.clone(), move |_| {
                let now = now_utc_ns();
                last.store(now, Ordering::Relaxed);
                now
            })
        };
        pipeline
            .add_many([&src, &decode, &rate, &convert, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([&rate, &convert, sink.upcast_ref()])
            .map_err(|e| format!("link: {e}"))?;
        {
            let decode = decode.clone();
            src.connect_pad_added(move |_, pad| {
                let is_video = pad
                    .current_caps()
                    .and_then(|c| c.structure(0).and_then(|s| s.get::<String>("media").ok()))
                    .is_some_and(|m| m == "video");
                if let (true, Some(sink)) = (is_video, decode.static_pad("sink")) {
                    if !sink.is_linked() {
                        let _ = pad.link(&sink);
                    }
                }
            });
        }
        {
            let rate = rate.clone();
            decode.connect_pad_added(move |_, pad| {
                if let Some(sink) = rate.static_pad("sink") {
                    if !sink.is_linked() {
                        let _ = pad.link(&sink);
                    }
                }
            });
        }
        analyser.lock().unwrap_or_else(|e| e.into_inner()).restart();
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start: {e}"))?;
        info!(camera = %self.camera, url = %crate::config::redact_url(&self.url), fps = self.fps,
              "motion: analysing the substream");
        let bus = pipeline.bus().ok_or("pipeline has no bus")?;
        let started = now_utc_ns();
        let stall = self.stall_timeout.as_nanos() as i64;
        let why = loop {
            if stop.load(Ordering::Relaxed) {
                break "stopped".to_owned();
            }
            if self.status.switched_off.load(Ordering::Relaxed) {
                break "recording switched off".to_owned();
            }
            let last = last_frame.load(Ordering::Relaxed).max(started);
            if now_utc_ns() - last > stall * 2 {
                break format!("no frame for {:?}", self.stall_timeout * 2);
            }
            let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match m.view() {
                gst::MessageView::Eos(_) => break "end of stream".to_owned(),
                gst::MessageView::Error(e) => break e.error().to_string(),
                _ => {}
            }
        };
        let _ = pipeline.set_state(gst::State::Null);
        Ok(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder chosen without configuration is the highest-ranked one that takes the codec
    /// (a board's hardware decoder outranks software ones); a configured one must exist.
    #[test]
    fn the_highest_ranked_decoder_wins() {
        crate::ingest::init_gstreamer().unwrap();
        for codec in ["video/x-h264", "video/x-h265"] {
            let caps = gst::Caps::new_empty_simple(codec);
            let best = gst::ElementFactory::factories_with_type(
                gst::ElementFactoryType::DECODER,
                gst::Rank::MARGINAL,
            )
            .into_iter()
            .filter(|f| {
                f.static_pad_templates().iter().any(|t| {
                    t.direction() == gst::PadDirection::Sink && t.caps().can_intersect(&caps)
                })
            })
            .map(|f| f.rank())
            .max()
            .expect("a decoder is installed (make deps)");
            let picked = pick_decoder(codec, None).unwrap();
            let rank = gst::ElementFactory::find(&picked).unwrap().rank();
            assert_eq!(rank, best, "{codec}: {picked}");
        }
        assert_eq!(
            pick_decoder("video/x-h264", Some("avdec_h264")).unwrap(),
            "avdec_h264"
        );
        let e = pick_decoder("video/x-h264", Some("nosuchdecoder")).unwrap_err();
        assert!(e.contains("nosuchdecoder"), "{e}");
    }
}
