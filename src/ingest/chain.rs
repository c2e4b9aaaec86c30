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

/// The sound the retina source hands over, and what the chain does with it before the muxer's
/// audio pad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioInput {
    /// AAC access units with the AudioSpecificConfig as `codec_data` (RTP `MPEG4-GENERIC`,
    /// RFC 3640): to the muxer as they are.
    Aac,
    /// G.711 µ-law samples (RTP `PCMU`, RFC 3551 section 4.5.14): decoded and encoded to AAC-LC
    /// at their own sample rate.
    Mulaw,
    /// G.711 A-law samples (RTP `PCMA`): the same.
    Alaw,
}

/// Bytes a `queue` in front of the muxer may hold per track when a camera has audio: the
/// muxer waits for both tracks, and both are pushed from the one RTSP thread, so neither push
/// may block on the other track. 5 s of media is far more than two tracks ever drift apart
/// (the source ends audio with a gap after 1 s, [`super::retina`]).
const TRACK_QUEUE_NS: u64 = 5_000_000_000;

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

/// A `queue` in front of a muxer pad (see [`TRACK_QUEUE_NS`]).
fn track_queue() -> Result<gst::Element, String> {
    let q = make_element("queue")?;
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", TRACK_QUEUE_NS);
    Ok(q)
}

impl ChainBuilder {
    /// Builds the chain for `encoding` (`H264`/`H265`), adds it to the pipeline, starts it and
    /// links `head` to it. With `audio` (an audio track follows through [`Self::attach_audio`])
    /// a `queue` goes in front of the muxer's video pad; without, the chain is exactly the
    /// video-only chain.
    ///
    /// Errors: unsupported encoding, a missing element, or a refused link, in words.
    pub fn attach(
        &self,
        encoding: &str,
        head: &gst::Pad,
        input: Input,
        audio: bool,
    ) -> Result<(), String> {
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
        if audio {
            chain.push(track_queue()?);
        }
        let mux = self.muxer()?;
        // With audio: each fragment's samples of a track in one run (one `trun` per `traf`,
        // video then audio in `mdat`), not interleaved every 250 ms: what DASH's per-track
        // parts and MP4 export read (`playback::split`, `export::samples`).
        if audio && mux.has_property("interleave-time") {
            mux.set_property("interleave-time", 0u64);
        }
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

    /// The elements `input` needs that are not installed (empty: it can be recorded). AAC needs
    /// only `queue`; G.711 its decoder, `audioconvert`, the AAC encoder and `aacparse`.
    pub fn missing_audio_elements(&self, input: AudioInput) -> Vec<String> {
        let e = &self.elements;
        let mut need = vec!["queue"];
        match input {
            AudioInput::Aac => {}
            AudioInput::Mulaw => need.push(&e.mulaw_decoder),
            AudioInput::Alaw => need.push(&e.alaw_decoder),
        }
        if input != AudioInput::Aac {
            need.extend(["audioconvert", e.aac_encoder.as_str(), "aacparse"]);
        }
        need.into_iter()
            .filter(|f| gst::ElementFactory::find(f).is_none())
            .map(str::to_string)
            .collect()
    }

    /// Adds the audio track after [`Self::attach`]: `head` (caps already pushed, or pushed
    /// before its first buffer) through a `queue` (and for G.711 the decoder, `audioconvert`,
    /// the AAC encoder and `aacparse`) to a new sink pad of the muxer.
    ///
    /// Errors: no muxer yet, a missing element, or a refused link, in words.
    pub fn attach_audio(&self, input: AudioInput, head: &gst::Pad) -> Result<(), String> {
        let pipeline = self.pipeline.upgrade().ok_or("pipeline gone")?;
        let mux = self
            .mux_slot
            .lock()
            .unwrap()
            .clone()
            .ok_or("the audio track needs the video chain first")?;
        let e = &self.elements;
        let mut chain = vec![track_queue()?];
        match input {
            AudioInput::Aac => {}
            AudioInput::Mulaw | AudioInput::Alaw => {
                let dec = if input == AudioInput::Mulaw {
                    &e.mulaw_decoder
                } else {
                    &e.alaw_decoder
                };
                chain.push(make_element(dec)?);
                chain.push(make_element("audioconvert")?);
                chain.push(make_element(&e.aac_encoder)?);
                chain.push(make_element("aacparse")?);
            }
        }
        pipeline.add_many(&chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(&chain).map_err(|e| format!("link: {e}"))?;
        let mux_pad = mux
            .request_pad_simple("sink_%u")
            .ok_or("the muxer gives no audio pad")?;
        chain
            .last()
            .and_then(|l| l.static_pad("src"))
            .ok_or("the audio chain has no src pad")?
            .link(&mux_pad)
            .map_err(|e| format!("link audio to the muxer: {e:?}"))?;
        for el in chain.iter().rev() {
            el.sync_state_with_parent().map_err(|e| e.to_string())?;
        }
        let sink = chain[0].static_pad("sink").ok_or("queue has no sink pad")?;
        head.link(&sink)
            .map_err(|e| format!("link the audio source: {e:?}"))?;
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
