//! `[camera.motion]`: motion detection on the gateway (LVA motion detection processor properties
//! `sensitivity`, `eventAggregationWindow`, `outputMotionRegion` in snake_case; masks and zones as
//! Frigate users expect them; seed `001_*`: events "from processing of the video signal itself").
//! Parsing and rules only; the detector is [`crate::motion`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{duration_key, rule, ConfigError};
use crate::motion::detector::Sensitivity;
use crate::motion::raster::Polygon;

/// Most polygons in a mask or a zone.
pub const MAX_POLYGONS: usize = 32;
/// Most points of one polygon.
pub const MAX_POINTS: usize = 64;
/// Most zones per camera.
pub const MAX_ZONES: usize = 16;

/// `[camera.motion]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMotion {
    #[serde(default)]
    enabled: bool,
    sensitivity: Option<String>,
    event_aggregation_window: Option<String>,
    output_motion_region: Option<bool>,
    sample: Option<String>,
    substream_url: Option<String>,
    substream_fps: Option<u32>,
    mask: Option<Vec<Vec<[f64; 2]>>>,
    zones: Option<BTreeMap<String, Vec<Vec<[f64; 2]>>>>,
    decoder: Option<String>,
    off_delay: Option<String>,
    trigger: Option<bool>,
}

/// What the detector looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// The recorded stream's key frames only (every other frame is dropped before the decoder).
    Keyframes,
    /// A second, low-resolution stream of the camera, decoded at `fps` frames per second.
    Substream {
        /// `rtsp://` or `rtsps://` URL; the camera's username and password apply.
        url: String,
        /// Frames analysed per second, 1 to 30.
        fps: u32,
    },
}

/// The validated motion settings of one camera (present only when `enabled = true`).
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    /// How readily motion is reported (LVA `sensitivity`; default medium).
    pub sensitivity: Sensitivity,
    /// At most one motion event per window (LVA `eventAggregationWindow`; default 1 s; zero:
    /// every detection).
    pub event_aggregation_window: Duration,
    /// Events carry the moving region's box (LVA `outputMotionRegion`; default true).
    pub output_motion_region: bool,
    /// Key frames of the recorded stream (default) or a substream.
    pub sample: Sample,
    /// Polygons ignored by detection.
    pub mask: Vec<Polygon>,
    /// Named zones (each one or more polygons), in name order.
    pub zones: Vec<(String, Vec<Polygon>)>,
    /// The decoder element; `None`: the highest-ranked decoder for the codec.
    pub decoder: Option<String>,
    /// `R/<camera>/motion` turns `OFF` this long after the last motion (default 30 s).
    pub off_delay: Duration,
    /// Motion events feed the camera's signal gate (open or extend a clip; default true).
    pub trigger: bool,
}

fn polygons(key: &str, raw: Vec<Vec<[f64; 2]>>) -> Result<Vec<Polygon>, ConfigError> {
    if raw.len() > MAX_POLYGONS {
        return Err(rule(key, format!("at most {MAX_POLYGONS} polygons")));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, p)| {
            if p.len() < 3 || p.len() > MAX_POINTS {
                return Err(rule(
                    format!("{key}[{i}]"),
                    format!(
                        "a polygon has 3 to {MAX_POINTS} points [x, y], got {}",
                        p.len()
                    ),
                ));
            }
            p.into_iter()
                .map(|[x, y]| {
                    if (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y) {
                        Ok([x as f32, y as f32])
                    } else {
                        Err(rule(
                            format!("{key}[{i}]"),
                            format!(
                                "points are normalised to the picture (0.0 to 1.0), got [{x}, {y}]"
                            ),
                        ))
                    }
                })
                .collect()
        })
        .collect()
}

