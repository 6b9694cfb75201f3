//! The admin web UI ("Manage Center"): server-rendered askama pages with htmx partials, kept
//! apart from the JSON API. Admins sign in with a username and password (see [`session`]); the
//! JSON API keeps its bearer tokens.
//!
//! Every asset is compiled into the binary (htmx is vendored); pages have no inline script or
//! style, so the strict CSP of [`crate::pages::CSP`] holds. Every state-changing request is a
//! POST that must carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`)
//! and must not come from another site (`Sec-Fetch-Site`); no GET changes anything.

mod admins;
mod apps;
mod auth_pages;
mod keys;
mod notify;
mod pager;
pub mod session;
pub mod shown_once;
mod tokens;
mod view;

pub use crate::ops::admins::UiState;
pub use session::AdminSession;

use crate::AppContext;
use crate::error::ApiError;
use crate::ops::audit::{Action, Outcome};
use crate::pages::{escape, html};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokenwarden_store::StoreError;

const UI_JS: &str = include_str!("../../assets/ui.js");
const UI_CSS: &str = include_str!("../../assets/ui.css");
const HTMX_JS: &str = include_str!("../../assets/htmx.min.js");

pub fn router(ctx: &AppContext) -> axum::Router<AppContext> {
    let signed_in = axum::Router::new()
        .route("/", get(|| async { Redirect::to("/tokens") }))
        .route("/logout", post(auth_pages::logout))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/new", get(tokens::new_form))
        .route("/tokens/{id}", get(tokens::detail))
        .route(
            "/tokens/{id}/edit",
            get(tokens::edit_form).post(tokens::save),
        )
        .route("/tokens/{id}/delete", post(tokens::delete))
        .route("/tokens/{id}/status", get(tokens::status_partial))
        .route("/tokens/{id}/client-secrets", post(tokens::paste_secrets))
        .route("/tokens/{id}/authorize", post(tokens::authorize))
        .route(
            "/tokens/{id}/device",
            get(tokens::device_page).post(tokens::device_start),
        )
        .route("/tokens/{id}/device/status", get(tokens::device_status))
        .route("/tokens/{id}/test", post(tokens::test))
        .route("/tokens/{id}/keys/rotate", post(keys::rotate))
        .route("/tokens/{id}/keys/finish", post(keys::finish))
        .route("/tokens/{id}/keys/cancel", post(keys::cancel))
        .route("/ui/provider-fields", get(tokens::provider_fields))
        .route("/ui/check-setting", get(tokens::check_setting))
        .route("/ui/suggest/{list}", get(tokens::suggest))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{id}", get(apps::detail).post(apps::update))
        .route("/apps/{id}/start", post(apps::start))
        .route("/apps/{id}/stop", post(apps::stop))
        .route("/apps/{id}/keys", post(apps::create_key))
        .route("/apps/{id}/keys/{key_id}/revoke", post(apps::revoke_key))
        .route("/notifications", get(notify::list).post(notify::create))
        .route("/notifications/lead-times", post(notify::set_lead_times))
        .route("/notifications/upcoming", get(notify::upcoming))
        .route("/notifications/{id}", get(notify::detail))
        .route("/notifications/{id}/enabled", post(notify::set_enabled))
        .route("/notifications/{id}/test", post(notify::test))
        .route("/notifications/{id}/delete", post(notify::delete))
        .route("/audit", get(notify::audit))
        .route(
            "/tokens/{id}/rename",
            get(tokens::rename_form).post(tokens::rename),
        )
        .route(
            "/tokens/{id}/client-secret-2/clear",
            post(tokens::clear_secret_2),
        )
        .route(
            "/notifications/{id}/edit",
            get(notify::edit_form).post(notify::save),
        )
        .route("/apps/{id}/delete", post(apps::delete))
        .route("/admins", get(admins::list).post(admins::create))
        .route("/admins/{id}", get(admins::detail))
        .route("/admins/{id}/password", post(admins::set_password))
        .route("/admins/{id}/remove", post(admins::remove))
        .route("/admin-tokens", post(admins::create_token))
        .route("/admin-tokens/{id}/revoke", post(admins::revoke_token))
        .route("/shown-once", get(shown_once::show))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            require_session,
        ));
    axum::Router::new()
        .route(
            "/login",
            get(auth_pages::login_form).post(auth_pages::login),
        )
        .route(
            "/setup",
            get(auth_pages::setup_form).post(auth_pages::setup),
        )
        .route(
            "/static/ui.js",
            get(|| async { asset(UI_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/ui.css",
            get(|| async { asset(UI_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/static/htmx.min.js",
            get(|| async { asset(HTMX_JS, "text/javascript; charset=utf-8") }),
        )
        .merge(signed_in)
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

/// An error shown as an HTML page (or, for htmx, as a fragment).
#[derive(Debug)]
pub struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError(e)
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError(e.into())
    }
}

impl From<crate::ops::Error> for UiError {
    fn from(e: crate::ops::Error) -> Self {
        UiError(e.into())
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        UiError(ApiError::internal(e))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        error_page(status, &self.0.to_string())
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

/// A plain page for errors and refusals: it needs no session, so it has no navigation.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenwarden — {code}</title><link rel="icon" href="/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/static/tokenwarden.css"><link rel="stylesheet" href="/static/ui.css"></head>
<body class="callback"><main class="card"><p class="brand">tokenwarden</p><h1 class="error">{reason}</h1>
<p>{msg}</p><p class="actions"><a href="/tokens">Back to tokenwarden</a></p></main></body></html>
"#,
            code = status.as_u16(),
            reason = escape(status.canonical_reason().unwrap_or("Error")),
            msg = escape(message),
        ),
    )
}

/// A secret shown this once (an app's API key, a webhook signing secret).
#[derive(askama::Template)]
#[template(path = "shown_once.html")]
pub struct ShownOnce {
    pub l: view::Layout,
    pub heading: String,
    pub what: String,
    pub secret: String,
    pub back: String,
    pub back_label: String,
}

/// Renders a template as a full HTML response with the security headers (R31).
pub fn page(t: &impl askama::Template) -> UiResult {
    Ok(html(StatusCode::OK, t.render()?))
}

pub fn page_with(status: StatusCode, t: &impl askama::Template) -> UiResult {
    Ok(html(status, t.render()?))
}

/// A 303 to `to` (after a POST).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn is_htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

/// Refuses requests a browser marks as coming from another site (R30).
pub fn cross_site(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        })
}

/// Only a local path may be a post-sign-in destination (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and newlines from URLs ("/\t/evil" becomes "//evil"): refuse any
        // control or space character, and anything that is not a plain local path.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 512
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_owned()
        }
        _ => "/tokens".to_owned(),
    }
}

