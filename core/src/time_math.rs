//! Saturating arithmetic on time, and the seedable generator for jitter.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// About 34,800 years after 1970: later than any real wait, and representable on every
/// platform's `SystemTime`, so sums saturate here instead of overflowing.
pub(crate) fn far_future() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40)
}

/// `t + d`, saturating at [`far_future`].
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    let far = far_future();
    t.checked_add(d).map_or(far, |sum| sum.min(far))
}

/// `to - from`, or zero when `to` is not after `from`.
pub(crate) fn until(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or(Duration::ZERO)
}

/// `d × factor` for a finite factor ≥ 0, saturating at `Duration::MAX`.
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    let factor = if factor.is_finite() {
        factor.max(0.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// SplitMix64: tiny, fast, and good enough to spread waits; its whole state is one `u64`, so
/// the same seed gives the same schedule and the state saves with the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `d` shortened by a random share of at most `jitter` (clamped to `0..=1`):
    /// a value in `(d × (1 − jitter), d]`.
    pub(crate) fn shorten(&mut self, d: Duration, jitter: f64) -> Duration {
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        scale(d, 1.0 - jitter * self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_saturates() {
        assert_eq!(later(SystemTime::UNIX_EPOCH, Duration::MAX), far_future());
        assert_eq!(later(far_future(), Duration::from_secs(1)), far_future());
    }

    #[test]
    fn scale_never_panics() {
        assert_eq!(scale(Duration::MAX, 2.0), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(2), f64::NAN), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(2), -1.0), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(2), 1.5), Duration::from_secs(3));
    }

    #[test]
    fn shorten_stays_in_range() {
        let mut rng = Rng::new(7);
        let d = Duration::from_secs(10);
        for _ in 0..1000 {
            let s = rng.shorten(d, 0.1);
            assert!(s <= d && s > Duration::from_secs(9), "{s:?}");
        }
        assert_eq!(rng.shorten(d, 0.0), d);
        assert_eq!(rng.shorten(d, f64::NAN), d);
    }

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
