//! The retina source (`source = "retina"`): every such camera's RTSP session runs on one thread
//! (a current-thread tokio runtime, `rtsp-io`), and each whole access unit retina hands over is
//! pushed from that thread through a source pad the recorder owns straight into the camera's
//! chain (timestamper, muxer): no `appsrc` queue, no jitter buffer, no depayloader, no parser, so
//! no thread hand-off between the socket and the muxer.
//!
//! What belongs here: connecting (DESCRIBE, SETUP over TCP, PLAY, with credentials taken out of
//! the URL), caps from retina's parameters (`codec_data`, width, height, frame rate), the
//! frames' running times, and the camera's RTCP sender reports turned into
//! `ReferenceTimestampMeta` so the muxer writes `prft` (`time_source = "rtcp"`; retina hands
//! the reports over but does not apply them). The chain itself is [`super::chain`]; the camera
//! loop is [`super::supervisor`].

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gst::prelude::*;
use gstreamer as gst;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
};
use retina::codec::{
    AudioFrame, CodecItem, FrameFormat, ParametersRef, VideoFrame, VideoParameters,
};
use tracing::{debug, info, warn};

use super::chain::{caps_name, AudioInput, ChainBuilder, Input};
use crate::clock::mono_ns;
use crate::config::{Audio, CameraConfig, TimeSource};

/// The reference-timestamp caps of a frame's camera time: ns since 1970 (UTC).
static UNIX_TIME_CAPS: std::sync::LazyLock<gst::Caps> =
    std::sync::LazyLock::new(|| gst::Caps::builder("timestamp/x-unix").build());

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970), RFC 5905 section 6.
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// The one runtime thread every retina camera's session runs on (started on first use).
///
/// Errors: the thread or the runtime cannot be created (out of resources), in words.
fn runtime() -> Result<tokio::runtime::Handle, String> {
    static HANDLE: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("RTSP runtime: {e}"))?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("rtsp-io".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(|e| format!("RTSP runtime thread: {e}"))?;
    *slot = Some(handle.clone());
    Ok(handle)
}

/// `url` without any `user:password@`, and the credentials to use: the URL's (percent-decoded)
/// or else `username`/`password`.
///
/// Errors: the URL does not parse (the message never shows it: it may hold a password).
pub fn split_credentials(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<(url::Url, Option<Credentials>), String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("camera URL: {e}"))?;
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| {
            "camera URL: credentials are not valid percent-encoded UTF-8".to_string()
        })
    };
    let creds = if !u.username().is_empty() {
        let c = Credentials {
            username: decode(u.username())?,
            password: decode(u.password().unwrap_or(""))?,
        };
        let _ = u.set_username("");
        let _ = u.set_password(None);
        Some(c)
    } else {
        username.map(|n| Credentials {
            username: n.to_string(),
            password: password.unwrap_or("").to_string(),
        })
    };
    Ok((u, creds))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The caps the chain gets for retina's parameters: `video/x-h264, stream-format=avc` or
/// `video/x-h265, stream-format=hvc1`, `alignment=au`, the `avcC`/`hvcC` record as
/// `codec_data` (ISO/IEC 14496-15), width, height, pixel aspect ratio and frame rate (0/1 when
/// the SPS has no timing information).
pub fn caps_for(name: &str, v: &VideoParameters) -> gst::Caps {
    let (w, h) = v.pixel_dimensions();
    let (pn, pd) = v.pixel_aspect_ratio().unwrap_or((1, 1));
    // retina gives seconds per frame as (numerator, denominator).
    let fps = match v.frame_rate() {
        Some((n, d)) if n > 0 && d > 0 => {
            let g = gcd(n, d);
            gst::Fraction::new((d / g) as i32, (n / g) as i32)
        }
        _ => gst::Fraction::new(0, 1),
    };
    let format = if name == "video/x-h264" {
        "avc"
    } else {
        "hvc1"
    };
    gst::Caps::builder(name)
        .field("stream-format", format)
        .field("alignment", "au")
        .field(
            "codec_data",
            gst::Buffer::from_slice(v.extra_data().to_vec()),
        )
        .field("width", w as i32)
        .field("height", h as i32)
        .field(
            "pixel-aspect-ratio",
            gst::Fraction::new(pn as i32, pd as i32),
        )
        .field("framerate", fps)
        .build()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// The UTC time in ns of an NTP timestamp (32.32 fixed point seconds since 1900, RFC 3550
/// section 4); `None` before 1970.
pub fn ntp_to_unix_ns(ntp: u64) -> Option<u64> {
    let secs = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET_S)?;
    let frac_ns = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    Some(secs * 1_000_000_000 + frac_ns)
}

