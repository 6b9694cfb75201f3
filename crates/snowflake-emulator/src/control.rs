//! `/_emulator/...`: JSON knobs for tests and the demo (not part of Snowflake).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{Emulator, Fault};

pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/_emulator/clock", get(get_clock).post(set_clock))
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/revoke", post(revoke))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/counters", get(counters))
        .route("/_emulator/latency", post(set_latency))
        .route("/_emulator/refresh-requests", get(refresh_requests))
}

fn clock_body(emu: &Emulator) -> serde_json::Value {
    let inner = emu.lock();
    json!({"offset_seconds": inner.clock_offset.num_seconds(), "now": inner.now().to_rfc3339()})
}

async fn get_clock(State(emu): State<Emulator>) -> Response {
    Json(clock_body(&emu)).into_response()
}

#[derive(Deserialize)]
struct ClockRequest {
    offset_seconds: i64,
}

async fn set_clock(State(emu): State<Emulator>, Json(req): Json<ClockRequest>) -> Response {
    emu.set_clock_offset(chrono::Duration::seconds(req.offset_seconds));
    Json(clock_body(&emu)).into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    fault: Fault,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

async fn faults(State(emu): State<Emulator>, Json(req): Json<FaultRequest>) -> Response {
    emu.inject_token_fault(req.fault, req.times);
    Json(json!({"fault": req.fault, "times": req.times})).into_response()
}

#[derive(Deserialize)]
struct RevokeRequest {
    user: String,
    integration: String,
}

async fn revoke(State(emu): State<Emulator>, Json(req): Json<RevokeRequest>) -> Response {
    emu.revoke_delegated_authorizations(&req.user, &req.integration);
    (
        StatusCode::OK,
        Json(json!({"revoked": true, "user": req.user, "integration": req.integration})),
    )
        .into_response()
}

async fn stats(State(emu): State<Emulator>) -> Response {
    Json(emu.stats()).into_response()
}

/// `GET /_emulator/counters`: the counters of `/_emulator/stats` alone, for pollers (the
/// benchmark's scale mode polls every 50 ms; the whole stats list every integration, and
/// reading them took a tenth of the machine while it measured).
async fn counters(State(emu): State<Emulator>) -> Response {
    let counters = emu.lock().counters.clone();
    Json(counters).into_response()
}

#[derive(Deserialize)]
struct LatencyRequest {
    token_latency_ms: u64,
}

/// `POST /_emulator/latency {"token_latency_ms": N}`: see [`Emulator::set_token_latency`].
async fn set_latency(State(emu): State<Emulator>, Json(req): Json<LatencyRequest>) -> Response {
    emu.set_token_latency(std::time::Duration::from_millis(req.token_latency_ms));
    Json(json!({"token_latency_ms": req.token_latency_ms})).into_response()
}

/// `GET /_emulator/refresh-requests`: refresh-token grant requests, how many refresh tokens
/// they presented, and the most any one token was presented (never the tokens themselves).
async fn refresh_requests(State(emu): State<Emulator>) -> Response {
    let inner = emu.lock();
    let by_token = &inner.refresh_requests_by_token;
    Json(json!({
        "requests": by_token.values().map(|&n| u64::from(n)).sum::<u64>(),
        "refresh_tokens": by_token.len(),
        "most_per_token": by_token.values().copied().max().unwrap_or(0),
    }))
    .into_response()
}
