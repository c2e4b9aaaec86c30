//! `[[camera]]` keys of event-based recording: `mode` and `[camera.signal_gate]` (LVA signal gate
//! processor properties in snake_case, ISO 8601 durations; seed `001_*`). Parsing and rules only;
//! the gate itself is [`crate::evr::gate`].

use std::time::Duration;

use serde::Deserialize;

use super::{duration_key, rule, ConfigError};
use crate::evr::gate::{GateConfig, LateEvents};

/// Recording mode of a camera (seed `001_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Continuous video recording: everything is kept under the retention policy.
    Cvr,
    /// Event-based video recording: only clips around events are kept.
    Evr,
}

/// `[camera.signal_gate]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSignalGate {
    activation_evaluation_window: Option<String>,
    activation_signal_offset: Option<String>,
    minimum_activation_time: Option<String>,
    maximum_activation_time: Option<String>,
    late_events: Option<String>,
    clip_retention: Option<String>,
}

/// The validated gate settings of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalGateConfig {
    /// The gate's timing.
    pub gate: GateConfig,
    /// Keep clip media this long (at least the camera's `retention`); `None`: like other media.
    pub clip_retention: Option<Duration>,
}

/// Parses `mode`.
pub(super) fn mode(key: &str, v: &str) -> Result<Mode, ConfigError> {
    match v {
        "cvr" => Ok(Mode::Cvr),
        "evr" => Ok(Mode::Evr),
        other => Err(rule(key, format!("must be cvr or evr, got {other:?}"))),
    }
}

/// A signed ISO 8601 duration (`-PT30S`), in ns.
fn signed_ns(key: &str, v: &str) -> Result<i64, ConfigError> {
    let (neg, rest) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let d = duration_key(key, rest)?.as_nanos() as i64;
    Ok(if neg { -d } else { d })
}

fn within(key: &str, ns: i64, lo_s: i64, hi_s: i64, text: &str) -> Result<(), ConfigError> {
    if ns < lo_s * 1_000_000_000 || ns > hi_s * 1_000_000_000 {
        return Err(rule(key, text.to_string()));
    }
    Ok(())
}