/// Validates `[camera.motion]` of camera `i` (also when not enabled, so that switching it on
/// later cannot fail); `None` when absent or not enabled.
pub(super) fn motion(
    i: usize,
    raw: Option<RawMotion>,
) -> Result<Option<MotionConfig>, ConfigError> {
    let k = |f: &str| format!("camera[{i}].motion.{f}");
    let Some(r) = raw else {
        return Ok(None);
    };
    let enabled = r.enabled;
    let sensitivity = match r.sensitivity.as_deref() {
        None => Sensitivity::Medium,
        Some(s) => Sensitivity::parse(s).ok_or_else(|| {
            rule(
                k("sensitivity"),
                format!("must be low, medium or high, got {s:?}"),
            )
        })?,
    };
    let window = match r.event_aggregation_window.as_deref() {
        None => Duration::from_secs(1),
        Some(v) => duration_key(&k("event_aggregation_window"), v)?,
    };
    if window > Duration::from_secs(3600) {
        return Err(rule(k("event_aggregation_window"), "must be PT0S to PT1H"));
    }
    let off_delay = match r.off_delay.as_deref() {
        None => Duration::from_secs(30),
        Some(v) => duration_key(&k("off_delay"), v)?,
    };
    if off_delay < Duration::from_secs(1) || off_delay > Duration::from_secs(3600) {
        return Err(rule(k("off_delay"), "must be PT1S to PT1H"));
    }
    let sample = match r.sample.as_deref().unwrap_or("keyframes") {
        "keyframes" => {
            let stray = if r.substream_url.is_some() {
                Some("substream_url")
            } else {
                r.substream_fps.map(|_| "substream_fps")
            };
            if let Some(key) = stray {
                return Err(rule(k(key), "applies only with sample = \"substream\""));
            }
            Sample::Keyframes
        }
        "substream" => {
            let url = r.substream_url.ok_or_else(|| {
                rule(
                    k("substream_url"),
                    "is required with sample = \"substream\"",
                )
            })?;
            super::check_rtsp_url(&k("substream_url"), &url)?;
            let fps = r.substream_fps.unwrap_or(5);
            if !(1..=30).contains(&fps) {
                return Err(rule(
                    k("substream_fps"),
                    format!("must be 1 to 30, got {fps}"),
                ));
            }
            Sample::Substream { url, fps }
        }
        other => {
            return Err(rule(
                k("sample"),
                format!("must be keyframes or substream, got {other:?}"),
            ))
        }
    };
    let mask = polygons(&k("mask"), r.mask.unwrap_or_default())?;
    let raw_zones = r.zones.unwrap_or_default();
    if raw_zones.len() > MAX_ZONES {
        return Err(rule(k("zones"), format!("at most {MAX_ZONES} zones")));
    }
    let mut zones = Vec::new();
    for (name, ps) in raw_zones {
        if !super::valid_camera_id(&name) {
            return Err(rule(
                k("zones"),
                format!("zone name {name:?} must be 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit"),
            ));
        }
        if ps.is_empty() {
            return Err(rule(
                k(&format!("zones.{name}")),
                "needs at least one polygon",
            ));
        }
        zones.push((name.clone(), polygons(&k(&format!("zones.{name}")), ps)?));
    }
    let decoder = match r.decoder {
        Some(d) if d.is_empty() => None,
        Some(d)
            if d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Some(d)
        }
        Some(d) => {
            return Err(rule(
                k("decoder"),
                format!("must be a GStreamer element name, got {d:?}"),
            ))
        }
        None => None,
    };
    Ok(enabled.then_some(MotionConfig {
        sensitivity,
        event_aggregation_window: window,
        output_motion_region: r.output_motion_region.unwrap_or(true),
        sample,
        mask,
        zones,
        decoder,
        off_delay,
        trigger: r.trigger.unwrap_or(true),
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn cam(motion: &str) -> String {
        format!(
            "[storage]\npath = \"/tmp/x\"\nmax_size_mib = 100\nmin_free_mib = 10\n[[camera]]\nid = \"c\"\nurl = \"rtsp://h/s\"\n[camera.motion]\n{motion}\n"
        )
    }

    fn err(motion: &str) -> (String, String) {
        match Config::parse(&cam(motion)).unwrap_err() {
            crate::config::ConfigError::Rule { key, rule } => (key, rule),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let c = Config::parse(&cam(r#"
enabled = true
sensitivity = "high"
event_aggregation_window = "PT2S"
output_motion_region = false
sample = "substream"
substream_url = "rtsp://cam/sub"
substream_fps = 5
mask = [[[0.0,0.0],[0.3,0.0],[0.3,0.2],[0.0,0.2]]]
zones = { driveway = [[[0.4,0.5],[1.0,0.5],[1.0,1.0],[0.4,1.0]]] }
decoder = ""
"#))
        .unwrap();
        let m = c.cameras[0].motion.as_ref().unwrap();
        assert_eq!(m.sensitivity, super::Sensitivity::High);
        assert_eq!(m.event_aggregation_window.as_secs(), 2);
        assert!(!m.output_motion_region && m.trigger && m.decoder.is_none());
        assert_eq!(m.off_delay.as_secs(), 30);
        assert_eq!(m.mask.len(), 1);
        assert_eq!(m.zones[0].0, "driveway");
        assert_eq!(
            m.sample,
            super::Sample::Substream {
                url: "rtsp://cam/sub".into(),
                fps: 5
            }
        );
        // Absent or disabled: no motion detection.
        assert!(Config::parse(&cam("enabled = false")).unwrap().cameras[0]
            .motion
            .is_none());
        let d = Config::parse(&cam("enabled = true")).unwrap();
        let d = d.cameras[0].motion.as_ref().unwrap();
        assert_eq!(d.sample, super::Sample::Keyframes);
        assert_eq!(d.event_aggregation_window.as_secs(), 1);
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/motion.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("toml block in docs/motion.md");
        let text =
            format!("[storage]\npath = \"/tmp/x\"\nmax_size_mib = 100\nmin_free_mib = 10\n{block}");
        let c = Config::parse(&text).unwrap_or_else(|e| panic!("docs/motion.md: {e}"));
        let m = c.cameras[0]
            .motion
            .as_ref()
            .expect("enabled in the example");
        assert_eq!(m.zones[0].0, "driveway");
        assert_eq!(m.sample, super::Sample::Keyframes);
    }

    #[test]
    fn every_rule_names_its_key() {
        for (body, key, words) in [
            (
                "sensitivity = \"max\"",
                "sensitivity",
                "low, medium or high",
            ),
            (
                "event_aggregation_window = \"P1D\"",
                "event_aggregation_window",
                "PT1H",
            ),
            (
                "event_aggregation_window = \"soon\"",
                "event_aggregation_window",
                "",
            ),
            ("off_delay = \"PT0S\"", "off_delay", "PT1S"),
            ("sample = \"all\"", "sample", "keyframes or substream"),
            ("sample = \"substream\"", "substream_url", "required"),
            (
                "substream_url = \"rtsp://x/y\"",
                "substream_url",
                "only with",
            ),
            (
                "sample = \"substream\"\nsubstream_url = \"http://x\"",
                "substream_url",
                "rtsp://",
            ),
            (
                "sample = \"substream\"\nsubstream_url = \"rtsp://x\"\nsubstream_fps = 0",
                "substream_fps",
                "1 to 30",
            ),
            ("mask = [[[0.0,0.0],[1.0,0.0]]]", "mask[0]", "3 to 64"),
            (
                "mask = [[[0.0,0.0],[1.5,0.0],[1.0,1.0]]]",
                "mask[0]",
                "0.0 to 1.0",
            ),
            (
                "zones = { \"Bad Name\" = [[[0.0,0.0],[1.0,0.0],[1.0,1.0]]] }",
                "zones",
                "zone name",
            ),
            ("zones = { a = [] }", "zones.a", "at least one"),
            (
                "zones = { a = [[[0.0,0.0],[1.0,0.0],[2.0,1.0]]] }",
                "zones.a[0]",
                "0.0 to 1.0",
            ),
            ("decoder = \"avdec h264 !\"", "decoder", "element name"),
        ] {
            let (k, rule) = err(&format!("enabled = true\n{body}"));
            assert_eq!(k, format!("camera[0].motion.{key}"), "{body}");
            assert!(rule.contains(words), "{body}: {rule}");
        }
    }
}
