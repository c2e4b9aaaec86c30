//! `edgerec-testcam`: an RTSP test camera (gstreamer-rtsp-server) for tests, benchmarks and the demo.
//!
//! Serves a synthetic H.264 or H.265 stream (size, frame rate, GOP and bitrate as options) or loops
//! a media file, at `rtsp://<address>:<port><path>`. Prints `READY rtsp://...` on stdout once it
//! listens. Not part of what ships on a gateway.

use clap::Parser;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use rtsp::prelude::*;

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
    /// Codec of the synthetic stream: h264 or h265.
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
}

fn launch_line(a: &Args) -> Result<String, String> {
    let source = match &a.file {
        Some(f) => {
            let uri = gst::glib::filename_to_uri(
                std::fs::canonicalize(f).map_err(|e| format!("{}: {e}", f.display()))?,
                None,
            )
            .map_err(|e| e.to_string())?;
            format!(
                "uridecodebin3 uri={uri} caps=video/x-raw ! videoconvert ! videoscale ! videorate"
            )
        }
        None => format!(
            "videotestsrc is-live=true pattern={} ! timeoverlay",
            a.pattern
        ),
    };
    let raw = format!(
        "video/x-raw,format=I420,width={},height={},framerate={}/1",
        a.width, a.height, a.fps
    );
    let enc = match a.codec.as_str() {
        "h264" => format!(
            "x264enc tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={} ! video/x-h264,profile=main ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1",
            a.bitrate, a.gop
        ),
        "h265" => format!(
            "x265enc tune=zerolatency speed-preset=ultrafast bitrate={} key-int-max={} ! h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1",
            a.bitrate, a.gop
        ),
        other => return Err(format!("--codec must be h264 or h265, got {other:?}")),
    };
    Ok(format!("( {source} ! {raw} ! {enc} )"))
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
    factory.set_shared(true);
    if a.file.is_some() {
        // Loop the file: on end of stream, seek back to the start.
        factory.connect_media_configure(|_, media| {
            let element = media.element();
            let weak = element.downgrade();
            if let Some(bin) = element.downcast_ref::<gst::Bin>() {
                if let Some(dec) = bin
                    .iterate_recurse()
                    .into_iter()
                    .flatten()
                    .find(|e| e.factory().is_some_and(|f| f.name() == "uridecodebin3"))
                {
                    if let Some(pad) = dec.static_pad("src") {
                        let _ = pad;
                    }
                    let w2 = weak.clone();
                    dec.connect_pad_added(move |_, pad| {
                        let w3 = w2.clone();
                        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                            if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                                if ev.type_() == gst::EventType::Eos {
                                    if let Some(e) = w3.upgrade() {
                                        let e2 = e.clone();
                                        std::thread::spawn(move || {
                                            let _ = e2.seek_simple(
                                                gst::SeekFlags::FLUSH | gst::SeekFlags::SEGMENT,
                                                gst::ClockTime::ZERO,
                                            );
                                        });
                                    }
                                    return gst::PadProbeReturn::Drop;
                                }
                            }
                            gst::PadProbeReturn::Ok
                        });
                    });
                }
            }
        });
    }
    if let (Some(user), Some(pass)) = (&a.user, &a.password) {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        let basic = rtsp::RTSPAuth::make_basic(user, pass);
        auth.add_basic(basic.as_str(), &token);
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
