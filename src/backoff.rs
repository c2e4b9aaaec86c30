//! Retry delays: exponential backoff with jitter, shared by everything that reconnects (camera
//! pipelines, and later the uploader and the MQTT client).
//!
//! The growth is deterministic and the jitter is applied to each delay on its own, so jitter never
//! compounds: the n-th delay is `min × factorⁿ` (capped at `max`) times a factor drawn uniformly from
//! `[1 − jitter, 1 + jitter]`, then clamped to `[min, max]`. What to retry and when to reset belongs
//! to the caller.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff between `min` and `max` with multiplicative jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    base: Duration,
}

impl Backoff {
    /// A backoff whose first delay is about `min`, growing by `factor` (> 1) per failure up to
    /// `max`, each delay scaled by a uniform random factor in `[1 − jitter, 1 + jitter]`
    /// (`jitter` in `[0, 1)`, e.g. 0.1 for ±10 %).
    pub fn new(min: Duration, max: Duration, factor: f64, jitter: f64) -> Backoff {
        Backoff {
            min,
            max,
            factor,
            jitter: jitter.clamp(0.0, 0.99),
            base: min,
        }
    }

    /// The next delay to wait, with a random jitter draw.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(random_unit())
    }

    /// The next delay with the jitter draw `u` in `[0, 1]` given (0 = shortest, 1 = longest): the
    /// seam for tests.
    pub fn next_delay_with(&mut self, u: f64) -> Duration {
        let scale = 1.0 - self.jitter + 2.0 * self.jitter * u.clamp(0.0, 1.0);
        let delay = self.base.mul_f64(scale).clamp(self.min, self.max);
        self.base = self.base.mul_f64(self.factor).min(self.max);
        delay
    }

    /// Starts again from `min` (after a success).
    pub fn reset(&mut self) {
        self.base = self.min;
    }
}

/// A uniform draw in `[0, 1)` from std's per-process random hasher keys (no RNG crate needed for
/// jitter).
fn random_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x6a09_e667_f3bc_c908);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attempt times over 10 minutes with every jitter draw equal to `u`.
    fn attempts(u: f64) -> Vec<(Duration, Duration)> {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.2, 0.1);
        let (mut t, mut out) = (Duration::ZERO, Vec::new());
        while t < Duration::from_secs(600) {
            let d = b.next_delay_with(u);
            t += d;
            out.push((t, d));
        }
        out
    }

    #[test]
    fn jitter_does_not_compound_and_delays_stay_in_bounds() {
        for u in [0.0, 0.5, 1.0] {
            let a = attempts(u);
            assert!(a
                .iter()
                .all(|(_, d)| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(30)));
            // At the cap the delay is 30 s less up to 10 % jitter.
            let last = a.last().unwrap().1;
            assert!(
                last >= Duration::from_secs(27) && last <= Duration::from_secs(30),
                "u={u}"
            );
        }
        // The 8th delay is 1.2^7 = 3.58 s ±10 %, whatever the earlier draws were.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.2, 0.1);
        for _ in 0..7 {
            b.next_delay_with(1.0);
        }
        let d = b.next_delay_with(0.5).as_secs_f64();
        assert!((d - 1.2f64.powi(7)).abs() < 1e-6, "{d}");
    }

    #[test]
    fn random_draws_stay_within_the_jitter_band() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 20.0, 0.1);
            b.next_delay();
            // The second delay: 20 s ± 10 %.
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(18) && d <= Duration::from_secs(22),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 100, "jitter draws repeat: {}", seen.len());
    }

    #[test]
    fn reset_starts_again_from_min() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300), 2.0, 0.0);
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(32));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
