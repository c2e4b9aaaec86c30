//! `edgerec-testcam`: an RTSP test camera (gstreamer-rtsp-server) for tests, benchmarks and the demo.
//!
//! Serves a synthetic H.264 or H.265 stream (size, frame rate, GOP and bitrate as options) or loops
//! a media file, at `rtsp://<address>:<port><path>`. Prints `READY rtsp://...` on stdout once it
//! listens. Not part of what ships on a gateway.

use clap::Parser;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use rtsp::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(version, about = "RTSP test camera for edgerec")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// TCP port (0: pick a free one and print it).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// Mount path.
    #[arg(long, default_value = "/stream")]
    path: String,
    /// Codec of the synthetic stream: h264, h265 or mjpeg (which edgerec does not record).
    #[arg(long, default_value = "h264")]
    codec: String,
    /// Picture width in pixels.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// GOP length in frames (keyframe interval).
    #[arg(long, default_value_t = 25)]
    gop: u32,
    /// Target bitrate in kbit/s.
    #[arg(long, default_value_t = 2000)]
    bitrate: u32,
    /// videotestsrc pattern (smpte, ball, snow, ...).
    #[arg(long, default_value = "smpte")]
    pattern: String,
    /// Loop this media file (its video is re-encoded with the options above) instead of a pattern.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// Require this user name (with --password): the camera answers 401 otherwise.
    #[arg(long)]
    user: Option<String>,
    /// Password for --user.
    #[arg(long)]
    password: Option<String>,
    /// With --user: ask for HTTP digest authentication (RFC 2617) instead of basic.
    #[arg(long)]
    digest: bool,
    /// A microphone: `none` (default), `aac` (RTP MPEG4-GENERIC, 48 kHz mono, as most cameras
    /// send), `pcmu` or `pcma` (G.711 µ-law / A-law, RTP/8000, as cheaper cameras send). The
    /// sound is a 1 kHz tone.
    #[arg(long, default_value = "none")]
    audio: String,
    /// One media pipeline (one encoder) per client instead of one shared by all. gst-rtsp-server
    /// 1.22's shared media has answered DESCRIBE with 503 for good once several clients of a
    /// G.711 stream connected at the same instant, and has aborted in `gst_rtsp_media_get_rates`
    /// when a second PLAY came just as the first client's media started; the benchmark's G.711
    /// cameras and the tests that put two recorder cameras on one test camera use this.
    #[arg(long)]
    unshared: bool,
    /// A white flash (one frame) and a 100 ms beep together every this many seconds, on a black
    /// picture and silence (with --audio): for checking that sound and picture stay in sync.
    #[arg(long)]
    flash_beep: Option<u32>,
    /// `START,LENGTH` in seconds: the audio stops START s after the media starts, for LENGTH s,
    /// while video goes on (a camera that mutes).
    #[arg(long, value_parser = parse_gap)]
    audio_gap: Option<(u64, u64)>,
    /// B-frames between reference frames (H.264 only; 0: none, the default). Frames then
    /// arrive in decode order with PTS != DTS, as from most cameras' "high profile" setting.
    #[arg(long, default_value_t = 0)]
    bframes: u32,
    /// A second picture size, `WIDTHxHEIGHT`: each SIGUSR1 switches the stream between it and
    /// --width x --height mid-stream (the encoder sends new SPS/PPS, as a camera whose
    /// resolution is changed in its web page does).
    #[arg(long, value_parser = parse_size)]
    switch_size: Option<(u32, u32)>,
    /// Irregular GOPs: keyframe intervals in frames, cycled (e.g. `7,23,12,31`); replaces
    /// --gop. Real cameras with scene-change detection or VBR vary their GOP like this.
    #[arg(long, value_delimiter = ',')]
    gop_pattern: Vec<u32>,
}

fn parse_gap(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("--audio-gap wants START,LENGTH in seconds, got {s:?}"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("--audio-gap: {v:?} is not a whole number of seconds"))
    };
    Ok((n(a)?, n(b)?))
}

