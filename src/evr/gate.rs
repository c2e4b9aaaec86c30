//! The signal gate of one camera (LVA `signalGateProcessor`, seed `001_*`): which events open a
//! clip, which extend it, when it closes. Pure: times in, decisions out; no files, no SQLite, no
//! clock calls.
//!
//! All times are UTC ns since 1970. An event E has its own time `t` (when it happened, as the
//! sender says), an optional duration `d` (a trigger held for `d`, e.g. a door held open) and its
//! arrival time `a` (the wall clock when edgerec received it). With the configuration
//! `offset` (`activation_signal_offset`), `min` (`minimum_activation_time`), `max`
//! (`maximum_activation_time`) and `window` (`activation_evaluation_window`):
//!
//! - With no open clip, E opens one: requested start `t + offset`, end `t + d + min`, never past
//!   `t + max`.
//! - While a clip C (first event `t1`, end `C.end`) is open, an event with `t1 <= t <= C.end`
//!   moves the end to `max(C.end, t + d + min)`, never past `t1 + max`. An event with
//!   `t > C.end` comes after C is over by media time: C closes, E opens a new clip.
//! - An event with `t < t1` that arrives at most `window` after C's first event arrived moves
//!   C's requested start to `min(C.start, t + offset)`; one that arrives later is late.
//! - An event that opens a clip but arrives more than `window` after its own time is late: its
//!   pre-roll may already be gone from the pre-roll ring.
//! - Late events are dropped (counted) as LVA does, unless `late_events = "clip"`: then a late
//!   event that would open a clip opens it anyway (its pre-roll is what the card still holds),
//!   and one older than the open clip gets a closed clip of its own `[t + offset, t + d + min]`.
//! - C closes once the wall clock passes `C.end + window` (events may still arrive for it until
//!   then), with reason `maximum` if an event asked for an end past `t1 + max`, else `minimum`.
//! - A trigger held past `t1 + max` opens the next clip where C ended, for what is left of it.
//!
//! Overlapping clips share media; nothing here copies or stores it.

/// Gate settings, validated by the configuration ([`crate::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// `activation_evaluation_window`, ns (0..=10 s).
    pub evaluation_window_ns: i64,
    /// `activation_signal_offset`, ns (-60 s..=60 s; negative = pre-roll).
    pub offset_ns: i64,
    /// `minimum_activation_time`, ns (1 s..=1 h).
    pub minimum_ns: i64,
    /// `maximum_activation_time`, ns (minimum..=1 h).
    pub maximum_ns: i64,
    /// What to do with late events.
    pub late_events: LateEvents,
}

impl GateConfig {
    /// The seed's example (`001_*`): 30 s before the event, 2 minutes in all (offset -30 s,
    /// minimum = maximum = 90 s), a 1 s evaluation window, late events dropped.
    pub const SEED_DEFAULT: GateConfig = GateConfig {
        evaluation_window_ns: 1_000_000_000,
        offset_ns: -30_000_000_000,
        minimum_ns: 90_000_000_000,
        maximum_ns: 90_000_000_000,
        late_events: LateEvents::Drop,
    };

    /// How long transient media must stay on the card so that any event that is not late finds
    /// its whole pre-roll: `-offset + window` (0 for a positive offset), ns. The reclaimer adds
    /// one segment length, since it deletes whole segments.
    pub fn preroll_horizon_ns(&self) -> i64 {
        (-self.offset_ns).max(0) + self.evaluation_window_ns
    }
}

/// What happens to late events (`late_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateEvents {
    /// Drop them (LVA's behaviour), counted and logged.
    Drop,
    /// Make a clip of them while their media is still on the card.
    Clip,
}

/// An event as the gate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateEvent {
    /// When it happened, UTC ns.
    pub time_ns: i64,
    /// How long the trigger was held, ns (0: an instant).
    pub duration_ns: i64,
    /// When edgerec received it, UTC ns.
    pub arrival_ns: i64,
}

