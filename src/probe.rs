//! `edgerec probe`: connect to a camera as the recorder would (the same `rtspsrc` settings,
//! the same depayloader and parser by name from `[pipeline]`), watch its video for a few
//! seconds, and say what it sends, or, in one line, what to fix when it cannot be recorded.
//!
//! What belongs here: the probe pipeline, the measurements (frame rate, GOP, bitrate from the
//! buffers themselves, not from what the SDP claims), and the mapping of RTSP failures to
//! advice. What does not: recording (`ingest`), the CLI (`main.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;

use crate::config::{CameraConfig, PipelineElements, Transport};

/// One stream the camera offers in its SDP (`a=rtpmap`): `media` (`video`, `audio`, ...),
/// `encoding` (`H264`, `MPEG4-GENERIC`, `PCMU`, ...) and RTP clock rate in Hz.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferedStream {
    /// SDP media type.
    pub media: String,
    /// RTP encoding name, upper case.
    pub encoding: String,
    /// RTP clock rate, Hz (for audio: the sample rate).
    pub clock_rate: Option<i32>,
}

/// What a camera's video looks like, measured over the sample.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoInfo {
    /// `H.264` or `H.265`.
    pub codec: &'static str,
    /// Profile as the parser reports it (`high`, `main`, `constrained-baseline`, ...).
    pub profile: Option<String>,
    /// Level as the parser reports it (`4.1`, ...).
    pub level: Option<String>,
    /// Picture width, pixels.
    pub width: Option<i32>,
    /// Picture height, pixels.
    pub height: Option<i32>,
    /// Frames per second, measured from the presentation times of the frames received.
    pub fps: Option<f64>,
    /// Mean interval between key frames (IDR), seconds; `None` with fewer than two in the sample.
    pub gop_seconds: Option<f64>,
    /// The same in frames (`gop_seconds × fps`).
    pub gop_frames: Option<f64>,
    /// Video bitrate over the sample, bits per second.
    pub bitrate_bps: u64,
    /// Frames received.
    pub frames: u64,
    /// Key frames received.
    pub key_frames: u64,
    /// Whether frames carried the camera's wall clock from RTCP sender reports (what
    /// `time_source = "rtcp"` needs).
    pub rtcp_sender_reports: bool,
}

/// The outcome for one camera.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// Camera id.
    pub camera: String,
    /// The camera's URL without credentials.
    pub url: String,
    /// Every stream of the SDP.
    pub streams: Vec<OfferedStream>,
    /// The recorded stream, when it could be measured.
    pub video: Option<VideoInfo>,
    /// Why it cannot be recorded, in one line that says what to fix; `None` when it can.
    pub problem: Option<String>,
}

impl ProbeReport {
    /// One human-readable line: the measurements, or `FAIL` and the problem.
    pub fn line(&self) -> String {
        if let Some(p) = &self.problem {
            return format!("{}: FAIL {p}", self.camera);
        }
        let Some(v) = &self.video else {
            return format!("{}: no video measured", self.camera);
        };
        let mut s = format!("{}: {}", self.camera, v.codec);
        if let Some(p) = &v.profile {
            s += &format!(" {p}");
        }
        if let Some(l) = &v.level {
            s += &format!(" level {l}");
        }
        if let (Some(w), Some(h)) = (v.width, v.height) {
            s += &format!(", {w}x{h}");
        }
        match v.fps {
            Some(f) => s += &format!(", {f:.2} fps"),
            None => s += ", frame rate unknown",
        }
        match (v.gop_seconds, v.gop_frames) {
            (Some(g), Some(f)) => s += &format!(", GOP {g:.2} s ({f:.0} frames)"),
            (Some(g), None) => s += &format!(", GOP {g:.2} s"),
            _ => s += ", GOP longer than the sample (fewer than two key frames)",
        }
        s += &format!(", {:.2} Mbit/s", v.bitrate_bps as f64 / 1e6);
        let audio: Vec<String> = self
            .streams
            .iter()
            .filter(|x| x.media == "audio")
            .map(|x| match x.clock_rate {
                Some(r) => format!("{} {r} Hz", x.encoding),
                None => x.encoding.clone(),
            })
            .collect();
        s += &format!(
            "; audio: {}",
            if audio.is_empty() {
                "none".to_string()
            } else {
                audio.join(", ")
            }
        );
        s += &format!(
            "; RTCP sender reports: {}",
            if v.rtcp_sender_reports { "yes" } else { "no" }
        );
        s
    }
}