/// The audio branch of the launch line (payloader `pay1`), empty for `--audio none`.
fn audio_branch(a: &Args) -> Result<String, String> {
    let (rate, enc) = match a.audio.as_str() {
        "none" => return Ok(String::new()),
        "aac" => (
            48_000,
            "avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=97".to_string(),
        ),
        "pcmu" => (8_000, "mulawenc ! rtppcmupay name=pay1 pt=0".to_string()),
        "pcma" => (8_000, "alawenc ! rtppcmapay name=pay1 pt=8".to_string()),
        other => {
            return Err(format!(
                "--audio must be none, aac, pcmu or pcma, got {other:?}"
            ))
        }
    };
    // With --flash-beep the tone is cut to a beep by a probe on `beep` (see `beep_probe`).
    let beep = if a.flash_beep.is_some() {
        " ! identity name=beep"
    } else {
        ""
    };
    Ok(format!(
        " audiotestsrc is-live=true wave=sine freq=1000 volume=0.3 samplesperbuffer=240 ! audioconvert ! audioresample ! \
         audio/x-raw,format=S16LE,rate={rate},channels=1{beep} ! valve name=mic drop=false ! audioconvert ! {enc}"
    ))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
    let n = |v: &str| v.parse::<u32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((n(w)?, n(h)?))
}

fn launch_line(a: &Args) -> Result<String, String> {
    let raw = raw_caps(a);
    let source = match &a.file {
        Some(f) => {
            std::fs::metadata(f).map_err(|e| format!("{}: {e}", f.display()))?;
            format!("appsrc name=feed is-live=true format=time caps={raw}")
        }
        None => {
            // A running clock in the picture, where the pango plugin is installed (Debian's
            // gstreamer1.0-x); without it the pattern alone still makes a valid stream.
            let overlay =
                if a.flash_beep.is_none() && gst::ElementFactory::find("timeoverlay").is_some() {
                    " ! timeoverlay"
                } else {
                    ""
                };
            let pattern = if a.flash_beep.is_some() {
                "black"
            } else {
                &a.pattern
            };
            format!("videotestsrc is-live=true pattern={pattern}{overlay}")
        }
    };
    // With a GOP pattern the encoder makes keyframes only when asked (see `force_gops`).
    let gop = if a.gop_pattern.is_empty() {
        a.gop
    } else {
        100_000
    };
    let enc = match a.codec.as_str() {
        // No zerolatency tuning (it turns B-frames off); no adaptive B-frame placement, so every
        // GOP has them.
        "h264" if a.bframes > 0 => format!(
            "x264enc name=enc speed-preset=ultrafast bframes={} b-adapt=false rc-lookahead=0 sync-lookahead=0 bitrate={} key-int-max={gop} ! video/x-h264,profile=main ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1",
            a.bframes, a.bitrate
        ),
        "h264" => format!(
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={gop} ! video/x-h264,profile=main ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1",
            a.bitrate
        ),
        "h265" => format!(
            "x265enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={gop} ! h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1",
            a.bitrate
        ),
        // Not recordable: for `edgerec probe`'s "unsupported codec" answer.
        "mjpeg" => "jpegenc name=enc quality=50 ! rtpjpegpay name=pay0 pt=26".to_string(),
        other => return Err(format!("--codec must be h264, h265 or mjpeg, got {other:?}")),
    };
    let audio = audio_branch(a)?;
    let flash = if a.flash_beep.is_some() {
        "identity name=flash ! "
    } else {
        ""
    };
    Ok(format!(
        "( {source} ! videoscale ! capsfilter name=size caps=\"{raw}\" ! {flash}{enc}{audio} )"
    ))
}

fn raw_caps(a: &Args) -> String {
    sized_caps(a, a.width, a.height)
}

fn sized_caps(a: &Args, width: u32, height: u32) -> String {
    format!(
        "video/x-raw,format=I420,width={width},height={height},framerate={}/1",
        a.fps
    )
}