/// How far audio may lag the video before the source ends it with a gap event, ns: the muxer
/// waits for both tracks, so a camera whose microphone goes quiet would otherwise hold the
/// video back for as long as it stays quiet. Cameras interleave their tracks within a few
/// hundred ms.
const AUDIO_SLACK_NS: i64 = 1_000_000_000;

/// What the chain does with an RTP audio encoding (`MPEG4-GENERIC`, `PCMU`, `PCMA`, any case);
/// `None` for any other (recorded video only).
pub fn audio_input(encoding: &str) -> Option<AudioInput> {
    match encoding.to_ascii_lowercase().as_str() {
        "mpeg4-generic" => Some(AudioInput::Aac),
        "pcmu" => Some(AudioInput::Mulaw),
        "pcma" => Some(AudioInput::Alaw),
        _ => None,
    }
}

/// Whether frames may still be pushed: `open` is cleared first, then the EOS is pushed under
/// `lock`, which every push holds, so nothing is pushed after the EOS.
struct Gate {
    open: AtomicBool,
    lock: Mutex<()>,
}

/// How long [`RetinaRun::stop`] waits for a push in progress before giving up on the EOS.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// One pipeline run of a retina camera: its source pad and its session task.
pub struct RetinaRun {
    pad: gst::Pad,
    audio_pad: gst::Pad,
    gate: Arc<Gate>,
    camera: Arc<str>,
    task: tokio::task::JoinHandle<()>,
}

impl RetinaRun {
    /// Starts the session of `cfg` on the RTSP runtime. Once PLAY succeeds the chain is built
    /// with `chain` and frames flow; `last_data` gets the monotonic ns of each frame; a
    /// connection or stream error is put in `error`; `status.audio_codec` says what audio the
    /// run records.
    ///
    /// Errors: the URL does not parse, or the runtime cannot start.
    pub fn start(
        cfg: &CameraConfig,
        pipeline: &gst::Pipeline,
        chain: ChainBuilder,
        last_data: Arc<AtomicI64>,
        error: Arc<Mutex<Option<String>>>,
        status: Arc<super::CameraStatus>,
    ) -> Result<RetinaRun, String> {
        *status.audio_codec.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let (url, creds) =
            split_credentials(&cfg.url, cfg.username.as_deref(), cfg.password.as_deref())?;
        let pad = source_pad(&format!("retina-{}", cfg.id))?;
        let audio_pad = source_pad(&format!("retina-{}-audio", cfg.id))?;
        let gate = Arc::new(Gate {
            open: AtomicBool::new(true),
            lock: Mutex::new(()),
        });
        let pusher = Pusher {
            pad: pad.clone(),
            audio: (cfg.audio == Audio::Auto).then(|| AudioTrack {
                pad: audio_pad.clone(),
                input: AudioInput::Aac,
                origin: None,
                until_ns: None,
                quiet: false,
                ended: false,
            }),
            first_pts_ns: None,
            gate: gate.clone(),
            pipeline: pipeline.downgrade(),
            camera: chain.camera.clone(),
            rtcp: cfg.time_source == TimeSource::Rtcp,
            origin: None,
            sender_report: None,
            caps_sent: false,
            frame_ns: 0,
            sdp_frame_ns: 0,
            last_data,
        };
        let camera = chain.camera.clone();
        let chain_camera = camera.clone();
        let opts = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("edgerec/{}", env!("CARGO_PKG_VERSION")));
        let task = runtime()?.spawn(async move {
            let r = session(url, opts, chain, pusher, status).await;
            let why = match r {
                Ok(()) => "end of stream".to_string(),
                Err(e) => e,
            };
            debug!(camera = %camera, "retina session ended: {why}");
            error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(why);
        });
        Ok(RetinaRun {
            pad,
            audio_pad,
            gate,
            camera: chain_camera,
            task,
        })
    }

    /// Stops the session: no frame is pushed after this returns; EOS goes down the chain so the
    /// timestamper and the muxer hand over what they hold. A push that is stuck downstream
    /// (for longer than 2 s) gets no EOS: tearing the pipeline down then unblocks it.
    pub fn stop(self) {
        self.gate.open.store(false, Ordering::SeqCst);
        self.task.abort();
        let until = Instant::now() + STOP_WAIT;
        let guard = loop {
            match self.gate.lock.try_lock() {
                Ok(g) => break Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(std::sync::TryLockError::WouldBlock) => break None,
            }
        };
        match guard {
            Some(_g) if self.pad.is_linked() => {
                if self.audio_pad.is_linked() {
                    self.audio_pad.push_event(gst::event::Eos::new());
                }
                self.pad.push_event(gst::event::Eos::new());
            }
            Some(_) => {}
            None => warn!(camera = %self.camera, "a frame push is stuck downstream: no EOS"),
        }
    }
}

