//! Motion over MQTT: LVA-shaped inference events on `R/events` (at most one per aggregation
//! window) and the retained `R/<camera>/motion` `ON`/`OFF` with its off delay. Reads
//! [`crate::motion::MotionStatus`]; publishing and the broker connection belong to the parent.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::CameraHandle;
use crate::motion::MotionNotice;
use crate::playback::time::format_full;

/// The `body` of an `Inference` event (LVA `Analytics.Inference` of its motion detection
/// processor): `{"camera", "timestamp" (media time, UTC), "inferences": [{"type": "motion",
/// "motion": {"box": {"l", "t", "w", "h"}} (normalised 0..1, with `output_motion_region`),
/// "zones": [..]}]}`, one inference per moving region, largest first.
pub fn inference_body(camera: &str, n: &MotionNotice) -> Value {
    let inferences: Vec<Value> = n
        .regions
        .iter()
        .map(|r| {
            let mut i = json!({"type": "motion", "zones": r.zones});
            if n.with_box {
                let b = r.bbox;
                let round = |v: f32| (v as f64 * 1e4).round() / 1e4;
                i["motion"] = json!({"box": {
                    "l": round(b.l), "t": round(b.t), "w": round(b.w), "h": round(b.h)
                }});
            }
            i
        })
        .collect();
    json!({
        "camera": camera,
        "timestamp": format_full(n.time_utc_ns),
        "inferences": inferences,
    })
}

/// Whether `R/<camera>/motion` is `ON`: motion was seen less than `off_delay_ns` before
/// `now_utc_ns` (`last_motion_utc_ns` 0: never).
pub fn motion_on(last_motion_utc_ns: i64, now_utc_ns: i64, off_delay_ns: i64) -> bool {
    last_motion_utc_ns != 0 && now_utc_ns - last_motion_utc_ns < off_delay_ns
}

/// What has been reported per camera.
#[derive(Default)]
pub struct MotionTracker {
    seen: HashMap<String, u64>,
    on: HashMap<String, bool>,
}

/// What to publish after a poll.
#[derive(Default)]
pub struct MotionNews {
    /// `(subject, body)` of new `Inference` events.
    pub events: Vec<(String, Value)>,
    /// `(camera, on)` whose retained state changed (or was never published).
    pub states: Vec<(String, bool)>,
    /// Events that fell out of a camera's log before they were read.
    pub lost: u64,
}

impl MotionTracker {
    /// Forgets the published states, so that every one is published again (a new connection).
    pub fn republish(&mut self) {
        self.on.clear();
    }

    /// New events and state changes of every camera with motion detection, at `now_utc_ns`.
    pub fn poll(&mut self, cameras: &[CameraHandle], now_utc_ns: i64) -> MotionNews {
        let mut news = MotionNews::default();
        for c in cameras {
            let Some(off_delay) = c.motion_off_delay else {
                continue;
            };
            let m = &c.status.motion;
            let seen = self.seen.entry(c.id.clone()).or_default();
            let (notices, lost) = m.log.since(*seen);
            news.lost += lost;
            for n in notices {
                *seen = n.seq;
                news.events.push((
                    format!("/cameras/{}/motion", c.id),
                    inference_body(&c.id, &n),
                ));
            }
            let on = motion_on(
                m.last_motion_utc_ns.load(Ordering::Relaxed),
                now_utc_ns,
                off_delay.as_nanos() as i64,
            );
            if self.on.get(&c.id) != Some(&on) {
                self.on.insert(c.id.clone(), on);
                news.states.push((c.id.clone(), on));
            }
        }
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::detector::{NormBox, Region};

    #[test]
    fn an_inference_is_lva_shaped() {
        let n = MotionNotice {
            seq: 1,
            time_utc_ns: 1_700_000_000_000_000_000,
            regions: vec![Region {
                bbox: NormBox {
                    l: 0.25,
                    t: 0.5,
                    w: 0.125,
                    h: 0.2,
                },
                area: 0.01,
                zones: vec!["door".into()],
            }],
            with_box: true,
        };
        assert_eq!(
            inference_body("cam", &n),
            json!({"camera": "cam", "timestamp": "2023-11-14T22:13:20.000Z", "inferences": [
                {"type": "motion", "motion": {"box": {"l": 0.25, "t": 0.5, "w": 0.125, "h": 0.2}},
                 "zones": ["door"]}]})
        );
        let without = MotionNotice {
            with_box: false,
            ..n
        };
        assert_eq!(
            inference_body("cam", &without)["inferences"][0],
            json!({"type": "motion", "zones": ["door"]})
        );
    }

    #[test]
    fn motion_turns_off_after_the_delay() {
        let s = 1_000_000_000;
        assert!(!motion_on(0, 100 * s, 30 * s));
        assert!(motion_on(90 * s, 100 * s, 30 * s));
        assert!(!motion_on(70 * s, 100 * s, 30 * s));
    }
}