/// Deny by default: every UI route but sign-in, setup and assets needs a valid session; every
/// non-GET request also needs the session's CSRF token and a same-origin `Sec-Fetch-Site`.
async fn require_session(State(ctx): State<AppContext>, req: Request, next: Next) -> Response {
    let session = match session::cookie_value(&ctx, req.headers()) {
        Some(v) => match crate::ops::admins::lookup(&ctx, &v).await {
            Ok(s) => s,
            Err(e) => return UiError::from(e).into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        return app_key_forbidden(&ctx, req)
            .await
            .unwrap_or_else(|req| signed_out(&ctx, &req));
    };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if cross_site(req.headers()) {
            return refuse(&ctx, &session, &route_of(&req), "cross-site request").await;
        }
        let header_token = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ok = match header_token {
            Some(t) => session::csrf_matches(&session, &t),
            None => {
                // Look for the form field; the body is put back for the handler.
                let (parts, body) = req.into_parts();
                let bytes = match axum::body::to_bytes(body, ctx.settings.max_body_bytes).await {
                    Ok(b) => b,
                    Err(_) => {
                        return UiError(ApiError::PayloadTooLarge(ctx.settings.max_body_bytes))
                            .into_response();
                    }
                };
                let found = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                    .ok()
                    .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf"))
                    .is_some_and(|(_, v)| session::csrf_matches(&session, &v));
                req = Request::from_parts(parts, Body::from(bytes));
                found
            }
        };
        if !ok {
            return refuse(
                &ctx,
                &session,
                &route_of(&req),
                "missing or wrong CSRF token",
            )
            .await;
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// An app's API key is a credential, but not an admin's: a UI request carrying a valid one (and
/// no session) is answered 403 `forbidden` (audited, as on the API's admin routes), not sent
/// to sign in. Any other request comes back to be answered as signed out.
async fn app_key_forbidden(ctx: &AppContext, req: Request) -> Result<Response, Request> {
    let app_key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|b| b.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .is_some_and(|k| k.trim().starts_with("tw_app_"));
    if !app_key {
        return Err(req);
    }
    let (mut parts, body) = req.into_parts();
    let who =
        <crate::auth::Admin as axum::extract::FromRequestParts<AppContext>>::from_request_parts(
            &mut parts, ctx,
        )
        .await;
    match who {
        Err(e @ ApiError::Forbidden) => Ok(e.into_response()),
        _ => Err(Request::from_parts(parts, body)),
    }
}

/// The answer to a request without a valid session. The sign-in page brings the admin back to
/// the page they were on (never to a POST's address, which has no page), and says when a session
/// ended rather than never existed. Script-made requests get a status they can act on: htmx a
/// 401 that ui.js turns into a "sign in again" banner (the page and what was typed stay), the
/// sign-in popup's JSON request a 401 with where to sign in.
fn signed_out(ctx: &AppContext, req: &Request) -> Response {
    let ended = session::cookie_value(ctx, req.headers()).is_some();
    let back = return_to(req);
    let to = format!(
        "/login?next={}{}",
        tokenwarden_oauth::snowflake::urlencode(&back),
        if ended { "&ended=1" } else { "" }
    );
    let says = if ended {
        "Your session has ended: sign in again."
    } else {
        "You are not signed in."
    };
    if is_htmx(req) {
        let mut res = (StatusCode::UNAUTHORIZED, says).into_response();
        if let Ok(v) = HeaderValue::from_str(&to) {
            res.headers_mut().insert("x-tokenwarden-login", v);
        }
        return res;
    }
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": says, "login": to})),
        )
            .into_response();
    }
    Redirect::to(&to).into_response()
}

/// The page to come back to after signing in: a GET's own address; for anything else the page
/// the request was made from (htmx says which), else the page its address belongs to
/// (`POST /tokens/{id}/edit` comes from `/tokens/{id}/edit`, `POST /tokens/{id}/test` from
/// `/tokens/{id}`).
fn return_to(req: &Request) -> String {
    let own = || {
        req.uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned())
    };
    if req.method() == Method::GET && !is_htmx(req) {
        return safe_next(Some(&own()));
    }
    if let Some(page) = req
        .headers()
        .get("hx-current-url")
        .and_then(|v| v.to_str().ok())
        .and_then(|u| u.parse::<axum::http::Uri>().ok())
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()))
    {
        return safe_next(Some(&page));
    }
    page_of(req.uri().path())
}

