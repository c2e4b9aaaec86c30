//! Clocks: the system's wall clock (UTC) and monotonic clock behind one seam, so that code with
//! time rules (segment rolls, sync intervals, retention, the EVR signal gate) can be unit-tested
//! with a simulated clock.
//!
//! Time values are plain `i64` nanoseconds: UTC ns since 1970-01-01T00:00:00Z for the wall clock,
//! ns since an arbitrary origin for the monotonic clock. Formatting and parsing of times belong to
//! [`crate::playback::time`], not here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Wall-clock time, UTC ns since 1970. May step (NTP); never use it to measure intervals.
    fn utc_ns(&self) -> i64;
    /// Monotonic time, ns since an arbitrary origin; never steps backwards.
    fn mono_ns(&self) -> i64;
}

/// The system's clocks (`CLOCK_REALTIME`, `CLOCK_MONOTONIC`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn utc_ns(&self) -> i64 {
        now_utc_ns()
    }
    fn mono_ns(&self) -> i64 {
        mono_ns()
    }
}

/// A clock that moves only when told to (tests). Clones share one time.
#[derive(Debug, Clone, Default)]
pub struct SimulatedClock {
    utc: Arc<AtomicI64>,
    mono: Arc<AtomicI64>,
}

impl SimulatedClock {
    /// A clock whose wall clock reads `utc_ns` and whose monotonic clock reads 0.
    pub fn new(utc_ns: i64) -> Self {
        let c = Self::default();
        c.utc.store(utc_ns, Ordering::SeqCst);
        c
    }

    /// Moves both clocks forward by `ns`.
    pub fn advance(&self, ns: i64) {
        self.utc.fetch_add(ns, Ordering::SeqCst);
        self.mono.fetch_add(ns, Ordering::SeqCst);
    }

    /// Steps the wall clock by `ns` (either way) without moving the monotonic clock, as NTP does.
    pub fn step_utc(&self, ns: i64) {
        self.utc.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for SimulatedClock {
    fn utc_ns(&self) -> i64 {
        self.utc.load(Ordering::SeqCst)
    }
    fn mono_ns(&self) -> i64 {
        self.mono.load(Ordering::SeqCst)
    }
}

/// The system wall clock as UTC ns since 1970 (0 if the clock is before 1970).
pub fn now_utc_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The system monotonic clock (`CLOCK_MONOTONIC`), ns.
pub fn mono_ns() -> i64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    t.tv_sec() * 1_000_000_000 + t.tv_nsec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_only_when_told() {
        let c = SimulatedClock::new(1_000);
        let d = c.clone();
        assert_eq!((c.utc_ns(), c.mono_ns()), (1_000, 0));
        d.advance(5);
        d.step_utc(-100);
        assert_eq!((c.utc_ns(), c.mono_ns()), (905, 5));
    }

    #[test]
    fn system_monotonic_clock_does_not_go_back() {
        let a = SystemClock.mono_ns();
        let b = SystemClock.mono_ns();
        assert!(b >= a && a > 0);
    }
}