fn a_fps(raw: &str) -> u32 {
    raw.rsplit("framerate=")
        .next()
        .and_then(|f| f.split('/').next())
        .and_then(|f| f.parse().ok())
        .unwrap_or(25)
}

/// Decodes `file` in a pipeline of its own (not live, so it can seek), loops it by seeking back to
/// the start at its end, and pushes its frames into `src` at `fps` in real time. Returns when the
/// RTSP media goes away (the push fails).
fn feed_file(
    file: &std::path::Path,
    raw: &str,
    fps: u32,
    src: &gst_app::AppSrc,
) -> Result<(), String> {
    use gst::prelude::*;
    let location = file.to_str().ok_or("file name is not UTF-8")?;
    let dec = gst::parse::launch(&format!(
        "filesrc location=\"{location}\" ! decodebin ! videoconvert ! videoscale ! videorate ! {raw} ! appsink name=out sync=false max-buffers=8"
    ))
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let out = dec
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    dec.set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let frame = std::time::Duration::from_secs(1) / fps.max(1);
    let mut n: u32 = 0;
    let mut base: Option<gst::ClockTime> = None;
    let result = loop {
        let Some(sample) = out.try_pull_sample(gst::ClockTime::from_seconds(5)) else {
            if out.is_eos() {
                let _ = dec.seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                    gst::ClockTime::ZERO,
                );
                continue;
            }
            break Err("decoder stalled".to_string());
        };
        let Some(buf) = sample.buffer() else { continue };
        let mut buf = buf.copy();
        {
            let b = buf.make_mut();
            let base = *base
                .get_or_insert_with(|| src.current_running_time().unwrap_or(gst::ClockTime::ZERO));
            let pts = base + gst::ClockTime::from_nseconds(frame.as_nanos() as u64 * u64::from(n));
            b.set_pts(pts);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::from_nseconds(frame.as_nanos() as u64));
        }
        n += 1;
        if let Some(wait) = (start + frame * n).checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        if src.push_buffer(buf).is_err() {
            break Ok(());
        }
    };
    let _ = dec.set_state(gst::State::Null);
    result
}

/// Whether running time `t` lies in the first `len` of a `period`.
fn in_pulse(t: gst::ClockTime, period: gst::ClockTime, len: gst::ClockTime) -> bool {
    t.nseconds() % period.nseconds() < len.nseconds()
}