/// A clip's window as the gate keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipWindow {
    /// Time of the event that opened it, UTC ns.
    pub first_event_ns: i64,
    /// When that event arrived, UTC ns.
    pub first_arrival_ns: i64,
    /// Requested start: first event + offset (or earlier, moved by an out-of-order event), UTC ns.
    pub requested_start_ns: i64,
    /// Requested end, UTC ns.
    pub end_ns: i64,
    /// The end may not pass this: first event + maximum, UTC ns.
    pub max_end_ns: i64,
    /// A held trigger lasts until here (UTC ns); past `max_end_ns` it opens the next clip.
    pub held_until_ns: i64,
    /// The end the events asked for before the cap (UTC ns); past `max_end_ns` means the
    /// maximum closed the clip.
    pub wanted_end_ns: i64,
}

/// Why a clip closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No event extended it past the last event + minimum.
    Minimum,
    /// It reached first event + maximum.
    Maximum,
    /// edgerec stopped and its end passed before edgerec came back.
    Shutdown,
    /// The camera was not delivering media when it ended.
    CameraLost,
}

impl CloseReason {
    /// The name stored in the index and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Minimum => "minimum",
            CloseReason::Maximum => "maximum",
            CloseReason::Shutdown => "shutdown",
            CloseReason::CameraLost => "camera_lost",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<CloseReason> {
        [
            CloseReason::Minimum,
            CloseReason::Maximum,
            CloseReason::Shutdown,
            CloseReason::CameraLost,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What the gate did with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A clip opened.
    Opened(ClipWindow),
    /// The open clip's end or requested start moved.
    Updated(ClipWindow),
    /// The event lies inside the open clip and changed nothing.
    Joined,
    /// The open clip closed.
    Closed(ClipWindow, CloseReason),
    /// A closed clip of its own for a late event (`late_events = "clip"`).
    Retro(ClipWindow),
    /// The event was late and dropped.
    Dropped,
}

/// The gate of one camera.
#[derive(Debug, Clone)]
pub struct Gate {
    cfg: GateConfig,
    open: Option<ClipWindow>,
}

impl Gate {
    /// A gate with no open clip.
    pub fn new(cfg: GateConfig) -> Gate {
        Gate { cfg, open: None }
    }

    /// A gate that continues `open` (a clip that was open when edgerec stopped).
    pub fn resume(cfg: GateConfig, open: Option<ClipWindow>) -> Gate {
        Gate { cfg, open }
    }

    /// The settings.
    pub fn config(&self) -> &GateConfig {
        &self.cfg
    }

    /// The open clip, if any.
    pub fn open_clip(&self) -> Option<&ClipWindow> {
        self.open.as_ref()
    }

    fn window_for(&self, time_ns: i64, duration_ns: i64, arrival_ns: i64) -> ClipWindow {
        let max_end = time_ns + self.cfg.maximum_ns;
        let wanted = time_ns + duration_ns.max(0) + self.cfg.minimum_ns;
        ClipWindow {
            first_event_ns: time_ns,
            first_arrival_ns: arrival_ns,
            requested_start_ns: time_ns + self.cfg.offset_ns,
            end_ns: wanted.min(max_end),
            max_end_ns: max_end,
            held_until_ns: time_ns + duration_ns.max(0),
            wanted_end_ns: wanted,
        }
    }

    fn close_reason(c: &ClipWindow) -> CloseReason {
        if c.wanted_end_ns > c.max_end_ns {
            CloseReason::Maximum
        } else {
            CloseReason::Minimum
        }
    }

    /// Handles an event; returns what changed, in order (a close comes before the open that
    /// follows it).
    pub fn on_event(&mut self, e: GateEvent) -> Vec<Change> {
        let d = e.duration_ns.max(0);
        let late_for_open = e.arrival_ns - e.time_ns > self.cfg.evaluation_window_ns;
        let mut out = Vec::new();
        if let Some(c) = &mut self.open {
            if e.time_ns < c.first_event_ns {
                if e.arrival_ns - c.first_arrival_ns <= self.cfg.evaluation_window_ns {
                    let start = e.time_ns + self.cfg.offset_ns;
                    if start < c.requested_start_ns {
                        c.requested_start_ns = start;
                        out.push(Change::Updated(*c));
                    } else {
                        out.push(Change::Joined);
                    }
                } else if self.cfg.late_events == LateEvents::Clip {
                    let w = self.window_for(e.time_ns, d, e.arrival_ns);
                    out.push(Change::Retro(w));
                } else {
                    out.push(Change::Dropped);
                }
                return out;
            }
            if e.time_ns <= c.end_ns {
                let wanted = e.time_ns + d + self.cfg.minimum_ns;
                let end = wanted.min(c.max_end_ns);
                c.held_until_ns = c.held_until_ns.max(e.time_ns + d);
                c.wanted_end_ns = c.wanted_end_ns.max(wanted);
                if end > c.end_ns {
                    c.end_ns = end;
                    out.push(Change::Updated(*c));
                } else if e.time_ns + d > c.max_end_ns {
                    out.push(Change::Updated(*c));
                } else {
                    out.push(Change::Joined);
                }
                return out;
            }
            // After the open clip's end by media time: it is over.
            let closed = *c;
            self.open = None;
            out.push(Change::Closed(closed, Self::close_reason(&closed)));
        }
        if late_for_open && self.cfg.late_events == LateEvents::Drop {
            out.push(Change::Dropped);
            return out;
        }
        let w = self.window_for(e.time_ns, d, e.arrival_ns);
        self.open = Some(w);
        out.push(Change::Opened(w));
        out
    }

    /// Closes the open clip once the wall clock `now_ns` has passed its end plus the evaluation
    /// window; a trigger held past its maximum opens the next clip where it ended.
    pub fn on_tick(&mut self, now_ns: i64) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(c) = self.open {
            if now_ns < c.end_ns + self.cfg.evaluation_window_ns {
                break;
            }
            self.open = None;
            out.push(Change::Closed(c, Self::close_reason(&c)));
            if c.held_until_ns > c.end_ns {
                let w = self.window_for(c.end_ns, c.held_until_ns - c.end_ns, now_ns);
                self.open = Some(w);
                out.push(Change::Opened(w));
            }
        }
        out
    }

    /// Closes the open clip now with `reason` (e.g. [`CloseReason::Shutdown`]).
    pub fn close(&mut self, reason: CloseReason) -> Option<Change> {
        self.open.take().map(|c| Change::Closed(c, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const T: i64 = 1_700_000_000 * S;

    fn cfg(offset_s: i64, min_s: i64, max_s: i64) -> GateConfig {
        GateConfig {
            evaluation_window_ns: S,
            offset_ns: offset_s * S,
            minimum_ns: min_s * S,
            maximum_ns: max_s * S,
            late_events: LateEvents::Drop,
        }
    }

    fn ev(t_s: i64) -> GateEvent {
        GateEvent {
            time_ns: T + t_s * S,
            duration_ns: 0,
            arrival_ns: T + t_s * S,
        }
    }

    /// Runs events (each arriving at its own time) and ticks every 100 ms until everything is
    /// closed; returns the closed clips as (start, end) seconds from T and their reasons.
    fn clips(g: &mut Gate, events: &[GateEvent]) -> Vec<(f64, f64, CloseReason)> {
        let mut out = Vec::new();
        let mut push = |v: Vec<Change>| {
            for c in v {
                let closed = match c {
                    Change::Closed(w, r) => Some((w, r)),
                    Change::Retro(w) => Some((w, CloseReason::Minimum)),
                    _ => None,
                };
                if let Some((w, r)) = closed {
                    out.push((
                        (w.requested_start_ns - T) as f64 / S as f64,
                        (w.end_ns - T) as f64 / S as f64,
                        r,
                    ));
                }
            }
        };
        let mut i = 0;
        let mut now = events.first().map_or(T, |e| e.arrival_ns);
        while i < events.len() || g.open_clip().is_some() {
            while i < events.len() && events[i].arrival_ns <= now {
                push(g.on_event(events[i]));
                i += 1;
            }
            push(g.on_tick(now));
            now += S / 10;
            assert!(now < T + 3600 * S, "runaway");
        }
        out
    }

    fn len(c: &(f64, f64, CloseReason)) -> f64 {
        c.1 - c.0
    }

    // LVA configure-signal-gate-how-to: offset -5 s, minimum 20 s, maximum 40 s.
    #[test]
    fn lva_one_event_gives_25_s() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        let c = clips(&mut g, &[ev(0)]);
        assert_eq!(c, [(-5.0, 20.0, CloseReason::Minimum)]);
        assert_eq!(len(&c[0]), 25.0);
    }

    #[test]
    fn lva_a_retrigger_gives_25_s_plus_the_gap() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        let c = clips(&mut g, &[ev(0), ev(10)]);
        assert_eq!(c, [(-5.0, 30.0, CloseReason::Minimum)]);
        assert_eq!(len(&c[0]), 25.0 + 10.0);
    }

    #[test]
    fn lva_a_burst_is_capped_at_45_s() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        let events: Vec<_> = (0..8).map(|k| ev(k * 5)).collect();
        let c = clips(&mut g, &events);
        assert_eq!(c[0], (-5.0, 40.0, CloseReason::Maximum));
        assert_eq!(len(&c[0]), 45.0);
        // The burst's last event (35 s) came while the clip was open: it opened no second clip.
        assert_eq!(c.len(), 1);
    }

    // Seed 001: "start 30 s before the event and record 2 minutes", in all three cases.
    #[test]
    fn the_seed_mapping_gives_120_s_in_all_three_cases() {
        let seed = GateConfig::SEED_DEFAULT;
        let one = clips(&mut Gate::new(seed), &[ev(0)]);
        let re = clips(&mut Gate::new(seed), &[ev(0), ev(10)]);
        let burst: Vec<_> = (0..20).map(|k| ev(k * 5)).collect();
        let burst = clips(&mut Gate::new(seed), &burst);
        for c in [&one[0], &re[0], &burst[0]] {
            assert_eq!(len(c), 120.0, "{c:?}");
            assert_eq!(c.0, -30.0);
        }
        // The burst's events after 90 s open the next clip.
        assert_eq!(burst[1].0, 95.0 - 30.0);
    }

    #[test]
    fn pt2m_would_give_2_min_30_s() {
        let c = clips(&mut Gate::new(cfg(-30, 120, 120)), &[ev(0)]);
        assert_eq!(len(&c[0]), 150.0);
    }

    #[test]
    fn an_earlier_event_inside_the_window_moves_the_start() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        let mut e = ev(-3);
        e.arrival_ns = T + S / 2; // 0.5 s after the first event arrived
        let c = clips(&mut g, &[ev(0), e]);
        assert_eq!(c, [(-8.0, 20.0, CloseReason::Minimum)]);
    }