/// Validates `[camera.signal_gate]` of camera `i` (absent keys take the seed's example: 30 s
/// before the event, 2 minutes in all). `retention` is the camera's.
pub(super) fn signal_gate(
    i: usize,
    raw: Option<RawSignalGate>,
    retention: Option<Duration>,
) -> Result<SignalGateConfig, ConfigError> {
    let k = |f: &str| format!("camera[{i}].signal_gate.{f}");
    let r = raw.unwrap_or_default();
    let d = GateConfig::SEED_DEFAULT;
    let get = |f: &str, v: &Option<String>, default: i64| -> Result<i64, ConfigError> {
        v.as_deref().map_or(Ok(default), |v| signed_ns(&k(f), v))
    };
    let window = get(
        "activation_evaluation_window",
        &r.activation_evaluation_window,
        d.evaluation_window_ns,
    )?;
    within(
        &k("activation_evaluation_window"),
        window,
        0,
        10,
        "must be PT0S to PT10S",
    )?;
    let offset = get(
        "activation_signal_offset",
        &r.activation_signal_offset,
        d.offset_ns,
    )?;
    within(
        &k("activation_signal_offset"),
        offset,
        -60,
        60,
        "must be -PT1M to PT1M",
    )?;
    let minimum = get(
        "minimum_activation_time",
        &r.minimum_activation_time,
        d.minimum_ns,
    )?;
    within(
        &k("minimum_activation_time"),
        minimum,
        1,
        3600,
        "must be PT1S to PT1H",
    )?;
    let maximum = get(
        "maximum_activation_time",
        &r.maximum_activation_time,
        d.maximum_ns,
    )?;
    within(
        &k("maximum_activation_time"),
        maximum,
        1,
        3600,
        "must be PT1S to PT1H",
    )?;
    if maximum < minimum {
        return Err(rule(
            k("maximum_activation_time"),
            "must be at least minimum_activation_time",
        ));
    }
    if offset > 0 && minimum <= offset {
        return Err(rule(
            k("minimum_activation_time"),
            "must be greater than a positive activation_signal_offset \
             (the clip would end before it starts)",
        ));
    }
    let late_events = match r.late_events.as_deref() {
        None | Some("drop") => LateEvents::Drop,
        Some("clip") => LateEvents::Clip,
        Some(other) => {
            return Err(rule(
                k("late_events"),
                format!("must be drop or clip, got {other:?}"),
            ))
        }
    };
    let clip_retention = match &r.clip_retention {
        None => None,
        Some(v) => {
            let d = duration_key(&k("clip_retention"), v)?;
            if d < Duration::from_secs(60) {
                return Err(rule(k("clip_retention"), "must be at least PT1M"));
            }
            if retention.is_some_and(|r| d < r) {
                return Err(rule(
                    k("clip_retention"),
                    format!("must be at least the camera's retention (camera[{i}].retention)"),
                ));
            }
            Some(d)
        }
    };
    Ok(SignalGateConfig {
        gate: GateConfig {
            evaluation_window_ns: window,
            offset_ns: offset,
            minimum_ns: minimum,
            maximum_ns: maximum,
            late_events,
        },
        clip_retention,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn cam(extra: &str) -> String {
        format!(
            "[storage]\npath = \"/tmp/x\"\nmax_size_mib = 64\n[[camera]]\nid = \"gate\"\n\
             url = \"rtsp://h/s\"\n{extra}"
        )
    }

    fn err(extra: &str) -> (String, String) {
        match Config::parse(&cam(extra)) {
            Err(ConfigError::Rule { key, rule }) => (key, rule),
            other => panic!("{extra}: expected a rule error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_seed_example_and_cvr() {
        let c = Config::parse(&cam("")).unwrap();
        assert_eq!(c.cameras[0].mode, Mode::Cvr);
        assert_eq!(c.cameras[0].signal_gate.gate, GateConfig::SEED_DEFAULT);
        assert_eq!(c.cameras[0].signal_gate.clip_retention, None);
    }

    #[test]
    fn the_issue_example_parses() {
        let c = Config::parse(&cam(
            "mode = \"evr\"\nretention = \"P2D\"\n[camera.signal_gate]\n\
             activation_evaluation_window = \"PT1S\"\nactivation_signal_offset = \"-PT30S\"\n\
             minimum_activation_time = \"PT1M30S\"\nmaximum_activation_time = \"PT1M30S\"\n\
             clip_retention = \"P30D\"\nlate_events = \"clip\"\n",
        ))
        .unwrap();
        let g = &c.cameras[0].signal_gate;
        assert_eq!(c.cameras[0].mode, Mode::Evr);
        assert_eq!(g.gate.offset_ns, -30_000_000_000);
        assert_eq!(g.gate.minimum_ns, 90_000_000_000);
        assert_eq!(g.gate.late_events, LateEvents::Clip);
        assert_eq!(g.clip_retention, Some(Duration::from_secs(30 * 86400)));
    }

    #[test]
    fn every_rule_names_its_key() {
        let sg = "[camera.signal_gate]\n";
        let cases = [
            ("mode = \"both\"\n".to_string(), "camera[0].mode"),
            (
                format!("{sg}activation_evaluation_window = \"PT11S\"\n"),
                "camera[0].signal_gate.activation_evaluation_window",
            ),
            (
                format!("{sg}activation_evaluation_window = \"-PT1S\"\n"),
                "camera[0].signal_gate.activation_evaluation_window",
            ),
            (
                format!("{sg}activation_signal_offset = \"-PT61S\"\n"),
                "camera[0].signal_gate.activation_signal_offset",
            ),
            (
                format!("{sg}activation_signal_offset = \"PT2M\"\n"),
                "camera[0].signal_gate.activation_signal_offset",
            ),
            (
                format!("{sg}activation_signal_offset = \"soon\"\n"),
                "camera[0].signal_gate.activation_signal_offset",
            ),
            (
                format!("{sg}minimum_activation_time = \"PT0S\"\nmaximum_activation_time = \"PT5S\"\n"),
                "camera[0].signal_gate.minimum_activation_time",
            ),
            (
                format!("{sg}maximum_activation_time = \"PT2H\"\n"),
                "camera[0].signal_gate.maximum_activation_time",
            ),
            (
                format!("{sg}minimum_activation_time = \"PT20S\"\nmaximum_activation_time = \"PT10S\"\n"),
                "camera[0].signal_gate.maximum_activation_time",
            ),
            (
                format!("{sg}activation_signal_offset = \"PT10S\"\nminimum_activation_time = \"PT10S\"\nmaximum_activation_time = \"PT10S\"\n"),
                "camera[0].signal_gate.minimum_activation_time",
            ),
            (
                format!("{sg}late_events = \"keep\"\n"),
                "camera[0].signal_gate.late_events",
            ),
            (
                format!("{sg}clip_retention = \"PT30S\"\n"),
                "camera[0].signal_gate.clip_retention",
            ),
            (
                format!("retention = \"P7D\"\n{sg}clip_retention = \"P2D\"\n"),
                "camera[0].signal_gate.clip_retention",
            ),
        ];
        for (extra, key) in cases {
            let (k, r) = err(&extra);
            assert_eq!(k, key, "{extra} -> {r}");
            assert!(!r.is_empty());
        }
        // Unknown keys are syntax errors that name the key.
        match Config::parse(&cam("[camera.signal_gate]\npre_roll = \"PT5S\"\n")) {
            Err(ConfigError::Syntax(m)) => assert!(m.contains("pre_roll"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_positive_offset_under_the_minimum_is_fine() {
        let c = Config::parse(&cam(
            "[camera.signal_gate]\nactivation_signal_offset = \"PT5S\"\nminimum_activation_time = \"PT10S\"\n",
        ))
        .unwrap();
        assert_eq!(c.cameras[0].signal_gate.gate.offset_ns, 5_000_000_000);
    }
}
