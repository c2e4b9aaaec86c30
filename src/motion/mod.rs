//! Motion detection on the gateway: a cheap EVR trigger (seed `001_*`: events "from processing
//! of the video signal itself"; LVA's motion detection processor).
//!
//! - [`detector`]: pure analysis of a luma plane (ours, measured, unit-tested on frames).
//! - [`raster`]: mask and zone polygons on the analysis grid.
//! - [`analyser`]: one camera's detector, event aggregation, counters and the hand-off of
//!   events to the storage writer (signal gate) and to MQTT (through [`MotionStatus`]).
//! - [`branch`]: the GStreamer side: a key-frame branch off the recording pipeline, or a
//!   substream pipeline, ending in an appsink that keeps only the newest frame.
//!
//! Recording never waits for analysis: the branch starts with a leaky queue of one buffer.
//! MQTT topics and metrics text belong to `mqtt` and `http::metrics`.

pub mod analyser;
pub mod branch;
pub mod detector;
pub mod raster;

use std::sync::atomic::{AtomicI64, AtomicU64};

use crate::store::stats::SeqLog;

/// One reported motion event (at most one per aggregation window).
#[derive(Debug, Clone, PartialEq)]
pub struct MotionNotice {
    /// Sequence number in [`MotionStatus::log`].
    pub seq: u64,
    /// Media time of the analysed frame, UTC ns.
    pub time_utc_ns: i64,
    /// The moving regions (boxes present only with `output_motion_region`).
    pub regions: Vec<detector::Region>,
    /// Whether boxes are reported.
    pub with_box: bool,
}

/// A camera's motion counters and recent events, shared with MQTT and `/metrics`.
#[derive(Debug, Default)]
pub struct MotionStatus {
    /// Frames analysed.
    pub frames_analysed: AtomicU64,
    /// Motion events reported (after aggregation).
    pub events: AtomicU64,
    /// CPU time of the analysis branch (decoding and detection), ns.
    pub cpu_ns: AtomicU64,
    /// Media time of the last frame with motion, UTC ns (0: none yet).
    pub last_motion_utc_ns: AtomicI64,
    /// Recent events, for MQTT.
    pub log: SeqLog<MotionNotice>,
}