    #[test]
    fn an_earlier_event_outside_the_window_is_dropped_or_clipped() {
        let mut e = ev(-3);
        e.arrival_ns = T + 3 * S;
        let mut g = Gate::new(cfg(-5, 20, 40));
        g.on_event(ev(0));
        assert_eq!(g.on_event(e), [Change::Dropped]);
        assert_eq!(g.open_clip().unwrap().requested_start_ns, T - 5 * S);

        let mut late = cfg(-5, 20, 40);
        late.late_events = LateEvents::Clip;
        let mut g = Gate::new(late);
        g.on_event(ev(0));
        match g.on_event(e)[..] {
            [Change::Retro(w)] => {
                assert_eq!((w.requested_start_ns, w.end_ns), (T - 8 * S, T + 17 * S))
            }
            ref other => panic!("{other:?}"),
        }
        assert_eq!(g.open_clip().unwrap().requested_start_ns, T - 5 * S);
    }

    #[test]
    fn an_event_that_arrives_late_opens_nothing_unless_asked() {
        let mut e = ev(0);
        e.arrival_ns = T + 2 * S; // window is 1 s
        let mut g = Gate::new(cfg(-5, 20, 40));
        assert_eq!(g.on_event(e), [Change::Dropped]);
        assert!(g.open_clip().is_none());
        let mut late = cfg(-5, 20, 40);
        late.late_events = LateEvents::Clip;
        let mut g = Gate::new(late);
        assert!(matches!(g.on_event(e)[..], [Change::Opened(_)]));
        // Inside the window: not late.
        let mut e = ev(0);
        e.arrival_ns = T + S;
        assert!(matches!(
            Gate::new(cfg(-5, 20, 40)).on_event(e)[..],
            [Change::Opened(_)]
        ));
    }

