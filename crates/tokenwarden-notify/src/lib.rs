//! tokenwarden's notification delivery: one [`Event`] to one channel.
//!
//! - Webhooks ([`Webhooks::deliver`]): a signed JSON POST following
//!   [Standard Webhooks](https://www.standardwebhooks.com/) (headers `webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`); [`sign`] and [`verify`] implement the signature
//!   scheme, [`webhook_body`] the body, [`check_webhook_url`] the URL rules.
//! - Email ([`Mailer::send`]): a plain-text message over SMTP (lettre, rustls with ring), its
//!   subject and body made by [`render_email`].
//!
//! There is no database and no scheduling here: the caller keeps a durable job queue, calls a
//! delivery function once per attempt, records the [`DeliveryOutcome`] in its delivery log and,
//! on [`DeliveryOutcome::Retry`], runs the job again after [`retry_delay`] until
//! [`MAX_ATTEMPTS`] attempts were made. Every delivery is bounded by a timeout, so a receiver
//! that is down or slow costs one job slot for at most that long and never blocks token
//! serving (R38).
//!
//! Time is a parameter: nothing here reads the clock (the webhook timestamp is `now_unix`; the
//! email `Date` is the event's time).
//!
//! Nothing here logs or returns a secret: the webhook signing secret and the SMTP password are
//! [`SecretString`]s, and no error message or [`DeliveryOutcome`] reason contains them (nor the
//! webhook URL, which may carry a token in its query).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod email;
mod webhook;

pub use email::{Mailer, SmtpSecurity, SmtpSettings, render_email};
pub use secrecy::{ExposeSecret, SecretString};
pub use webhook::{
    MAX_WEBHOOK_URL_LEN, WebhookTarget, Webhooks, check_webhook_url, new_webhook_secret, sign,
    verify, webhook_body,
};

/// The event kinds tokenwarden emits ([`Event::kind`]).
pub mod kinds {
    /// A token was authorized (first time or again) through the OAuth flow.
    pub const TOKEN_AUTHORIZED: &str = "token.authorized";
    /// A refresh failed for a reason that may pass (provider down, network); tokenwarden retries.
    pub const TOKEN_REFRESH_FAILED: &str = "token.refresh_failed";
    /// The provider refused the refresh token: someone must re-authorize the token.
    pub const TOKEN_NEEDS_REAUTHORIZATION: &str = "token.needs_reauthorization";
    /// A reminder: the refresh token expires within a configured lead time.
    pub const TOKEN_EXPIRING: &str = "token.expiring";
    /// The refresh token has expired: someone must re-authorize the token.
    pub const TOKEN_EXPIRED: &str = "token.expired";
    /// A token that was failing works again (refreshed or re-authorized).
    pub const TOKEN_RESTORED: &str = "token.restored";
    /// A dependent app was stopped (e.g. because its token expired).
    pub const APP_STOPPED: &str = "app.stopped";
    /// An app was started (again).
    pub const APP_STARTED: &str = "app.started";
    /// A test-send from the admin UI or API.
    pub const TEST: &str = "test";

    /// Every kind above.
    pub const ALL: &[&str] = &[
        TOKEN_AUTHORIZED,
        TOKEN_REFRESH_FAILED,
        TOKEN_NEEDS_REAUTHORIZATION,
        TOKEN_EXPIRING,
        TOKEN_EXPIRED,
        TOKEN_RESTORED,
        APP_STOPPED,
        APP_STARTED,
        TEST,
    ];
}

/// One thing that happened.
///
/// `data` is free-form JSON without any secret. The keys that [`render_email`] understands
/// (all optional):
///
/// - `token`: `{"id", "name", "provider", "scope", "app"}`
/// - `app`: `{"id", "name", "state", "stop_reason"}`
/// - `refresh_token_expires_at`: RFC 3339
/// - `lead`: the reminder lead time that fired, e.g. `"7d"`
/// - `error`: why something failed
/// - `stopped_apps`: names of the apps that were stopped
/// - `url`: a link to the object in tokenwarden's UI
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Unique, stable across retries of the same notification: `evt_<uuid>`. It is the
    /// webhook's `webhook-id` (receivers deduplicate on it) and the email's `Message-ID`.
    pub id: String,
    /// One of [`kinds::ALL`].
    pub kind: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// One human sentence.
    pub summary: String,
    /// Details; see the type's documentation. Never a secret.
    pub data: serde_json::Value,
}

