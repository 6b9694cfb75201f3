//! `tokenwarden demo`'s fast-forward (the `demo` feature): [`DemoHooks`] and the `/_demo/clock`
//! routes. Without hooks in the context (every process but `tokenwarden demo`) the routes answer
//! `404 no_route`, as if they were not there.

use crate::{ApiError, AppContext, ops};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `tokenwarden demo`'s fast-forward: the clock the service runs on, and what else must move
/// with it (the built-in Snowflake emulator's clock).
pub struct DemoHooks {
    pub clock: Arc<tokenwarden_domain::OffsetClock>,
    pub on_advance: Box<dyn Fn(chrono::Duration) + Send + Sync>,
}

impl std::fmt::Debug for DemoHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoHooks")
            .field("offset", &self.clock.offset())
            .finish()
    }
}

/// `/_demo/clock`.
pub(crate) fn router() -> axum::Router<AppContext> {
    axum::Router::new().route(
        "/_demo/clock",
        axum::routing::get(demo_clock).post(demo_advance),
    )
}

#[derive(serde::Deserialize)]
struct Advance {
    /// Seconds to move forward (at most 400 days at a time).
    seconds: i64,
}

/// `GET /_demo/clock`: the demo's time. Not found outside `tokenwarden demo`.
async fn demo_clock(State(ctx): State<AppContext>) -> Response {
    match &ctx.demo {
        Some(d) => axum::Json(serde_json::json!({"now": ctx.clock.now(), "offset_seconds": d.clock.offset().num_seconds()})).into_response(),
        None => ApiError::NoRoute("/_demo/clock".into()).into_response(),
    }
}

/// `POST /_demo/clock {"seconds": N}`: moves the demo's time (and the emulator's) forward and
/// runs a background pass at once, so reminders, expiry and stopped apps show up immediately.
async fn demo_advance(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(d) = ctx.demo.clone() else {
        return ApiError::NoRoute("/_demo/clock".into()).into_response();
    };
    if let Err(e) = check_same_origin_json(&ctx, &headers) {
        return e.into_response();
    }
    let adv: Advance = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return ApiError::InvalidJson(format!("send {{\"seconds\": N}}: {e}")).into_response();
        }
    };
    if !(1..=400 * 86_400).contains(&adv.seconds) {
        return ApiError::InvalidRequest(
            "seconds must be between 1 and 34560000 (400 days)".into(),
        )
        .into_response();
    }
    let by = chrono::Duration::seconds(adv.seconds);
    d.clock.advance(by);
    (d.on_advance)(d.clock.offset());
    let report = ops::engine::run_due_once(&ctx, ctx.clock.now()).await;
    axum::Json(serde_json::json!({
        "now": ctx.clock.now(), "offset_seconds": d.clock.offset().num_seconds(),
        "pass": {"refreshed": report.refreshed, "reminders_sent": report.reminders_sent, "expired": report.expired, "delivered": report.delivered}
    }))
    .into_response()
}

/// A page elsewhere must not move the demo's time: the body must be declared JSON (a
/// cross-site form cannot send that without a preflight, which is never granted), and a
/// browser's request must come from our own origin (`Sec-Fetch-Site` `same-origin` or `none`;
/// else an `Origin` equal to ours). Clients that are not browsers send neither header.
fn check_same_origin_json(ctx: &AppContext, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let json = text(header::CONTENT_TYPE).is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Err(ApiError::InvalidJson(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ));
    }
    let same_origin = match (
        text(header::HeaderName::from_static("sec-fetch-site")),
        text(header::ORIGIN),
    ) {
        (Some(site), _) => matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => origin == ctx.settings.public_url.trim_end_matches('/'),
        (None, None) => true,
    };
    if same_origin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}