/// A source pad the recorder owns and pushes into from the RTSP thread. Frames carry running
/// times of their arrival but nothing waits on the clock: the muxer takes them as they come
/// (its latency query answers not live, no latency).
fn source_pad(name: &str) -> Result<gst::Pad, String> {
    let pad = gst::Pad::builder(gst::PadDirection::Src)
        .name(name)
        .query_function(|pad, parent, query| {
            if let gst::QueryViewMut::Latency(q) = query.view_mut() {
                q.set(false, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                return true;
            }
            gst::Pad::query_default(pad, parent, query)
        })
        .build();
    pad.set_active(true).map_err(|e| e.to_string())?;
    Ok(pad)
}

/// The caps of an audio track as the source pushes it: AAC with the AudioSpecificConfig as
/// `codec_data` (ISO/IEC 14496-3 section 1.6.2.1), or G.711 µ-law/A-law at its RTP clock rate.
fn audio_caps(input: AudioInput, rate: u32, channels: u16, config: &[u8]) -> gst::Caps {
    match input {
        AudioInput::Aac => gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .field("codec_data", gst::Buffer::from_slice(config.to_vec()))
            .field("rate", rate as i32)
            .field("channels", i32::from(channels))
            .build(),
        AudioInput::Mulaw | AudioInput::Alaw => gst::Caps::builder(if input == AudioInput::Mulaw {
            "audio/x-mulaw"
        } else {
            "audio/x-alaw"
        })
        .field("rate", rate as i32)
        .field("channels", i32::from(channels))
        .build(),
    }
}

/// TCP interleaved transport, MP4 framing (length-prefixed NAL units, raw AAC).
fn setup_options() -> SetupOptions {
    SetupOptions::default()
        .transport(retina::client::Transport::Tcp(
            TcpTransportOptions::default(),
        ))
        .frame_format(FrameFormat::MP4)
}

/// DESCRIBE, SETUP (the first video stream and, with `audio = "auto"`, the first audio stream,
/// interleaved TCP), PLAY; then frames until the stream ends or fails.
async fn session(
    url: url::Url,
    opts: SessionOptions,
    chain: ChainBuilder,
    mut pusher: Pusher,
    status: Arc<super::CameraStatus>,
) -> Result<(), String> {
    let mut session = Session::describe(url, opts)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let (index, encoding, sdp_fps) = session
        .streams()
        .iter()
        .enumerate()
        .find(|(_, s)| s.media() == "video")
        .map(|(i, s)| (i, s.encoding_name().to_string(), s.framerate()))
        .ok_or("the camera offers no video stream")?;
    pusher.sdp_frame_ns = sdp_fps
        .filter(|f| *f >= 1.0 && *f <= 240.0)
        .map_or(0, |f| (1e9 / f as f64) as u64);
    let name = caps_name(&encoding)?;
    // The first audio stream, if asked for and of a codec the chain records.
    let audio = if pusher.audio.is_some() {
        let found = session
            .streams()
            .iter()
            .enumerate()
            .find(|(_, s)| s.media() == "audio")
            .map(|(i, s)| (i, s.encoding_name().to_string()));
        match found {
            Some((i, enc)) => match audio_input(&enc) {
                Some(input) => {
                    let missing = chain.missing_audio_elements(input);
                    if missing.is_empty() {
                        Some((i, input, enc))
                    } else {
                        warn!(camera = %pusher.camera, codec = %enc,
                              "audio {enc} needs GStreamer elements that are not installed ({}): recording video only",
                              missing.join(", "));
                        None
                    }
                }
                None => {
                    warn!(camera = %pusher.camera, codec = %enc,
                          "audio codec {enc} is not recorded (AAC and G.711 are): recording video only");
                    None
                }
            },
            None => {
                info!(camera = %pusher.camera, "the camera offers no audio: recording video only");
                None
            }
        }
    } else {
        None
    };
    if audio.is_none() {
        pusher.audio = None;
    }
    session
        .setup(index, setup_options())
        .await
        .map_err(|e| format!("SETUP: {e}"))?;
    let mut audio_caps_now = None;
    if let Some((ai, input, enc)) = &audio {
        let (ai, input) = (*ai, *input);
        session
            .setup(ai, setup_options())
            .await
            .map_err(|e| format!("SETUP (audio): {e}"))?;
        let s = &session.streams()[ai];
        let channels = s.channels().map_or(1, |c| c.get());
        let (rate, config) = match s.parameters() {
            Some(ParametersRef::Audio(a)) => (a.clock_rate(), a.extra_data().to_vec()),
            _ => (s.clock_rate_hz(), Vec::new()),
        };
        if input == AudioInput::Aac && config.is_empty() {
            return Err("the camera's AAC stream has no config in its SDP".into());
        }
        if let Some(a) = pusher.audio.as_mut() {
            a.input = input;
        }
        audio_caps_now = Some(audio_caps(input, rate, channels, &config));
        *status.audio_codec.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("{}/{rate}", enc.to_ascii_uppercase()));
    }
    // The chain is built before PLAY: frames that queued up while it was being built would
    // arrive late, and their running times (so their UTC times) would run ahead.
    {
        let _g = pusher.gate.lock.lock().unwrap_or_else(|e| e.into_inner());
        if !pusher.gate.open.load(Ordering::SeqCst) {
            return Ok(());
        }
        chain.attach(&encoding, &pusher.pad, Input::AccessUnits, audio.is_some())?;
        if let (Some((_, input, _)), Some(caps), Some(a)) =
            (&audio, audio_caps_now, pusher.audio.as_ref())
        {
            chain.attach_audio(*input, &a.pad)?;
            a.pad.push_event(gst::event::StreamStart::new(&format!(
                "retina-{}-audio",
                pusher.camera
            )));
            a.pad.push_event(gst::event::Caps::new(&caps));
            a.pad
                .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                    gst::ClockTime,
                >::new()));
            info!(camera = %pusher.camera, caps = %caps, "retina: recording audio");
        }
    }
    let audio_index = audio.map(|(i, _, _)| i);
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?;
    let mut demuxed = playing.demuxed().map_err(|e| format!("PLAY: {e}"))?;
    info!(camera = %pusher.camera, encoding = %encoding, "retina: playing");
    while let Some(item) = demuxed.next().await {
        match item.map_err(|e| e.to_string())? {
            CodecItem::VideoFrame(f) if f.stream_id() == index => {
                pusher.frame(f, &demuxed, index, name)?
            }
            CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio_index => pusher.audio(f)?,
            CodecItem::Rtcp(r) if r.stream_id() == index => pusher.rtcp(&r),
            _ => {}
        }
    }
    Ok(())
}

