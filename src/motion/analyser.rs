//! One camera's analysis: the detector, the aggregation window (LVA `eventAggregationWindow`),
//! counters, and where a reported event goes (the storage writer's signal gate, and
//! [`MotionStatus::log`] for MQTT). Runs on the analysis branch's thread; never blocks on the
//! writer. Frame decoding belongs to [`super::branch`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::detector::{Detector, DetectorConfig, Luma, Outcome};
use super::{MotionNotice, MotionStatus};
use crate::config::motion::MotionConfig;
use crate::index::EventRow;
use crate::store::writer::{WriterHandle, WriterMsg};

/// The label of the events motion stores and feeds to the signal gate.
pub const MOTION_LABEL: &str = "motion";

/// Whether an event at `t_ns` is reported, given the last reported one (aggregation window
/// `window_ns`; 0: every detection). Media time going backwards (a new run) reports at once.
pub fn due(last: Option<i64>, t_ns: i64, window_ns: i64) -> bool {
    match last {
        None => true,
        Some(l) => t_ns < l || t_ns - l >= window_ns,
    }
}

/// Where reported events go.
pub trait EventSink: Send {
    /// Stores the event and feeds it to the camera's signal gate; must not block.
    fn submit(&mut self, ev: EventRow);
}

impl EventSink for WriterHandle {
    fn submit(&mut self, ev: EventRow) {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        if !self.try_send(WriterMsg::AddEvent {
            event: ev,
            reply: tx,
        }) {
            tracing::warn!("motion: storage writer busy, event not stored");
        }
    }
}

/// A camera's detector with its reporting rules.
pub struct Analyser {
    camera: Arc<str>,
    cfg: MotionConfig,
    detector: Detector,
    last_reported: Option<i64>,
    status: Arc<MotionStatus>,
    sink: Box<dyn EventSink>,
}

impl Analyser {
    /// An analyser for `camera`; reported events go to `sink` when `cfg.trigger` is set.
    pub fn new(
        camera: Arc<str>,
        cfg: MotionConfig,
        status: Arc<MotionStatus>,
        sink: Box<dyn EventSink>,
    ) -> Analyser {
        let detector = Detector::new(DetectorConfig {
            sensitivity: Some(cfg.sensitivity),
            mask: cfg.mask.clone(),
            zones: cfg.zones.clone(),
        });
        Analyser {
            camera,
            cfg,
            detector,
            last_reported: None,
            status,
            sink,
        }
    }

    /// The stream (re)started: the detector warms up again ([`Detector::restart`]).
    pub fn restart(&mut self) {
        self.detector.restart();
    }

    /// The camera's counters.
    pub fn status(&self) -> &Arc<MotionStatus> {
        &self.status
    }

    /// Analyses one frame taken at `utc_ns` (media time, UTC ns); returns what the detector
    /// saw. Reports an event when motion is due under the aggregation window.
    pub fn frame(&mut self, luma: &Luma, utc_ns: i64) -> Outcome {
        let out = self.detector.analyse(luma, utc_ns);
        self.status.frames_analysed.fetch_add(1, Ordering::Relaxed);
        if let Outcome::Motion(regions) = &out {
            self.status
                .last_motion_utc_ns
                .store(utc_ns, Ordering::Relaxed);
            let window = self.cfg.event_aggregation_window.as_nanos() as i64;
            if due(self.last_reported, utc_ns, window) {
                self.last_reported = Some(utc_ns);
                self.report(utc_ns, regions);
            }
        }
        out
    }

