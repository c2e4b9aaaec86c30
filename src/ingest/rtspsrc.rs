//! The `rtspsrc` source of a camera, set up as every connection to it is (the recorder's runs
//! and `edgerec probe`), and how a depayloader chain is attached to its pads.

use gst::prelude::*;
use gstreamer as gst;

use super::make_element;
use crate::config::{CameraConfig, Transport};

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
