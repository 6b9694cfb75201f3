//! A bare axum server for `bench/run`: `GET /api/v1/access-tokens/{name}` answers the JSON body
//! given on the command line (tokenwarden's answer to the same read, parsed once and serialized
//! per request, as tokenwarden's handler does), with no authentication, no store, no
//! middleware. The yardstick the read path is measured against.
//!   bench-baseline 127.0.0.1:18430 '{"access_token":"…","token_type":"Bearer",…}'

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, Deserialize, Clone)]
struct AccessTokenView {
    access_token: String,
    token_type: String,
    expires_at: String,
    expires_in: i64,
}

async fn read(
    State(body): State<Arc<AccessTokenView>>,
    Path(_name): Path<String>,
) -> Json<AccessTokenView> {
    Json(AccessTokenView::clone(&body))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18430".into());
    let body = args.next().unwrap_or_else(|| {
        r#"{"access_token":"bench","token_type":"Bearer","expires_at":"2026-12-01T04:00:00Z","expires_in":600}"#.into()
    });
    let body: AccessTokenView = serde_json::from_str(&body).map_err(std::io::Error::other)?;
    let app = axum::Router::new()
        .route("/api/v1/access-tokens/{name}", axum::routing::get(read))
        .with_state(Arc::new(body));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
