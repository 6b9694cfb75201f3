//! The emulator's only way to read the time: real time plus an adjustable offset.

use chrono::{DateTime, Utc};

/// The real wall-clock time. Everything else goes through [`crate::Emulator`]'s offset clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn real_now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}