impl Event {
    /// An event with a fresh id (`evt_` + a random UUID).
    pub fn new(
        kind: impl Into<String>,
        at: DateTime<Utc>,
        summary: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: new_event_id(),
            kind: kind.into(),
            at,
            summary: summary.into(),
            data,
        }
    }

    /// The event of a test-send.
    pub fn test(at: DateTime<Utc>) -> Self {
        Self::new(
            kinds::TEST,
            at,
            "This is a test notification from tokenwarden.",
            serde_json::json!({}),
        )
    }
}

/// A fresh event id: `evt_` + a random (v4) UUID without dashes.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

/// What one delivery attempt came to.
///
/// For webhooks `status` is the HTTP status; for email it is the SMTP reply code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted: HTTP 2xx, or the SMTP server took the message.
    Delivered { status: u16 },
    /// Worth trying again later: network error, timeout, HTTP 5xx, 429 or 408, an SMTP 4xx
    /// reply or a broken SMTP conversation.
    Retry { reason: String, status: Option<u16> },
    /// Will not get better by retrying: a bad URL or address, any other HTTP status (other 4xx,
    /// 3xx: redirects are not followed), an SMTP 5xx reply.
    Failed { reason: String, status: Option<u16> },
}

impl DeliveryOutcome {
    /// `true` for [`DeliveryOutcome::Delivered`].
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// `true` for [`DeliveryOutcome::Retry`].
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }

    /// The status, if the other side answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status } => Some(*status),
            Self::Retry { status, .. } | Self::Failed { status, .. } => *status,
        }
    }
}

/// Errors of this crate. None of them carries a secret or a webhook URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    /// The webhook URL breaks a rule of [`check_webhook_url`]; the text says which.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// The webhook secret is not `whsec_` + base64 of a non-empty key.
    #[error("invalid webhook secret: expected \"whsec_\" followed by base64")]
    InvalidSecret,
    /// A webhook header is missing or malformed (named).
    #[error("invalid webhook header {0}")]
    InvalidHeader(&'static str),
    /// `webhook-timestamp` is further from now than the tolerance.
    #[error("webhook timestamp is outside the tolerance")]
    TimestampOutOfTolerance,
    /// No `v1` signature in `webhook-signature` matches.
    #[error("no matching webhook signature")]
    SignatureMismatch,
    /// The SMTP settings are unusable; the text says why.
    #[error("invalid SMTP settings: {0}")]
    Smtp(String),
}

/// How many delivery attempts are made in all before the caller gives up.
///
/// With [`retry_delay`] the 11 waits between them add up to about 1.7 hours on average and
/// 3.4 hours (12,310 s) at most.
pub const MAX_ATTEMPTS: u32 = 12;

/// The first retry waits up to this long.
pub const RETRY_BASE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
/// No retry waits longer than this.
pub const RETRY_CAP: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The longest wait after failed attempt `attempt` (1-based; 0 counts as 1): 10 s doubling per
/// attempt, capped at 1 hour (10 s, 20 s, 40 s, ..., 2560 s, then 3600 s).
pub fn retry_cap(attempt: u32) -> chrono::TimeDelta {
    let doublings = attempt.saturating_sub(1).min(20);
    let secs = RETRY_BASE
        .num_seconds()
        .saturating_mul(1_i64 << doublings)
        .min(RETRY_CAP.num_seconds());
    chrono::TimeDelta::seconds(secs)
}

