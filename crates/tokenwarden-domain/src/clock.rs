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

/// An instant as tokenwarden shows it everywhere (the API, events, audit details, the CLI):
/// RFC 3339 in UTC with `Z` and always three decimals, `2026-12-01T05:21:37.123Z`. Milliseconds
/// are what the database keeps, so an object reads the same in the answer to the POST that made
/// it and in every later GET. Formats without allocating (it is on the read path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub Timestamp);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            // A leap second's millisecond count goes past 999.
            t.timestamp_subsec_millis().min(999)
        )
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `#[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]` on a [`Timestamp`] field.
pub fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(*t))
}

/// [`rfc3339`] for an `Option<Timestamp>` field (`null` when absent).
pub fn rfc3339_opt<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&Rfc3339(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue11_item13_instants_show_in_one_format_with_milliseconds() {
        for (t, shown) in [
            (from_millis(0), "1970-01-01T00:00:00.000Z"),
            (from_millis(1_796_102_497_123), "2026-12-01T05:21:37.123Z"),
            (
                from_millis(1_796_102_497_000) + chrono::Duration::nanoseconds(987_654),
                "2026-12-01T05:21:37.000Z",
            ),
        ] {
            assert_eq!(Rfc3339(t).to_string(), shown);
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                shown,
                "the same as chrono's millisecond form"
            );
            assert_eq!(
                serde_json::to_string(&Rfc3339(t)).unwrap(),
                format!("\"{shown}\"")
            );
        }
        // What was stored reads back the same as what was made in memory (nanoseconds).
        let made = from_millis(1_796_102_497_123) + chrono::Duration::nanoseconds(456_789);
        assert_eq!(
            Rfc3339(made).to_string(),
            Rfc3339(from_millis(to_millis(made))).to_string()
        );
    }

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