/// Buffers seen at the parser's src pad.
#[derive(Default)]
struct Tally {
    first_seen: Option<Instant>,
    frames: u64,
    bytes: u64,
    pts_min: Option<u64>,
    pts_max: Option<u64>,
    key_pts: Vec<u64>,
    reference_ts: bool,
}

/// Probes `cam` for `sample` of video after the first frame (plus up to twice the camera's
/// `stall_timeout` to connect). GStreamer must be initialised. Never fails: every failure is
/// the report's `problem`.
pub fn probe(cam: &CameraConfig, elements: &PipelineElements, sample: Duration) -> ProbeReport {
    let mut report = ProbeReport {
        camera: cam.id.clone(),
        url: cam.redacted_url(),
        streams: Vec::new(),
        video: None,
        problem: None,
    };
    match run(cam, elements, sample, &mut report) {
        Ok(v) => report.video = Some(v),
        Err(p) => report.problem = Some(redact(cam, &p)),
    }
    report
}

fn run(
    cam: &CameraConfig,
    elements: &PipelineElements,
    sample: Duration,
    report: &mut ProbeReport,
) -> Result<VideoInfo, String> {
    let pipeline = gst::Pipeline::with_name(&format!("probe-{}", cam.id));
    let src = crate::ingest::rtsp_source(cam)?;
    src.connect("new-manager", false, |args| {
        let manager = args[1].get::<gst::Element>().ok()?;
        if manager.has_property("add-reference-timestamp-meta") {
            manager.set_property("add-reference-timestamp-meta", true);
        }
        None
    });
    let streams: Arc<Mutex<Vec<OfferedStream>>> = Arc::default();
    {
        let streams = streams.clone();
        let video_taken = AtomicBool::new(false);
        src.connect("select-stream", false, move |args| {
            let caps = args[2].get::<gst::Caps>().ok()?;
            let s = caps.structure(0)?;
            let media = s.get::<String>("media").unwrap_or_default();
            streams.lock().unwrap().push(OfferedStream {
                media: media.clone(),
                encoding: s
                    .get::<String>("encoding-name")
                    .unwrap_or_default()
                    .to_ascii_uppercase(),
                clock_rate: s.get::<i32>("clock-rate").ok(),
            });
            let take = media == "video" && !video_taken.swap(true, Ordering::SeqCst);
            Some(take.to_value())
        });
    }
    pipeline.add(&src).map_err(|e| e.to_string())?;
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let parser_slot: Arc<Mutex<Option<(gst::Element, &'static str)>>> = Arc::default();
    {
        let pipeline = pipeline.downgrade();
        let tally = tally.clone();
        let failure = failure.clone();
        let parser_slot = parser_slot.clone();
        let elements = elements.clone();
        src.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            let enc = pad
                .current_caps()
                .and_then(|c| {
                    c.structure(0)
                        .and_then(|s| s.get::<String>("encoding-name").ok())
                })
                .unwrap_or_default()
                .to_ascii_uppercase();
            let (codec, depay, parse) = match enc.as_str() {
                "H264" => ("H.264", &elements.h264_depay, &elements.h264_parse),
                "H265" => ("H.265", &elements.h265_depay, &elements.h265_parse),
                other => {
                    *failure.lock().unwrap() = Some(format!(
                        "the camera's video is {other}, which edgerec does not record (H.264 and \
                         H.265 only): switch the stream to H.264 or H.265 in the camera's settings"
                    ));
                    return;
                }
            };
            let build = || -> Result<gst::Element, String> {
                use crate::ingest::make_element as mk;
                let depay = mk(depay)?;
                let parse = mk(parse)?;
                let sink = mk("fakesink")?;
                sink.set_property("sync", false);
                let tally = tally.clone();
                parse
                    .static_pad("src")
                    .ok_or("parser has no src pad")?
                    .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                        if let Some(b) = info.buffer() {
                            count(&mut tally.lock().unwrap(), b);
                        }
                        gst::PadProbeReturn::Ok
                    });
                crate::ingest::attach_chain(&pipeline, pad, &[&depay, &parse, &sink])?;
                Ok(parse)
            };
            match build() {
                Ok(parse) => *parser_slot.lock().unwrap() = Some((parse, codec)),
                Err(e) => *failure.lock().unwrap() = Some(e),
            }
        });
    }
    let bus = pipeline.bus().ok_or("pipeline has no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
    let connect_limit = cam.stall_timeout * 2;
    let start = Instant::now();
    let outcome = loop {
        if let Some(f) = failure.lock().unwrap().take() {
            break Err(f);
        }
        let first = tally.lock().unwrap().first_seen;
        match first {
            Some(t) if t.elapsed() >= sample => break Ok(()),
            None if start.elapsed() > connect_limit => {
                let offered = !streams.lock().unwrap().is_empty();
                break Err(no_media(cam, offered, connect_limit));
            }
            _ => {}
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => {
                // A failure found while linking (an unsupported codec) is the cause of the
                // not-linked error that follows it: report the cause.
                if let Some(f) = failure.lock().unwrap().take() {
                    break Err(f);
                }
                let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                break Err(explain(cam, &e.error().to_string(), &debug));
            }
            gst::MessageView::Eos(_) => {
                break Err("the camera ended the stream during the probe".into());
            }
            _ => {}
        }
    };
    report.streams = streams.lock().unwrap().clone();
    let caps = parser_slot.lock().unwrap().as_ref().and_then(|(p, codec)| {
        let caps = p.static_pad("src")?.current_caps()?;
        Some((caps, *codec))
    });
    let _ = pipeline.set_state(gst::State::Null);
    outcome?;
    if !report.streams.iter().any(|s| s.media == "video") {
        return Err("the camera's stream has no video track: check the URL's path".into());
    }
    let t = tally.lock().unwrap();
    Ok(measure(&t, caps))
}

