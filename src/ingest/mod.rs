//! Camera ingest: one GStreamer pipeline per camera, rebuilt on every loss (DESIGN section 3).
//!
//! `source → [depayloader → parser →] h26Xtimestamper → isofmp4mux → appsink`, where the source
//! is retina (whole access units pushed from the shared RTSP thread) or `rtspsrc` (RTP, so a
//! depayloader and a parser first), chosen per camera. The appsink callback does no I/O: it tells
//! the init segment (`HEADER|DISCONT`) from fragments (`HEADER`), stamps each fragment with its
//! UTC time, and hands it to the storage writer. A supervisor thread per camera watches the bus
//! and a data watchdog (frames from retina, RTP out of the depayloader); on any loss (error, EOS
//! it did not ask for, no data for `stall_timeout`) it stops the source, pushes EOS into the
//! chain so the half-built fragment is kept, tears the pipeline down and rebuilds it after an
//! exponential backoff from 1 s to 30 s growing by a factor of 1.2 per failure, with ±10 %
//! jitter: 15 s into an outage the next attempt is at most about 4 s away (a rebooting camera is
//! back on record within 5 s of its return), and a camera that stays away is asked every 30 s
//! after about 3 minutes. Storage and index work do not belong here.
//!
//! With `audio = "auto"` the retina source also pushes the camera's first audio stream into a
//! second muxer pad (`[queue → G.711 decoder → audioconvert → AAC encoder → aacparse]`, see
//! [`chain::ChainBuilder::attach_audio`]); a quiet microphone is ended with GAP events so the
//! video is never held back.
//!
//! - [`supervisor`]: the camera loop (build, watch, tear down, back off, rebuild);
//! - [`retina`]: the retina source (`source = "retina"`) and the one RTSP runtime thread;
//! - [`rtspsrc`]: the `rtspsrc` source as every connection to a camera sets it up (also
//!   `edgerec probe`);
//! - [`chain`]: what every source feeds: timestamper, muxer, appsink, the motion branch;
//! - [`sink`]: the appsink end, which turns the muxer's output into stamped fragments for the
//!   storage writer.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;

use crate::backoff::Backoff;

pub mod chain;
pub mod retina;
pub mod rtspsrc;
pub mod sink;
pub mod supervisor;

pub use rtspsrc::{attach_chain, rtsp_source};
pub use supervisor::CameraSupervisor;

/// Initialises GStreamer and registers the statically linked fMP4 muxer (`isofmp4mux`).
pub fn init_gstreamer() -> Result<(), gst::glib::Error> {
    gst::init()?;
    gstfmp4::plugin_register_static()
        .map_err(|e| gst::glib::Error::new(gst::CoreError::Failed, &e.to_string()))?;
    Ok(())
}

/// Growth of the reconnect delay per failed attempt.
pub const BACKOFF_FACTOR: f64 = 1.2;

/// A new element of `factory`. Errors: the element is not installed, named in the message.
pub fn make_element(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element {factory:?} is not available"))
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
    /// The camera's audio as this run records it: its RTP encoding and clock rate
    /// (`MPEG4-GENERIC/48000`, `PCMU/8000`); `None` when no audio is recorded.
    pub audio_codec: Mutex<Option<String>>,
}

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