/// The page a UI address belongs to: itself if it is one, else the nearest page above it.
fn page_of(path: &str) -> String {
    let is_page = |segs: &[&str]| match segs {
        ["tokens" | "apps" | "notifications" | "audit"] | ["tokens", _, "edit"] => true,
        ["notifications", "lead-times"] => false,
        ["tokens" | "apps" | "notifications", _] => true,
        _ => false,
    };
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    while !segs.is_empty() {
        if is_page(&segs) {
            return safe_next(Some(&format!("/{}", segs.join("/"))));
        }
        segs.pop();
    }
    "/tokens".to_owned()
}

fn route_of(req: &Request) -> String {
    format!("{} {}", req.method(), req.uri().path())
}

async fn refuse(ctx: &AppContext, session: &AdminSession, route: &str, why: &str) -> Response {
    crate::ops::audit::record(
        ctx,
        &session.actor(),
        Action::AuthCsrfRefused,
        crate::ops::audit::Object {
            kind: "route",
            id: None,
            name: Some(route.to_owned()),
        },
        Outcome::Denied,
        serde_json::json!({"reason": why}),
    )
    .await;
    error_page(
        StatusCode::FORBIDDEN,
        &format!(
            "This request was refused ({why}). Reload the page and try again; forms from other sites cannot act here."
        ),
    )
}
