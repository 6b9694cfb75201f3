//! Time is a parameter: every component that needs "now" is handed a [`Clock`], so that tests
//! can move time by 90 days in a millisecond. `clippy.toml` forbids reading the system clock
//! anywhere else.

use crate::Timestamp;
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one permitted read of the system clock
    fn now(&self) -> Timestamp {
        chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Starts at 2026-01-01T00:00:00Z, a fixed and readable instant.
    pub fn at_epoch() -> Self {
        Self::new(
            chrono::DateTime::from_timestamp(1_767_225_600, 0)
                .unwrap_or(chrono::DateTime::UNIX_EPOCH),
        )
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }

    pub fn set(&self, to: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The wall clock plus an offset that can be moved forward while running (`tokenwarden demo`'s
/// fast-forward, to watch reminders and expiry happen).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }

    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.offset_ms.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        SystemClock.now() + self.offset()
    }
}

/// Milliseconds since the Unix epoch: how instants are stored.
pub fn to_millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the epoch rather than panic.
pub fn from_millis(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let c = ManualClock::at_epoch();
        let c2 = c.clone();
        let t0 = c.now();
        c.advance(chrono::Duration::days(90));
        assert_eq!(c2.now() - t0, chrono::Duration::days(90));
    }

    #[test]
    fn millis_round_trip() {
        let t = ManualClock::at_epoch().now();
        assert_eq!(from_millis(to_millis(t)), t);
    }
}
