//! Pages a browser sees outside the admin UI's session routes: the OAuth callback, and its static assets.
//! No inline script (CSP), no third-party resource, no referrer (R6).

use crate::AppContext;
use crate::ops::grant::{self, CallbackQuery, CallbackResult};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const CALLBACK_JS: &str = include_str!("../assets/oauth-callback.js");
const STYLE_CSS: &str = include_str!("../assets/tokenwarden.css");
const FAVICON: &str = include_str!("../assets/favicon.svg");

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub fn router() -> axum::Router<AppContext> {
    axum::Router::new()
        .route("/oauth/callback", get(callback))
        .route(
            "/static/oauth-callback.js",
            get(|| async { asset(CALLBACK_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/tokenwarden.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        // Browsers ask for /favicon.ico whatever the page says: both answer the same icon.
        .route(
            "/favicon.svg",
            get(|| async { asset(FAVICON, "image/svg+xml") }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset(FAVICON, "image/svg+xml") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Upper-cases the first letter, for messages shown as a sentence.
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Adds the security headers every HTML page carries (R6, R31).
pub fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

async fn callback(
    State(ctx): State<AppContext>,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    // A flow started in the UI is bound to that session: the browser must come back with the
    // same session cookie (SameSite=Lax sends it on this top-level return from the provider).
    // API- and CLI-started flows are bound to no session and complete in any browser.
    let session = crate::ui::session::session_hash(&ctx, &headers);
    let result = grant::complete_callback(&ctx, &q, session.as_deref()).await;
    // `message` goes to the window that opened the popup as well, so it says nothing about
    // this window; `closing` is only for the popup. Messages are not capitalised: a token's
    // name is case-sensitive and may start one.
    let (status, outcome, token_id, title, message, closing) = match &result {
        CallbackResult::Authorized { token, detail } => {
            let exp = token
                .material
                .refresh_expires_at
                .map(|e| {
                    format!(
                        " The refresh token is valid until {}.",
                        e.format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .unwrap_or_default();
            let who = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            };
            (
                StatusCode::OK,
                "ok",
                token.id.to_string(),
                "Token obtained".to_owned(),
                format!("{} is authorized{who}.{exp}", token.name),
                "You can close this window.",
            )
        }
        CallbackResult::BadState(m) => (
            StatusCode::BAD_REQUEST,
            "error",
            String::new(),
            "This sign-in cannot be completed".to_owned(),
            sentence(m),
            "",
        ),
        CallbackResult::Failed {
            token_name,
            token_id,
            message,
        } => (
            StatusCode::BAD_GATEWAY,
            "error",
            token_id.to_string(),
            format!("{token_name} was not authorized"),
            format!(
                "{}. The stored token was not changed.",
                sentence(message.trim_end_matches('.'))
            ),
            "",
        ),
    };
    html(
        status,
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenwarden — {title}</title><link rel="icon" href="/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/static/tokenwarden.css">
<script src="/static/oauth-callback.js" defer></script></head>
<body class="callback" data-outcome="{outcome}" data-token-id="{token_id}" data-message="{msg_attr}">
<main class="card"><p class="brand">tokenwarden</p><h1 class="{outcome}">{title}</h1><p id="message">{msg}</p>{closing}</main>
</body></html>
"#,
            title = escape(&title),
            outcome = outcome,
            token_id = escape(&token_id),
            msg_attr = escape(&message),
            msg = escape(&message),
            closing = if closing.is_empty() {
                String::new()
            } else {
                format!(r#"<p class="closing">{}</p>"#, escape(closing))
            },
        ),
    )
}