/// Adds one buffer of the parser's output to the tally.
fn count(t: &mut Tally, b: &gst::BufferRef) {
    t.first_seen.get_or_insert_with(Instant::now);
    t.frames += 1;
    t.bytes += b.size() as u64;
    if let Some(pts) = b.pts().map(|p| p.nseconds()) {
        t.pts_min = Some(t.pts_min.map_or(pts, |m| m.min(pts)));
        t.pts_max = Some(t.pts_max.map_or(pts, |m| m.max(pts)));
        if !b.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            t.key_pts.push(pts);
        }
    }
    if b.meta::<gst::ReferenceTimestampMeta>().is_some() {
        t.reference_ts = true;
    }
}

/// Turns the tally and the parser's caps into [`VideoInfo`].
fn measure(t: &Tally, caps: Option<(gst::Caps, &'static str)>) -> VideoInfo {
    let s = caps.as_ref().and_then(|(c, _)| c.structure(0));
    let span_s = match (t.pts_min, t.pts_max) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    let fps = span_s
        .filter(|_| t.frames >= 2)
        .map(|s| (t.frames - 1) as f64 / s);
    let mut keys = t.key_pts.clone();
    keys.sort_unstable();
    let gop_seconds = (keys.len() >= 2)
        .then(|| (keys[keys.len() - 1] - keys[0]) as f64 / 1e9 / (keys.len() - 1) as f64);
    let elapsed = t
        .first_seen
        .map(|f| f.elapsed().as_secs_f64())
        .unwrap_or(0.0)
        .max(span_s.unwrap_or(0.0));
    VideoInfo {
        codec: caps.as_ref().map_or("unknown", |(_, c)| c),
        profile: s.and_then(|s| s.get::<String>("profile").ok()),
        level: s.and_then(|s| s.get::<String>("level").ok()),
        width: s.and_then(|s| s.get::<i32>("width").ok()),
        height: s.and_then(|s| s.get::<i32>("height").ok()),
        fps,
        gop_seconds,
        gop_frames: gop_seconds.zip(fps).map(|(g, f)| g * f),
        bitrate_bps: if elapsed > 0.0 {
            (t.bytes as f64 * 8.0 / elapsed) as u64
        } else {
            0
        },
        frames: t.frames,
        key_frames: t.key_pts.len() as u64,
        rtcp_sender_reports: t.reference_ts,
    }
}

/// Host and port of the camera URL, for messages.
fn authority(cam: &CameraConfig) -> String {
    url::Url::parse(&cam.url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port().unwrap_or(554))))
        .unwrap_or_else(|| cam.redacted_url())
}