/// The audio track of a run, as the source pushes it.
struct AudioTrack {
    pad: gst::Pad,
    input: AudioInput,
    /// The first audio frame's RTP time (extended ticks) and the running time (ns) it was
    /// received at.
    origin: Option<(i64, u64)>,
    /// Running time (ns) up to which the track has been pushed (frames or a gap).
    until_ns: Option<i64>,
    /// In a gap: the next frame is flagged `DISCONT`.
    quiet: bool,
    /// Ended with EOS (no audio at all within the slack, for a G.711 track whose encoder can
    /// give the muxer no caps without data): nothing more is pushed this run.
    ended: bool,
}

/// Turns retina's frames into buffers on the source pad.
struct Pusher {
    pad: gst::Pad,
    /// The audio track (`audio = "auto"` and a codec the chain records).
    audio: Option<AudioTrack>,
    /// Running time (ns) of the first video frame pushed: no audio before it.
    first_pts_ns: Option<i64>,
    gate: Arc<Gate>,
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    camera: Arc<str>,
    /// Attach sender-report time to frames (`time_source = "rtcp"`).
    rtcp: bool,
    /// The first frame's RTP time (extended ticks) and the running time (ns) its first packet
    /// was received at: a frame's running time is that plus its RTP time since.
    origin: Option<(i64, u64)>,
    /// The last sender report: its RTP time (extended ticks) and UTC (ns).
    sender_report: Option<(i64, u64)>,
    caps_sent: bool,
    /// One frame at the SPS's frame rate, ns (0 when it gives none). The muxer needs a
    /// duration for the last frame of a run, which has no next frame to measure against.
    frame_ns: u64,
    /// One frame at the SDP's `a=framerate`, ns (0 without one): used when the SPS has none.
    sdp_frame_ns: u64,
    last_data: Arc<AtomicI64>,
}