    #[test]
    fn the_clip_closes_only_after_its_end_plus_the_window() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        g.on_event(ev(0));
        assert!(g.on_tick(T + 20 * S).is_empty());
        assert!(g.on_tick(T + 21 * S - 1).is_empty());
        // An event at its end arriving inside the window still extends it.
        let mut e = ev(20);
        e.arrival_ns = T + 20 * S + S / 2;
        assert!(matches!(g.on_event(e)[..], [Change::Updated(_)]));
        assert_eq!(g.open_clip().unwrap().end_ns, T + 40 * S);
        // It reached its maximum (40 s) without an event asking for more: closed by minimum.
        assert!(matches!(
            g.on_tick(T + 41 * S)[..],
            [Change::Closed(_, CloseReason::Minimum)]
        ));
    }

    #[test]
    fn an_event_after_the_open_clips_end_closes_it_and_opens_the_next() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        g.on_event(ev(0));
        let mut e = ev(20);
        e.time_ns += 1;
        e.arrival_ns += 1;
        match g.on_event(e)[..] {
            [Change::Closed(a, CloseReason::Minimum), Change::Opened(b)] => {
                assert_eq!(a.end_ns, T + 20 * S);
                assert_eq!(b.requested_start_ns, T + 15 * S + 1);
            }
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_held_trigger_keeps_the_clip_open_and_chains_past_the_maximum() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        let mut e = ev(0);
        e.duration_ns = 10 * S;
        let c = clips(&mut g, &[e]);
        assert_eq!(c, [(-5.0, 30.0, CloseReason::Minimum)]);
        // Held for 100 s with maximum 40 s: 0..40, then 40..80, then 80..100 + 20 (min).
        let mut g = Gate::new(cfg(-5, 20, 40));
        let mut e = ev(0);
        e.duration_ns = 100 * S;
        let c = clips(&mut g, &[e]);
        let ends: Vec<(f64, CloseReason)> = c.iter().map(|c| (c.1, c.2)).collect();
        assert_eq!(
            ends,
            [
                (40.0, CloseReason::Maximum),
                (80.0, CloseReason::Maximum),
                (120.0, CloseReason::Minimum)
            ]
        );
    }

    #[test]
    fn a_positive_offset_delays_the_start() {
        let c = clips(&mut Gate::new(cfg(5, 20, 40)), &[ev(0)]);
        assert_eq!(c, [(5.0, 20.0, CloseReason::Minimum)]);
    }

    #[test]
    fn close_now_and_resume() {
        let mut g = Gate::new(cfg(-5, 20, 40));
        g.on_event(ev(0));
        let w = *g.open_clip().unwrap();
        let mut r = Gate::resume(cfg(-5, 20, 40), Some(w));
        assert!(matches!(
            r.close(CloseReason::Shutdown),
            Some(Change::Closed(_, CloseReason::Shutdown))
        ));
        assert!(r.close(CloseReason::Shutdown).is_none());
        for r in [
            CloseReason::Minimum,
            CloseReason::Maximum,
            CloseReason::Shutdown,
            CloseReason::CameraLost,
        ] {
            assert_eq!(CloseReason::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn the_preroll_horizon() {
        assert_eq!(GateConfig::SEED_DEFAULT.preroll_horizon_ns(), 31 * S);
        assert_eq!(cfg(5, 20, 40).preroll_horizon_ns(), S);
    }
}