/// Nothing arrived within `limit`.
fn no_media(cam: &CameraConfig, offered: bool, limit: Duration) -> String {
    if offered && cam.transport == Transport::Udp {
        format!(
            "the camera answered but no video arrived within {} s over UDP (a firewall or NAT \
             drops it?): try transport = \"tcp\"",
            limit.as_secs()
        )
    } else if offered {
        format!(
            "the camera answered but sent no video within {} s: check that the stream is \
             enabled in the camera",
            limit.as_secs()
        )
    } else {
        format!(
            "no answer from {} within {} s (timeout): check the address, the port and the network \
             path to the camera",
            authority(cam),
            limit.as_secs()
        )
    }
}

/// Maps an `rtspsrc` error (message and debug text) to one line of advice.
fn explain(cam: &CameraConfig, message: &str, debug: &str) -> String {
    let all = format!("{message} {debug}").to_ascii_lowercase();
    let path = url::Url::parse(&cam.url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    if all.contains("401") || all.contains("unauthorized") {
        if cam.username.is_none() {
            "the camera asks for a user name and password (RTSP 401): set username and \
             password (or password_file) for this camera"
                .into()
        } else {
            "the camera refused the user name or password (RTSP 401 Unauthorized): check \
             username and password (or password_file)"
                .into()
        }
    } else if all.contains("404") || all.contains("not found") {
        format!(
            "the camera has no stream at path {path:?} (RTSP 404 Not Found): check the URL's \
             path in the camera's manual or web page"
        )
    } else if all.contains("failed to connect") {
        // rtspsrc says only "Failed to connect. (Generic error)": ask the network ourselves.
        connect_failure(cam)
    } else if all.contains("connection refused") {
        format!(
            "nothing accepts RTSP connections at {} (connection refused): check the port and \
             that RTSP is enabled in the camera",
            authority(cam)
        )
    } else if all.contains("timeout") || all.contains("timed out") {
        format!(
            "no answer from {} (timeout): check the address, the port and the network path to \
             the camera",
            authority(cam)
        )
    } else if all.contains("resolve") || all.contains("name or service") {
        format!(
            "the camera's host name does not resolve ({}): check the URL's host",
            authority(cam)
        )
    } else {
        format!("the camera could not be read: {message}")
    }
}

/// Why a TCP connection to the camera fails: no such host, refused, no answer, or (when a
/// connection does open now) a camera that closes RTSP connections.
fn connect_failure(cam: &CameraConfig) -> String {
    use std::net::ToSocketAddrs;
    let at = authority(cam);
    let addrs = match at.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(_) => {
            return format!("the camera's host name does not resolve ({at}): check the URL's host")
        }
    };
    let mut refused = false;
    for a in &addrs {
        match std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)) {
            Ok(_) => {
                return format!(
                    "{at} accepts connections but the RTSP session failed: check that this is the \
                     camera's RTSP port"
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused = true,
            Err(_) => {}
        }
    }
    if refused {
        format!(
            "nothing accepts RTSP connections at {at} (connection refused): check the port and \
             that RTSP is enabled in the camera"
        )
    } else {
        format!(
            "no answer from {at} (timeout): check the address, the port and the network path to \
             the camera"
        )
    }
}