impl Pusher {
    fn frame(
        &mut self,
        f: VideoFrame,
        demuxed: &Demuxed,
        index: usize,
        name: &str,
    ) -> Result<(), String> {
        self.last_data.store(mono_ns(), Ordering::Relaxed);
        // retina counts only IDR pictures as H.265 random access points; a CRA starts a GOP too
        // (h265parse and the muxer agree), and x265 and many cameras send one per GOP.
        let key = f.is_random_access_point() || (name == "video/x-h265" && h265_irap(f.data()));
        if !self.caps_sent && !key {
            return Ok(()); // a recording starts on a key frame
        }
        let gate = self.gate.clone();
        let _g = gate.lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.gate.open.load(Ordering::SeqCst) {
            return Err("stopped".into());
        }
        if !self.caps_sent || f.has_new_parameters() {
            let Some(ParametersRef::Video(v)) = demuxed.streams()[index].parameters() else {
                return Err("no video parameters with the first key frame".into());
            };
            if !self.caps_sent {
                self.pad.push_event(gst::event::StreamStart::new(&format!(
                    "retina-{}",
                    self.camera
                )));
            }
            let caps = caps_for(name, v);
            self.frame_ns = caps
                .structure(0)
                .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
                .filter(|f| f.numer() > 0 && f.denom() > 0)
                .map_or(self.sdp_frame_ns, |f| {
                    1_000_000_000 * f.denom() as u64 / f.numer() as u64
                });
            self.pad.push_event(gst::event::Caps::new(&caps));
            if !self.caps_sent {
                self.pad
                    .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                        gst::ClockTime,
                    >::new()));
            }
            self.caps_sent = true;
        }
        let ts = f.timestamp();
        let rate = ts.clock_rate();
        let ticks = ts.timestamp();
        if self.origin.is_none() {
            // Running time when its first packet was read off the socket.
            let waited = f.start_ctx().received().elapsed().as_nanos() as u64;
            self.origin = Some((ticks, self.running_now().saturating_sub(waited)));
        }
        let (t0, r0) = self.origin.expect("set above");
        let pts = r0 as i64 + ticks_to_ns(ticks - t0, rate);
        let delta = !key;
        let utc = self
            .sender_report
            .filter(|_| self.rtcp)
            .map(|(sr_ticks, sr_utc)| sr_utc as i64 + ticks_to_ns(ticks - sr_ticks, rate));
        let mut buf = gst::Buffer::from_mut_slice(f.into_data());
        {
            let b = buf.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts.max(0) as u64));
            if self.frame_ns > 0 {
                b.set_duration(gst::ClockTime::from_nseconds(self.frame_ns));
            }
            if delta {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
            if let Some(u) = utc.filter(|u| *u > 0) {
                gst::ReferenceTimestampMeta::add(
                    b,
                    &UNIX_TIME_CAPS,
                    gst::ClockTime::from_nseconds(u as u64),
                    gst::ClockTime::NONE,
                );
            }
        }
        self.first_pts_ns.get_or_insert(pts);
        self.pad
            .push(buf)
            .map_err(|e| format!("pipeline refused a frame: {e:?}"))?;
        self.audio_gap(pts - AUDIO_SLACK_NS);
        Ok(())
    }

    /// Ends the audio track up to running time `horizon` (ns) with a gap event if no audio came
    /// that far, so the muxer does not wait for it; a G.711 track that never had a frame is
    /// ended instead (see [`AudioTrack::ended`]). Called with the gate held.
    fn audio_gap(&mut self, horizon: i64) {
        let (Some(a), Some(first)) = (self.audio.as_mut(), self.first_pts_ns) else {
            return;
        };
        if a.ended || horizon <= first {
            return;
        }
        if a.until_ns.is_none() && a.input != AudioInput::Aac {
            warn!(camera = %self.camera,
                  "no audio within 1 s of the first video frame: recording video only until the next connection");
            a.ended = true;
            a.pad.push_event(gst::event::Eos::new());
            return;
        }
        let from = a.until_ns.unwrap_or(first);
        if from >= horizon {
            return;
        }
        if !a.quiet {
            info!(camera = %self.camera, "audio stopped: the video goes on without it");
            a.quiet = true;
        }
        a.pad.push_event(
            gst::event::Gap::builder(gst::ClockTime::from_nseconds(from as u64))
                .duration(gst::ClockTime::from_nseconds((horizon - from) as u64))
                .build(),
        );
        a.until_ns = Some(horizon);
    }

    /// Pushes an audio frame: AAC access units as they are, G.711 sample blocks. Frames before
    /// the first video frame, or behind what a gap already covered, are dropped.
    fn audio(&mut self, f: AudioFrame) -> Result<(), String> {
        let Some(first) = self.first_pts_ns else {
            return Ok(()); // a recording starts with video
        };
        let running_now = self.running_now();
        let gate = self.gate.clone();
        let _g = gate.lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.gate.open.load(Ordering::SeqCst) {
            return Err("stopped".into());
        }
        let Some(a) = self.audio.as_mut() else {
            return Ok(());
        };
        if a.ended {
            return Ok(());
        }
        let ts = f.timestamp();
        let rate = ts.clock_rate();
        let ticks = ts.timestamp();
        if a.origin.is_none() {
            let waited = f.ctx().received().elapsed().as_nanos() as u64;
            a.origin = Some((ticks, running_now.saturating_sub(waited)));
        }
        let (t0, r0) = a.origin.expect("set above");
        let pts = r0 as i64 + ticks_to_ns(ticks - t0, rate);
        // G.711: one byte per sample and channel; AAC: the frame length retina gives.
        let samples = match a.input {
            AudioInput::Aac => i64::from(f.frame_length().get()),
            AudioInput::Mulaw | AudioInput::Alaw => f.data().len() as i64,
        };
        let duration = ticks_to_ns(samples, rate);
        if pts < first || a.until_ns.is_some_and(|u| pts + duration / 2 < u) {
            return Ok(());
        }
        let mut buf = gst::Buffer::from_mut_slice(f.data().to_vec());
        {
            let b = buf.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts.max(0) as u64));
            b.set_duration(gst::ClockTime::from_nseconds(duration.max(0) as u64));
            if a.quiet || a.until_ns.is_none() {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        if a.quiet {
            info!(camera = %self.camera, "audio is back");
            a.quiet = false;
        }
        a.until_ns = Some(pts + duration);
        a.pad
            .push(buf)
            .map(|_| ())
            .map_err(|e| format!("pipeline refused an audio frame: {e:?}"))
    }

    fn rtcp(&mut self, r: &retina::rtcp::ReceivedCompoundPacket) {
        let Some(ts) = r.rtp_timestamp() else { return };
        for p in r.pkts() {
            if let Ok(Some(sr)) = p.as_sender_report() {
                if let Some(utc) = ntp_to_unix_ns(sr.ntp_timestamp().0) {
                    self.sender_report = Some((ts.timestamp(), utc));
                }
            }
        }
    }

    /// The pipeline's running time now, in ns (0 before it runs).
    fn running_now(&self) -> u64 {
        let Some(p) = self.pipeline.upgrade() else {
            return 0;
        };
        match (p.clock(), p.base_time()) {
            (Some(c), Some(b)) => c.time().nseconds().saturating_sub(b.nseconds()),
            _ => 0,
        }
    }
}