/// Paints the frames of `flash` white (I420 luma 235) whose time lies in the first frame of
/// every `period`.
fn flash_probe(flash: &gst::Element, period: gst::ClockTime, frame: gst::ClockTime) {
    use gst::prelude::*;
    let Some(pad) = flash.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(ref mut buf)) = info.data {
            if buf.pts().is_some_and(|t| in_pulse(t, period, frame)) {
                let b = buf.make_mut();
                if let Ok(mut m) = b.map_writable() {
                    // Luma is the first two thirds of an I420 frame.
                    let n = m.len() * 2 / 3;
                    m[..n].fill(235);
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Keeps the tone of `beep` (S16LE mono at `rate`) only in the first 100 ms of every
/// `period`, sample by sample; silence elsewhere.
fn beep_probe(beep: &gst::Element, period: gst::ClockTime, rate: u64) {
    use gst::prelude::*;
    let Some(pad) = beep.static_pad("src") else {
        return;
    };
    let len = gst::ClockTime::from_mseconds(100);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(ref mut buf)) = info.data {
            let Some(pts) = buf.pts() else {
                return gst::PadProbeReturn::Ok;
            };
            let b = buf.make_mut();
            if let Ok(mut m) = b.map_writable() {
                for (i, s) in m.chunks_exact_mut(2).enumerate() {
                    let t = pts + gst::ClockTime::from_nseconds(i as u64 * 1_000_000_000 / rate);
                    if !in_pulse(t, period, len) {
                        s.fill(0);
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Forces a keyframe at the start of each GOP of `pattern` (frames, cycled) by sending the
/// encoder a force-key-unit event before the frame that starts it.
fn force_gops(enc: &gst::Element, pattern: Vec<u32>) {
    use gst::prelude::*;
    let Some(pad) = enc.static_pad("sink") else {
        return;
    };
    // (frame count, frame that starts the next GOP, GOPs started)
    let state = std::sync::Mutex::new((0u64, 0u64, 0usize));
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        let mut g = state.lock().unwrap();
        let (frame, next, k) = &mut *g;
        if *frame == *next {
            let ev = gst::event::CustomDownstream::new(
                gst::Structure::builder("GstForceKeyUnit")
                    .field("all-headers", true)
                    .build(),
            );
            pad.send_event(ev);
            *next += u64::from(pattern[*k % pattern.len()].max(1));
            *k += 1;
        }
        *frame += 1;
        gst::PadProbeReturn::Ok
    });
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    if let Err(e) = run(&a) {
        eprintln!("edgerec-testcam: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

fn run(a: &Args) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    let main_loop = gst::glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address(&a.address);
    server.set_service(&a.port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch_line(a)?);
    factory.set_shared(!a.unshared);
    // Capsfilters of the running media, for --switch-size.
    let sizes: std::sync::Arc<std::sync::Mutex<Vec<gst::glib::WeakRef<gst::Element>>>> =
        Default::default();
    {
        let sizes = sizes.clone();
        let pattern = a.gop_pattern.clone();
        factory.connect_media_configure(move |_, media| {
            if let Some(f) = media
                .element()
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name("size"))
            {
                sizes.lock().unwrap().push(f.downgrade());
            }
            if !pattern.is_empty() {
                if let Some(enc) = media
                    .element()
                    .downcast_ref::<gst::Bin>()
                    .and_then(|b| b.by_name("enc"))
                {
                    force_gops(&enc, pattern.clone());
                }
            }
        });
    }
    // gst-rtsp-server 1.22 aborts (`gst_rtsp_media_get_rates: assertion failed`) when a second
    // client's PLAY of the shared media comes after a first PLAY started it but before any data
    // has flowed (two recorder cameras on one test camera, connecting at once). Such a PLAY gets
    // 503 Service Unavailable here, and the client tries again after its backoff.
    let playing = Arc::new(AtomicUsize::new(0));
    let flowing = Arc::new(AtomicBool::new(false));
    {
        let flowing = flowing.clone();
        factory.connect_media_configure(move |_, media| {
            flowing.store(false, Ordering::SeqCst);
            let Some(pay) = media
                .element()
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name("pay0"))
                .and_then(|p| p.static_pad("src"))
            else {
                return;
            };
            let flowing = flowing.clone();
            pay.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, _| {
                    flowing.store(true, Ordering::SeqCst);
                    gst::PadProbeReturn::Remove
                },
            );
        });
    }
    server.connect_client_connected(move |_, client| {
        let counted = Arc::new(AtomicBool::new(false));
        {
            let (playing, flowing, counted) = (playing.clone(), flowing.clone(), counted.clone());
            client.connect_pre_play_request(move |_, _| {
                if counted.load(Ordering::SeqCst) {
                    return rtsp::gst_rtsp::RTSPStatusCode::Ok;
                }
                if playing.load(Ordering::SeqCst) > 0 && !flowing.load(Ordering::SeqCst) {
                    eprintln!("edgerec-testcam: PLAY before the shared media flows: 503");
                    return rtsp::gst_rtsp::RTSPStatusCode::ServiceUnavailable;
                }
                playing.fetch_add(1, Ordering::SeqCst);
                counted.store(true, Ordering::SeqCst);
                rtsp::gst_rtsp::RTSPStatusCode::Ok
            });
        }
        let playing = playing.clone();
        client.connect_closed(move |_| {
            if counted.swap(false, Ordering::SeqCst) {
                playing.fetch_sub(1, Ordering::SeqCst);
            }
        });
    });
    if let Some(p) = a.flash_beep {
        let period = gst::ClockTime::from_seconds(u64::from(p.max(1)));
        let frame = gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(a.fps.max(1)));
        let rate = if a.audio == "aac" { 48_000 } else { 8_000 };
        factory.connect_media_configure(move |_, media| {
            let Some(bin) = media.element().downcast_ref::<gst::Bin>().cloned() else {
                return;
            };
            if let Some(f) = bin.by_name("flash") {
                flash_probe(&f, period, frame);
            }
            if let Some(b) = bin.by_name("beep") {
                beep_probe(&b, period, rate);
            }
        });
    }
    if let Some((start, len)) = a.audio_gap {
        factory.connect_media_configure(move |_, media| {
            let Some(mic) = media
                .element()
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name("mic"))
            else {
                eprintln!("edgerec-testcam: --audio-gap without --audio");
                return;
            };
            let weak = mic.downgrade();
            gst::glib::timeout_add_seconds(start as u32, move || {
                if let Some(m) = weak.upgrade() {
                    eprintln!("edgerec-testcam: audio stops for {len} s");
                    m.set_property("drop", true);
                    let weak = m.downgrade();
                    gst::glib::timeout_add_seconds(len as u32, move || {
                        if let Some(m) = weak.upgrade() {
                            eprintln!("edgerec-testcam: audio goes on");
                            m.set_property("drop", false);
                        }
                        gst::glib::ControlFlow::Break
                    });
                }
                gst::glib::ControlFlow::Break
            });
        });
    }
    if let Some((w2, h2)) = a.switch_size {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.clone())
            .map_err(|e| format!("SIGUSR1: {e}"))?;
        let (first, second) = (raw_caps(a), sized_caps(a, w2, h2));
        let mut switched = false;
        gst::glib::timeout_add(std::time::Duration::from_millis(50), move || {
            if flag.swap(false, std::sync::atomic::Ordering::Relaxed) {
                switched = !switched;
                let caps: gst::Caps = if switched { &second } else { &first }
                    .parse()
                    .expect("valid caps");
                eprintln!("edgerec-testcam: switching to {caps}");
                for f in sizes.lock().unwrap().iter().filter_map(|w| w.upgrade()) {
                    f.set_property("caps", &caps);
                }
            }
            gst::glib::ControlFlow::Continue
        });
    }
    if let Some(file) = a.file.clone() {
        let raw = raw_caps(a);
        factory.connect_media_configure(move |_, media| {
            let bin = media.element();
            let Some(src) = bin
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name("feed"))
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            else {
                eprintln!("edgerec-testcam: no appsrc in the media pipeline");
                return;
            };
            let (file, raw, fps) = (file.clone(), raw.clone(), a_fps(&raw));
            std::thread::spawn(move || {
                if let Err(e) = feed_file(&file, &raw, fps, &src) {
                    eprintln!("edgerec-testcam: {}: {e}", file.display());
                }
            });
        });
    }
    if let (Some(user), Some(pass)) = (&a.user, &a.password) {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        if a.digest {
            auth.set_supported_methods(rtsp::gst_rtsp::RTSPAuthMethod::Digest);
            auth.add_digest(user, pass, &token);
        } else {
            let basic = rtsp::RTSPAuth::make_basic(user, pass);
            auth.add_basic(basic.as_str(), &token);
        }
        server.set_auth(Some(&auth));
        factory.add_role_from_structure(
            &gst::Structure::builder("user")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    server
        .mount_points()
        .ok_or("no mount points")?
        .add_factory(&a.path, factory);
    let id = server
        .attach(None)
        .map_err(|e| format!("cannot listen on {}:{}: {e}", a.address, a.port))?;
    println!(
        "READY rtsp://{}:{}{}",
        a.address,
        server.bound_port(),
        a.path
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    main_loop.run();
    id.remove();
    Ok(())
}