    fn report(&mut self, utc_ns: i64, regions: &[super::detector::Region]) {
        self.status.events.fetch_add(1, Ordering::Relaxed);
        let with_box = self.cfg.output_motion_region;
        self.status.log.push_with(|seq| MotionNotice {
            seq,
            time_utc_ns: utc_ns,
            regions: regions.to_vec(),
            with_box,
        });
        if self.cfg.trigger {
            let mut zones: Vec<String> = Vec::new();
            for z in regions.iter().flat_map(|r| &r.zones) {
                if !zones.contains(z) {
                    zones.push(z.clone());
                }
            }
            self.sink.submit(EventRow {
                camera: self.camera.to_string(),
                id: format!("motion-{}", crate::store::layout::segment_stem(utc_ns)),
                label: MOTION_LABEL.into(),
                time_utc_ns: utc_ns,
                duration_ns: None,
                received_utc_ns: crate::clock::now_utc_ns(),
                objects: zones,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_aggregation_window_reports_at_most_once_per_window() {
        let s = 1_000_000_000;
        assert!(due(None, 5 * s, s));
        assert!(!due(Some(5 * s), 5 * s + s / 2, s));
        assert!(due(Some(5 * s), 6 * s, s));
        assert!(due(Some(5 * s), 5 * s, 0), "PT0S: every detection");
        assert!(due(Some(5 * s), 2 * s, s), "time went back: a new run");
    }

    struct Collect(Arc<Mutex<Vec<EventRow>>>);
    impl EventSink for Collect {
        fn submit(&mut self, ev: EventRow) {
            self.0.lock().unwrap().push(ev);
        }
    }

    #[test]
    fn motion_events_go_to_the_gate_and_the_log_once_per_window() {
        let cfg = crate::config::Config::parse(
            "[storage]\npath = \"/tmp/x\"\nmax_size_mib = 100\nmin_free_mib = 10\n[[camera]]\nid = \"c\"\nurl = \"rtsp://h/s\"\n\
             [camera.motion]\nenabled = true\nevent_aggregation_window = \"PT2S\"\n\
             zones = { door = [[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,1.0]]] }\n",
        )
        .unwrap()
        .cameras[0]
            .motion
            .clone()
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(MotionStatus::default());
        let mut a = Analyser::new(
            "c".into(),
            cfg,
            status.clone(),
            Box::new(Collect(got.clone())),
        );
        let (w, h) = (64, 48);
        let plain = vec![50u8; w * h];
        let luma = |d: &[u8]| -> Vec<u8> { d.to_vec() };
        let mut moving = luma(&plain);
        let s = 1_000_000_000i64;
        a.frame(
            &Luma {
                width: w,
                height: h,
                stride: w,
                data: &plain,
            },
            0,
        );
        // Warm-up frames at 0 to 2 s, then motion in every frame for 5 s, one frame per second:
        // reported at 3 s, 5 s and 7 s.
        for t in 1..=2 {
            let o = a.frame(
                &Luma {
                    width: w,
                    height: h,
                    stride: w,
                    data: &plain,
                },
                t * s,
            );
            assert_eq!(o, Outcome::Calibrating);
        }
        for t in 3..=7 {
            for y in 10..20 {
                for x in 0..w {
                    moving[y * w + x] = if (x / 8 + t as usize).is_multiple_of(2) {
                        250
                    } else {
                        0
                    };
                }
            }
            let o = a.frame(
                &Luma {
                    width: w,
                    height: h,
                    stride: w,
                    data: &moving,
                },
                t * s,
            );
            assert!(matches!(o, Outcome::Motion(_)), "{t}: {o:?}");
        }
        let got = got.lock().unwrap();
        let times: Vec<i64> = got.iter().map(|e| e.time_utc_ns / s).collect();
        assert_eq!(times, [3, 5, 7]);
        assert!(got
            .iter()
            .all(|e| e.label == "motion" && e.objects == ["door"]));
        assert_eq!(status.events.load(Ordering::Relaxed), 3);
        assert_eq!(status.frames_analysed.load(Ordering::Relaxed), 8);
        assert_eq!(status.log.since(0).0.len(), 3);
        assert_eq!(status.last_motion_utc_ns.load(Ordering::Relaxed), 7 * s);
    }
}
