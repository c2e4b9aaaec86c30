//! The chain every source feeds: `[depayloader → parser →] timestamper → isofmp4mux → appsink`,
//! built once the source knows the codec, with the data watchdog and the key-frame motion branch
//! attached. Which RTSP client feeds it (and how) belongs to [`super::rtspsrc`] and
//! [`super::retina`]; what happens to a fragment after the appsink belongs to [`super::sink`].

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use tracing::warn;

use super::make_element;
use super::sink::SinkState;
use crate::clock::{mono_ns, now_utc_ns};
use crate::config::PipelineElements;
use crate::motion::analyser::Analyser;
use crate::motion::branch::{KeyframeBranch, TimelineFn};

/// What the head pad carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// RTP packets (`application/x-rtp`, from `rtspsrc`): depayloader and parser first.
    Rtp,
    /// Whole access units in `avc`/`hvc1` form with `codec_data`, width and height in the caps
    /// (from the retina source): the timestamper takes them as they are.
    AccessUnits,
}

/// Everything one pipeline run's chain needs; [`ChainBuilder::attach`] is called once, from
/// whichever thread learns the codec (rtspsrc's `pad-added`, or the RTSP runtime thread).
pub struct ChainBuilder {
    pub(super) camera: Arc<str>,
    pub(super) pipeline: gst::glib::WeakRef<gst::Pipeline>,
    pub(super) elements: PipelineElements,
    /// Target fragment duration in ns.
    pub(super) fragment_ns: u64,
    pub(super) sink_state: Arc<Mutex<SinkState>>,
    pub(super) got_media: Arc<AtomicBool>,
    /// Monotonic ns of the last RTP buffer out of the depayloader (the `Rtp` watchdog).
    pub(super) last_data: Arc<AtomicI64>,
    /// Key-frame motion analysis: the decoder asked for, and the analyser.
    pub(super) keyframe_motion: Option<(Option<String>, Arc<Mutex<Analyser>>)>,
    pub(super) timeline: TimelineFn,
    pub(super) branch_slot: Arc<Mutex<Option<KeyframeBranch>>>,
    /// The muxer once built (EOS goes to its sink pads at the end of an `Rtp` run).
    pub(super) mux_slot: Arc<Mutex<Option<gst::Element>>>,
}

/// `video/x-h264` or `video/x-h265` for an RTP encoding name (`H264`, `H265`, any case).
///
/// Errors: any other encoding, in words.
pub fn caps_name(encoding: &str) -> Result<&'static str, String> {
    match encoding.to_ascii_uppercase().as_str() {
        "H264" => Ok("video/x-h264"),
        "H265" => Ok("video/x-h265"),
        other => Err(format!(
            "unsupported video encoding {other:?} (H264 and H265 are)"
        )),
    }
}

impl ChainBuilder {
    /// Builds the chain for `encoding` (`H264`/`H265`), adds it to the pipeline, starts it and
    /// links `head` to it.
    ///
    /// Errors: unsupported encoding, a missing element, or a refused link, in words.
    pub fn attach(&self, encoding: &str, head: &gst::Pad, input: Input) -> Result<(), String> {
        let pipeline = self.pipeline.upgrade().ok_or("pipeline gone")?;
        let name = caps_name(encoding)?;
        let h264 = name == "video/x-h264";
        let e = &self.elements;
        let (depay, parse, ts) = if h264 {
            (&e.h264_depay, &e.h264_parse, &e.h264_timestamper)
        } else {
            (&e.h265_depay, &e.h265_parse, &e.h265_timestamper)
        };
        let mut chain: Vec<gst::Element> = Vec::new();
        // The pad the motion branch copies key frames from: parsed access units.
        let mut au_pad = head.clone();
        if input == Input::Rtp {
            let depay = make_element(depay)?;
            let parse = make_element(parse)?;
            let ld = self.last_data.clone();
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
            au_pad = parse.static_pad("src").ok_or("parser has no src pad")?;
            chain.push(depay);
            chain.push(parse);
        }
        if let Some((decoder, analyser)) = &self.keyframe_motion {
            match KeyframeBranch::attach(
                self.camera.clone(),
                &au_pad,
                name,
                decoder.as_deref(),
                analyser.clone(),
                self.timeline.clone(),
            ) {
                Ok(b) => *self.branch_slot.lock().unwrap() = Some(b),
                Err(e) => warn!(camera = %self.camera, "motion detection off for this run: {e}"),
            }
        }
        chain.push(make_element(ts)?);
        let mux = self.muxer()?;
        chain.push(mux.clone());
        chain.push(self.appsink().upcast());
        pipeline.add_many(&chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(&chain).map_err(|e| format!("link: {e}"))?;
        for e in chain.iter().rev() {
            e.sync_state_with_parent().map_err(|e| e.to_string())?;
        }
        let sink = chain[0]
            .static_pad("sink")
            .ok_or("the chain's head has no sink pad")?;
        head.link(&sink)
            .map_err(|e| format!("link the source: {e:?}"))?;
        *self.mux_slot.lock().unwrap() = Some(mux);
        Ok(())
    }

    fn muxer(&self) -> Result<gst::Element, String> {
        let mux = make_element(&self.elements.muxer)?;
        if mux.has_property("fragment-duration") {
            mux.set_property("fragment-duration", self.fragment_ns);
        }
        if mux.has_property("send-force-keyunit") {
            mux.set_property("send-force-keyunit", false);
        }
        // A camera that changes resolution or codec parameters: the muxer emits a new init
        // segment before the next fragment (the writer starts a `codec_change` run on it)
        // instead of failing on incompatible caps.
        if mux.has_property("header-update-mode") {
            mux.set_property_from_str("header-update-mode", "caps");
        }
        // Media time continues across runs: tfdt counts from 1970 (UTC at the pipeline's start
        // plus its running time), so a reconnect never sends a player's decode time backwards
        // (ffmpeg's HLS demuxer keeps one MP4 demuxer across EXT-X-DISCONTINUITY and drops
        // frames whose DTS goes back). The writer makes each file count from 0 again.
        if mux.has_property("decode-time-offset") {
            mux.set_property("decode-time-offset", now_utc_ns());
        }
        Ok(mux)
    }

    fn appsink(&self) -> gst_app::AppSink {
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .buffer_list(true)
            .max_buffers(0)
            .build();
        let st = self.sink_state.clone();
        let got = self.got_media.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    got.store(true, Ordering::Relaxed);
                    st.lock().unwrap().on_sample(s)
                })
                .build(),
        );
        sink
    }
}