/// Whether an H.265 access unit (4-byte length-prefixed NAL units) is an IRAP picture: its first
/// VCL NAL unit has `nal_unit_type` 16 to 23 (BLA, IDR, CRA; ITU-T H.265 table 7-1).
pub fn h265_irap(au: &[u8]) -> bool {
    let mut i = 0;
    while i + 5 <= au.len() {
        let n = u32::from_be_bytes([au[i], au[i + 1], au[i + 2], au[i + 3]]) as usize;
        let t = (au[i + 4] >> 1) & 0x3f;
        if t < 32 {
            return (16..=23).contains(&t);
        }
        i += 4 + n;
    }
    false
}

fn ticks_to_ns(ticks: i64, rate: NonZeroU32) -> i64 {
    (ticks as i128 * 1_000_000_000 / rate.get() as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_url_and_the_url_keeps_nothing_secret() {
        let (u, c) = split_credentials("rtsp://ad%40m:p%3Ass@cam:554/s", None, None).unwrap();
        assert_eq!(u.as_str(), "rtsp://cam:554/s");
        let c = c.unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ad@m", "p:ss"));
        let (u, c) = split_credentials("rtsp://cam/s", Some("u"), Some("p")).unwrap();
        assert_eq!(u.as_str(), "rtsp://cam/s");
        assert_eq!(c.unwrap().password, "p");
        assert!(split_credentials("rtsp://cam/s", None, None)
            .unwrap()
            .1
            .is_none());
    }

    #[test]
    fn a_cra_picture_is_an_h265_key_frame_and_a_trailing_one_is_not() {
        // Prefix SEI (type 39) then CRA (21); a TRAIL_R (1) alone.
        let cra = [0, 0, 0, 2, 78, 1, 0, 0, 0, 2, 42, 1];
        let trail = [0, 0, 0, 2, 2, 1];
        assert!(h265_irap(&cra));
        assert!(!h265_irap(&trail));
        assert!(!h265_irap(&[]));
    }

    #[test]
    fn ntp_time_maps_to_unix_ns() {
        assert_eq!(ntp_to_unix_ns(NTP_UNIX_OFFSET_S << 32), Some(0));
        assert_eq!(
            ntp_to_unix_ns(((NTP_UNIX_OFFSET_S + 10) << 32) | 0x8000_0000),
            Some(10_500_000_000)
        );
        assert_eq!(ntp_to_unix_ns(5 << 32), None);
    }
}