/// How long to wait after failed attempt `attempt` (1-based) before the next one: capped
/// exponential backoff with full jitter, `retry_cap(attempt) * jitter01`, at least 1 second.
///
/// `jitter01` is a random number in `[0, 1)` supplied by the caller (values outside are
/// clamped, NaN counts as 0). After attempt [`MAX_ATTEMPTS`] the caller gives up instead.
pub fn retry_delay(attempt: u32, jitter01: f64) -> chrono::TimeDelta {
    let jitter = if jitter01.is_nan() {
        0.0
    } else {
        jitter01.clamp(0.0, 1.0)
    };
    let cap_ms = retry_cap(attempt).num_milliseconds();
    // cap_ms <= 3.6e6, exactly representable; the product stays within [0, cap_ms].
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let ms = ((cap_ms as f64) * jitter).floor() as i64;
    chrono::TimeDelta::milliseconds(ms.clamp(1_000.min(cap_ms), cap_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_double_from_ten_seconds_to_one_hour() {
        assert_eq!(retry_cap(0), chrono::TimeDelta::seconds(10));
        assert_eq!(retry_cap(1), chrono::TimeDelta::seconds(10));
        assert_eq!(retry_cap(2), chrono::TimeDelta::seconds(20));
        assert_eq!(retry_cap(9), chrono::TimeDelta::seconds(2560));
        assert_eq!(retry_cap(10), RETRY_CAP);
        assert_eq!(retry_cap(u32::MAX), RETRY_CAP);
        let mut previous = chrono::TimeDelta::zero();
        for attempt in 1..=1000 {
            let cap = retry_cap(attempt);
            assert!(cap >= previous, "attempt {attempt}");
            assert!(cap <= RETRY_CAP, "attempt {attempt}");
            previous = cap;
        }
    }

    #[test]
    fn delays_stay_within_their_cap() {
        for attempt in 0..=MAX_ATTEMPTS + 5 {
            for i in 0..=100 {
                let jitter = f64::from(i) / 100.0;
                let d = retry_delay(attempt, jitter);
                assert!(d >= chrono::TimeDelta::seconds(1), "{attempt} {jitter}");
                assert!(d <= retry_cap(attempt), "{attempt} {jitter}");
                assert!(d <= RETRY_CAP);
            }
        }
        // Attempt 1: up to 10 s.
        assert_eq!(retry_delay(1, 0.0), chrono::TimeDelta::seconds(1));
        assert_eq!(retry_delay(1, 0.5), chrono::TimeDelta::seconds(5));
        assert!(retry_delay(1, 0.999_999) < chrono::TimeDelta::seconds(10));
        assert!(retry_delay(1, 0.999_999) > chrono::TimeDelta::milliseconds(9_900));
        // Later attempts: up to an hour, never more.
        assert_eq!(retry_delay(30, 0.5), chrono::TimeDelta::minutes(30));
        // Out-of-range jitter is clamped.
        assert_eq!(retry_delay(1, f64::NAN), chrono::TimeDelta::seconds(1));
        assert_eq!(retry_delay(1, -3.0), chrono::TimeDelta::seconds(1));
        assert_eq!(retry_delay(1, 7.0), chrono::TimeDelta::seconds(10));
        assert_eq!(retry_delay(99, f64::INFINITY), RETRY_CAP);
    }

    #[test]
    fn the_whole_schedule_is_bounded() {
        let worst: i64 = (1..MAX_ATTEMPTS)
            .map(|a| retry_delay(a, 1.0).num_seconds())
            .sum();
        // 11 waits between 12 attempts: 10 + 20 + ... + 2560 = 5110, then 3600 + 3600.
        assert_eq!(worst, 10 * (1 << 9) - 10 + 2 * 3600);
        assert!(worst < 5 * 3600);
    }

    #[test]
    fn event_ids_are_prefixed_and_unique() {
        let a = new_event_id();
        let b = new_event_id();
        assert!(a.starts_with("evt_") && a.len() == 4 + 32, "{a}");
        assert_ne!(a, b);
        let e = Event::test(DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(e.kind, kinds::TEST);
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn outcomes_expose_their_status() {
        assert!(DeliveryOutcome::Delivered { status: 204 }.is_delivered());
        let retry = DeliveryOutcome::Retry {
            reason: "x".into(),
            status: Some(503),
        };
        assert!(retry.is_retry());
        assert_eq!(retry.status(), Some(503));
    }
}
