//! Reconnect backoff shared by every reconnecting client (log sink, TUI sources, probes).
//!
//! Exponential from 100 ms, doubling, capped at 5 s, each delay jittered by ±20 %. The cap is
//! applied with `min` to both the base and the jittered delay, so no delay ever exceeds `max`
//! (a listener that comes back is reconnected to within `max`).

use std::time::Duration;

/// Exponential backoff with jitter. `next_delay` returns the delay to wait before the next
/// attempt; `reset` after a success starts the sequence again from `initial`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    base: Duration,
    rng: fastrand::Rng,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5), 0.2)
    }
}

impl Backoff {
    /// `jitter` is a fraction: 0.2 means each delay lies within ±20 % of its base.
    pub fn new(initial: Duration, max: Duration, jitter: f64) -> Self {
        Self::with_rng(initial, max, jitter, fastrand::Rng::new())
    }

    /// Same, with a seeded generator so a test sees a repeatable sequence.
    pub fn with_rng(initial: Duration, max: Duration, jitter: f64, rng: fastrand::Rng) -> Self {
        let jitter = jitter.clamp(0.0, 1.0);
        let initial = initial.min(max);
        Self {
            initial,
            max,
            jitter,
            base: initial,
            rng,
        }
    }

    /// The un-jittered delay the next call will centre on.
    pub fn current_base(&self) -> Duration {
        self.base
    }

    /// Delay before the next attempt; advances the sequence.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base;
        // Cap with `min`: doubling past the cap must land on the cap, never above it.
        self.base = base.saturating_mul(2).min(self.max);
        let factor = 1.0 + self.jitter * (self.rng.f64() * 2.0 - 1.0);
        base.mul_f64(factor).min(self.max)
    }

    /// Back to `initial` after a successful attempt.
    pub fn reset(&mut self) {
        self.base = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    #[test]
    fn every_step_is_within_its_bounds_and_the_cap_is_reached() {
        for seed in 0..200 {
            let mut b = Backoff::with_rng(
                Duration::from_millis(100),
                Duration::from_secs(5),
                0.2,
                fastrand::Rng::with_seed(seed),
            );
            let bases = [
                100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 5000.0, 5000.0, 5000.0,
            ];
            for (step, base) in bases.iter().enumerate() {
                assert_eq!(ms(b.current_base()), *base, "seed {seed} step {step}");
                let d = ms(b.next_delay());
                assert!(
                    d >= base * 0.8 - 1e-6 && d <= (base * 1.2).min(5000.0) + 1e-6,
                    "seed {seed} step {step}: {d} ms outside ±20 % of {base} ms"
                );
            }
        }
    }

    #[test]
    fn never_exceeds_the_cap_even_after_many_steps() {
        let mut b = Backoff::default();
        for _ in 0..10_000 {
            assert!(b.next_delay() <= Duration::from_secs(5));
        }
        assert_eq!(b.current_base(), Duration::from_secs(5));
    }

    #[test]
    fn jitter_actually_varies_the_delay() {
        let mut b = Backoff::with_rng(
            Duration::from_secs(1),
            Duration::from_secs(1),
            0.2,
            fastrand::Rng::with_seed(7),
        );
        let delays: Vec<_> = (0..50).map(|_| b.next_delay()).collect();
        let lo = delays.iter().min().unwrap();
        let hi = delays.iter().max().unwrap();
        assert!(*lo < Duration::from_millis(900), "{lo:?}");
        assert!(*hi > Duration::from_millis(900), "{hi:?}");
        assert!(*hi <= Duration::from_secs(1));
    }

    #[test]
    fn reset_starts_again_from_initial() {
        let mut b = Backoff::default();
        for _ in 0..8 {
            b.next_delay();
        }
        assert_eq!(b.current_base(), Duration::from_secs(5));
        b.reset();
        assert_eq!(b.current_base(), Duration::from_millis(100));
        let d = b.next_delay();
        assert!(d >= Duration::from_millis(80) && d <= Duration::from_millis(120));
    }

    #[test]
    fn no_jitter_gives_the_plain_sequence() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 0.0);
        let seq: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seq, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
