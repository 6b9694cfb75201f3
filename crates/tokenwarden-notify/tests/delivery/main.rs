//! Delivery against real local servers: the webhook receiver and the SMTP sink of
//! tokenwarden-testkit. One test binary (STYLE.md item 12); add modules, not files in tests/.

mod email;
mod webhook;

use chrono::{DateTime, Utc};
use tokenwarden_notify::Event;

/// A token event with a token and an app in its data.
pub fn sample_event(kind: &str, token_name: &str) -> Event {
    // 2025-03-01T09:00:00Z
    let at = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::seconds(1_740_819_600);
    Event::new(
        kind,
        at,
        format!("The refresh token of token \"{token_name}\" expires in 7 days."),
        serde_json::json!({
            "token": {"id": "tok_1", "name": token_name, "provider": "snowflake"},
            "app": {"id": "app_1", "name": "nightly-etl", "state": "running"},
            "refresh_token_expires_at": "2025-03-08T09:00:00Z",
            "lead": "7d",
        }),
    )
}