/// Removes the camera's credentials from a message (GStreamer's texts can carry the URL).
fn redact(cam: &CameraConfig, msg: &str) -> String {
    let mut out = msg.replace(&cam.url, &cam.redacted_url());
    let mut secrets: Vec<String> = [&cam.password, &cam.username]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    // Credentials written into the URL itself, as typed and percent-decoded.
    if let Ok(u) = url::Url::parse(&cam.url) {
        for part in [u.password().unwrap_or_default(), u.username()] {
            secrets.push(part.to_string());
            if let Ok(d) = percent_decode(part) {
                secrets.push(d);
            }
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// `%XX` sequences decoded (URL userinfo); errors on invalid UTF-8.
fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(url: &str, user: Option<&str>) -> CameraConfig {
        let text = format!(
            "[storage]\npath = \"/tmp/x\"\nmax_size_mib = 64\n[[camera]]\nid = \"c\"\nurl = \"{url}\"\n{}",
            user.map(|u| format!("username = \"{u}\"\npassword = \"s3cret\"\n"))
                .unwrap_or_default()
        );
        crate::config::Config::parse(&text)
            .unwrap()
            .cameras
            .remove(0)
    }

    #[test]
    fn failures_get_one_line_of_advice() {
        let c = cam("rtsp://192.0.2.7:8554/live/main", Some("admin"));
        let e = explain(&c, "Unauthorized", "rtspsrc.c: ... 401 Unauthorized");
        assert!(e.contains("RTSP 401") && e.contains("password"), "{e}");
        let e = explain(&cam("rtsp://h/x", None), "Unauthorized", "");
        assert!(e.contains("set username"), "{e}");
        let e = explain(&c, "Not found", "Not Found (404)");
        assert!(e.contains("\"/live/main\"") && e.contains("404"), "{e}");
        let e = explain(&c, "Could not open resource", "Connection refused");
        assert!(e.contains("192.0.2.7:8554") && e.contains("refused"), "{e}");
        let e = explain(&c, "Could not open resource", "Timeout while waiting");
        assert!(e.contains("timeout"), "{e}");
        let e = no_media(&cam("rtsp://h/x", None), false, Duration::from_secs(20));
        assert!(e.contains("h:554") && e.contains("20 s"), "{e}");
    }

    #[test]
    fn credentials_never_reach_a_message() {
        let c = cam("rtsp://admin:s3cret@192.0.2.7/live", None);
        let m = redact(&c, "failed rtsp://admin:s3cret@192.0.2.7/live: s3cret");
        assert!(!m.contains("s3cret"), "{m}");
        let c = cam("rtsp://192.0.2.7/live", Some("admin"));
        assert!(!redact(&c, "user admin pw s3cret").contains("s3cret"));
        let c = cam("rtsp://op:p%40ss@192.0.2.7/live", None);
        let m = redact(&c, "auth p@ss and p%40ss");
        assert!(!m.contains("p@ss") && !m.contains("p%40ss"), "{m}");
    }

    #[test]
    fn measurements_from_a_tally() {
        let mut t = Tally {
            first_seen: Some(Instant::now() - Duration::from_secs(4)),
            ..Tally::default()
        };
        // 100 frames at 25 fps, a key frame every 50: 2 s GOP.
        for i in 0..100u64 {
            let pts = i * 40_000_000;
            t.frames += 1;
            t.bytes += 10_000;
            t.pts_min = Some(t.pts_min.map_or(pts, |m| m.min(pts)));
            t.pts_max = Some(t.pts_max.map_or(pts, |m| m.max(pts)));
            if i % 50 == 0 {
                t.key_pts.push(pts);
            }
        }
        let v = measure(&t, None);
        assert!((v.fps.unwrap() - 25.0).abs() < 0.01, "{v:?}");
        assert!((v.gop_seconds.unwrap() - 2.0).abs() < 1e-9, "{v:?}");
        assert!((v.gop_frames.unwrap() - 50.0).abs() < 0.1, "{v:?}");
        assert!(
            (v.bitrate_bps as f64 - 2_000_000.0).abs() < 50_000.0,
            "{v:?}"
        );
    }
}
