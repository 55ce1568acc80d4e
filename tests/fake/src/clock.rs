//! The fake's clock: real time plus manual jumps, or manual time only.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Time as seen by jobs, rate limits and the `Date` header, measured as the
/// time elapsed since the server started.
#[derive(Debug)]
pub(crate) struct Clock {
    started: Instant,
    started_wall: SystemTime,
    manual: bool,
    offset: Mutex<Duration>,
}

impl Clock {
    pub fn new(manual: bool) -> Clock {
        Clock {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            manual,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Elapsed fake time. A manual clock moves only by [`advance`](Self::advance);
    /// a real one also moves with real time.
    pub fn now(&self) -> Duration {
        let offset = *self.offset.lock().unwrap_or_else(|e| e.into_inner());
        if self.manual {
            offset
        } else {
            self.started.elapsed() + offset
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset += by;
    }

    /// Wall-clock time for a fake-clock reading.
    pub fn wall(&self, at: Duration) -> SystemTime {
        self.started_wall + at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_only_moves_when_advanced() {
        let clock = Clock::new(true);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), Duration::from_secs(3));
        assert_eq!(
            clock.wall(clock.now()),
            clock.started_wall + Duration::from_secs(3)
        );
    }

    #[test]
    fn real_clock_moves_and_can_jump() {
        let clock = Clock::new(false);
        clock.advance(Duration::from_secs(10));
        assert!(clock.now() >= Duration::from_secs(10));
    }
}
