//! `/oauth/authorize` (sign-in and consent pages) and `/oauth/token-request`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::html::{esc, found, page, respond};
use crate::state::{
    AccessEntry, AuthRequest, ClientType, CodeEntry, Grant, Inner, PendingConsent, RefreshEntry,
};
use crate::{Emulator, Fault, random};

pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/oauth/authorize", get(authorize_page).post(sign_in))
        .route("/oauth/authorize/consent", post(consent))
        .route("/oauth/token-request", post(token_request))
}

const CODE_LIFETIME_SECS: i64 = 600;
const MAX_STATE_LEN: usize = 2048;

fn params(raw: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

/// `uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let q = ser.finish();
    // A redirect URI has no fragment (RFC 6749 3.1.2); drop one if present.
    let base = uri.split_once('#').map_or(uri, |(b, _)| b);
    let sep = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    format!("{base}{sep}{q}")
}

enum AuthorizeError {
    /// Cannot be sent back to the client: shown to the person.
    Page {
        code: &'static str,
        title: &'static str,
        message: String,
    },
    /// Sent back to the redirect URI.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl AuthorizeError {
    fn into_response(self, account: &str) -> Response {
        match self {
            AuthorizeError::Page {
                code,
                title,
                message,
            } => error_page(account, code, title, &message),
            AuthorizeError::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut pairs = vec![
                    ("error", error),
                    ("error_description", description.as_str()),
                ];
                if let Some(s) = state.as_deref() {
                    pairs.push(("state", s));
                }
                found(&with_query(&redirect_uri, &pairs))
            }
        }
    }
}

fn error_page(account: &str, code: &str, title: &str, message: &str) -> Response {
    let body = format!(
        "<div class=\"card narrow\"><h1>{}</h1><p class=\"sub\">Error {}</p><div class=\"error\">{}</div>\
         <p class=\"meta\" style=\"margin-top:14px\">You can close this window and return to the application.</p></div>",
        esc(title),
        esc(code),
        esc(message)
    );
    respond(StatusCode::BAD_REQUEST, page(title, account, None, &body))
}

fn redirect_err(
    req_redirect: &str,
    state: Option<&String>,
    error: &'static str,
    description: String,
) -> AuthorizeError {
    AuthorizeError::Redirect {
        redirect_uri: req_redirect.to_string(),
        error,
        description,
        state: state.cloned(),
    }
}

/// Validates the query of `/oauth/authorize` as Snowflake does.
fn validate(inner: &Inner, q: &HashMap<String, String>) -> Result<AuthRequest, AuthorizeError> {
    let client_id = q.get("client_id").map(String::as_str).unwrap_or_default();
    let Some(integ) = inner.integration_by_client_id(client_id) else {
        return Err(AuthorizeError::Page {
            code: "390306",
            title: "Invalid client",
            message: if client_id.is_empty() {
                "The request has no client_id.".to_string()
            } else {
                format!(
                    "Invalid client_id '{client_id}': no OAuth security integration in this account has this client id. \
                     Copy OAUTH_CLIENT_ID from SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('<INTEGRATION>')."
                )
            },
        });
    };
    let redirect_uri_sent = q.contains_key("redirect_uri");
    let redirect_uri = match q.get("redirect_uri") {
        Some(uri) if integ.redirect_allowed(uri) => uri.clone(),
        Some(uri) => {
            return Err(AuthorizeError::Page {
                code: "390307",
                title: "Redirect URI mismatch",
                message: format!(
                    "The redirect_uri '{uri}' does not match OAUTH_REDIRECT_URI of integration {} ('{}'). \
                     They must be exactly equal.",
                    integ.name, integ.redirect_uri
                ),
            });
        }
        None => integ.redirect_uri.clone(),
    };
    if !integ.enabled {
        return Err(AuthorizeError::Page {
            code: "390306",
            title: "Integration disabled",
            message: format!(
                "The security integration {} is disabled (ENABLED = FALSE). An administrator must run \
                 ALTER SECURITY INTEGRATION {} SET ENABLED = TRUE;",
                integ.name, integ.name
            ),
        });
    }
    let state = q.get("state");
    if let Some(s) = state
        && (s.len() > MAX_STATE_LEN || !s.is_ascii())
    {
        return Err(redirect_err(
            &redirect_uri,
            None,
            "invalid_request",
            format!(
                "The state parameter must be at most {MAX_STATE_LEN} ASCII characters. (390305)"
            ),
        ));
    }
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        other => {
            return Err(redirect_err(
                &redirect_uri,
                state,
                "unsupported_response_type",
                format!(
                    "Invalid response_type '{}'; only 'code' is supported. (390304)",
                    other.unwrap_or_default()
                ),
            ));
        }
    }
    let mut wants_refresh_token = false;
    let mut role: Option<String> = None;
    for item in q
        .get("scope")
        .map(String::as_str)
        .unwrap_or_default()
        .split_whitespace()
    {
        let named = if item == "refresh_token" {
            wants_refresh_token = true;
            continue;
        } else if let Some(r) = item.strip_prefix("session:role:") {
            r.to_string()
        } else if let Some(r) = item.strip_prefix("session:role-encoded:") {
            percent_encoding::percent_decode_str(r)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            let hint = if item == "offline_access" {
                " Snowflake does not use offline_access; request the refresh_token scope instead."
            } else {
                ""
            };
            return Err(redirect_err(
                &redirect_uri,
                state,
                "invalid_scope",
                format!("Invalid scope '{item}'.{hint} (390308)"),
            ));
        };
        if named.is_empty() || role.is_some() {
            return Err(redirect_err(
                &redirect_uri,
                state,
                "invalid_scope",
                "At most one non-empty session:role scope may be requested. (390308)".to_string(),
            ));
        }
        role = Some(named);
    }
    let challenge = q.get("code_challenge");
    let method = q.get("code_challenge_method");
    let code_challenge = match (challenge, method) {
        (None, None) if integ.enforce_pkce => {
            return Err(redirect_err(
                &redirect_uri,
                state,
                "invalid_request",
                format!(
                    "Integration {} requires PKCE (OAUTH_ENFORCE_PKCE = TRUE): send code_challenge and \
                     code_challenge_method=S256. (390311)",
                    integ.name
                ),
            ));
        }
        (None, None) => None,
        (Some(c), Some(m)) if m == "S256" && is_pkce_value(c) && c.len() == 43 => Some(c.clone()),
        _ => {
            return Err(redirect_err(
                &redirect_uri,
                state,
                "invalid_request",
                "Invalid code_challenge parameters: send both code_challenge (BASE64URL(SHA256(verifier)), \
                 43 characters) and code_challenge_method=S256. (390311)"
                    .to_string(),
            ));
        }
    };
    if let Some(r) = &role
        && integ.is_blocked(r)
    {
        return Err(redirect_err(
            &redirect_uri,
            state,
            "invalid_scope",
            blocked_message(r, &integ.name),
        ));
    }
    Ok(AuthRequest {
        client_id: integ.client_id.clone(),
        integration: integ.name.clone(),
        redirect_uri,
        redirect_uri_sent,
        state: state.cloned(),
        wants_refresh_token,
        role,
        code_challenge,
    })
}

fn blocked_message(role: &str, integration: &str) -> String {
    format!(
        "Role '{role}' is blocked for OAuth by security integration {integration}: ACCOUNTADMIN, SECURITYADMIN, \
         ORGADMIN and GLOBALORGADMIN are always blocked, and BLOCKED_ROLES_LIST adds more. Request another \
         role with the scope session:role:<ROLE>. (390308)"
    )
}

fn is_pkce_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn authorize_page(State(emu): State<Emulator>, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let inner = emu.lock();
    match validate(&inner, &params(raw.as_bytes())) {
        Ok(req) => sign_in_page(&inner, &raw, &req, None),
        Err(e) => e.into_response(&inner.account),
    }
}

fn sign_in_page(
    inner: &Inner,
    raw_query: &str,
    req: &AuthRequest,
    error: Option<&str>,
) -> Response {
    let role_note = match &req.role {
        Some(r) => format!("with role <span class=\"role\">{}</span>", esc(r)),
        None => "with your default role".to_string(),
    };
    let err = error
        .map(|e| format!("<div class=\"error\">{}</div>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<div class=\"card narrow\"><h1>Sign in to Snowflake</h1>\
         <p class=\"sub\"><b>{client}</b> is requesting access to account <b>{account}</b> {role_note}.</p>{err}\
         <form method=\"post\" action=\"/oauth/authorize?{action}\">\
         <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autofocus required>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button type=\"submit\">Sign in</button></div></form></div>",
        client = esc(&req.integration),
        account = esc(&inner.account),
        action = esc(raw_query),
    );
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    respond(status, page("Sign in", &inner.account, None, &body))
}

fn granted_scope(refresh: bool, role: &str) -> String {
    let role_scope = if role
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    {
        format!("session:role:{role}")
    } else {
        let enc = percent_encoding::utf8_percent_encode(role, percent_encoding::NON_ALPHANUMERIC);
        format!("session:role-encoded:{enc}")
    };
    if refresh {
        format!("refresh_token {role_scope}")
    } else {
        role_scope
    }
}

/// Issues a code for `req` and returns the redirect to the client.
fn issue_code(inner: &mut Inner, req: AuthRequest, user: String, role: String) -> Response {
    let code = random::id();
    let refresh = req.wants_refresh_token
        && inner
            .integration_by_client_id(&req.client_id)
            .is_some_and(|i| i.issue_refresh_tokens);
    let scope = granted_scope(refresh, &role);
    let expires_at = inner.now() + chrono::Duration::seconds(CODE_LIFETIME_SECS);
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = req.state.as_deref() {
        pairs.push(("state", s));
    }
    pairs.push(("scope", scope.as_str()));
    let location = with_query(&req.redirect_uri, &pairs);
    inner.codes.insert(
        code.clone(),
        CodeEntry {
            request: req,
            user,
            role,
            expires_at,
            used: false,
            grant: None,
        },
    );
    found(&location)
}

async fn sign_in(State(emu): State<Emulator>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let raw = raw.unwrap_or_default();
    let form = params(&body);
    let mut inner = emu.lock();
    let req = match validate(&inner, &params(raw.as_bytes())) {
        Ok(req) => req,
        Err(e) => return e.into_response(&inner.account),
    };
    let username = form
        .get("username")
        .map(|u| u.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let Some(user) = inner
        .users
        .get(&username)
        .filter(|u| u.password == password)
        .cloned()
    else {
        return sign_in_page(
            &inner,
            &raw,
            &req,
            Some("Incorrect username or password was specified."),
        );
    };
    let Some(integ) = inner.integration_by_client_id(&req.client_id).cloned() else {
        return error_page(
            &inner.account,
            "390306",
            "Invalid client",
            "The integration no longer exists.",
        );
    };
    let role = req
        .role
        .clone()
        .unwrap_or_else(|| user.default_role.clone());
    if integ.is_blocked(&role) {
        let mut msg = blocked_message(&role, &integ.name);
        if req.role.is_none() {
            msg = format!("No role was requested, so the user's default role was used. {msg}");
        }
        return redirect_err(&req.redirect_uri, req.state.as_ref(), "invalid_scope", msg)
            .into_response(&inner.account);
    }
    if !user.roles.contains(&role) {
        let msg = format!(
            "The role requested ('{role}') is not granted to user {}. Role names are case-sensitive in the scope. (390308)",
            user.name
        );
        return redirect_err(&req.redirect_uri, req.state.as_ref(), "invalid_scope", msg)
            .into_response(&inner.account);
    }
    if integ.client_type == ClientType::Confidential && integ.pre_authorized_roles.contains(&role) {
        return issue_code(&mut inner, req, user.name, role);
    }
    let consent_id = random::id();
    let expires_at = inner.now() + chrono::Duration::seconds(CODE_LIFETIME_SECS);
    let body = format!(
        "<div class=\"card narrow\"><h1>Allow access?</h1>\
         <p><b>{client}</b> wants to access your Snowflake account <b>{account}</b> as role <span class=\"role\">{role}</span>.</p>\
         <p class=\"meta\">Signed in as <b>{user}</b>.{refresh}</p>\
         <form method=\"post\" action=\"/oauth/authorize/consent\">\
         <input type=\"hidden\" name=\"consent_id\" value=\"{consent_id}\">\
         <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></div></form></div>",
        client = esc(&integ.name),
        account = esc(&inner.account),
        role = esc(&role),
        user = esc(&user.name),
        refresh = if req.wants_refresh_token && integ.issue_refresh_tokens {
            " The application will keep access until you revoke it or the refresh token expires."
        } else {
            ""
        },
        consent_id = esc(&consent_id),
    );
    inner.consents.insert(
        consent_id.clone(),
        PendingConsent {
            request: req,
            user: user.name,
            role,
            expires_at,
        },
    );
    let mut resp = respond(
        StatusCode::OK,
        page("Allow access", &inner.account, None, &body),
    );
    if let Ok(v) = HeaderValue::from_str(&consent_id) {
        resp.headers_mut().insert("x-emulator-consent-id", v);
    }
    resp
}

async fn consent(State(emu): State<Emulator>, body: Bytes) -> Response {
    let form = params(&body);
    let mut inner = emu.lock();
    let now = inner.now();
    let id = form.get("consent_id").cloned().unwrap_or_default();
    let Some(pending) = inner.consents.remove(&id).filter(|p| p.expires_at > now) else {
        return error_page(
            &inner.account,
            "390302",
            "Invalid consent request",
            "This consent request is unknown, was already answered, or has expired. Start again from the application.",
        );
    };
    match form.get("decision").map(String::as_str) {
        Some("allow") => issue_code(&mut inner, pending.request, pending.user, pending.role),
        Some("deny") => redirect_err(
            &pending.request.redirect_uri,
            pending.request.state.as_ref(),
            "access_denied",
            "The user denied the authorization request.".to_string(),
        )
        .into_response(&inner.account),
        _ => error_page(
            &inner.account,
            "390302",
            "Invalid consent request",
            "decision must be allow or deny.",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoint

struct TokenError {
    error: &'static str,
    message: String,
}

impl TokenError {
    fn invalid_client() -> Self {
        TokenError {
            error: "invalid_client",
            message: "This is an invalid client.".to_string(),
        }
    }
    fn invalid_grant(message: impl Into<String>) -> Self {
        TokenError {
            error: "invalid_grant",
            message: message.into(),
        }
    }
    fn invalid_request(message: impl Into<String>) -> Self {
        TokenError {
            error: "invalid_request",
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    data: Option<()>,
    message: &'a str,
    code: Option<()>,
    success: bool,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            data: None,
            message: &self.message,
            code: None,
            success: false,
            error: self.error,
            error_description: (self.error == "invalid_grant").then_some(self.message.as_str()),
        };
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

#[derive(Serialize)]
struct CodeResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    token_type: &'static str,
    username: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<i64>,
    #[serde(rename = "idpInitiated")]
    idp_initiated: bool,
    expires_in: u64,
}

#[derive(Serialize)]
struct RefreshResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<i64>,
    #[serde(rename = "idpInitiated")]
    idp_initiated: bool,
    expires_in: u64,
}

fn html_error(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>{status}</title></head><body><h1>{title}</h1>\
         <p>The server is temporarily unable to service your request. Please try again later.</p></body></html>"
    );
    respond(status, body)
}

/// Counts a token request in flight while it lives.
struct InFlight(Emulator);

impl InFlight {
    fn start(emu: &Emulator) -> (Self, std::time::Duration) {
        let mut inner = emu.lock();
        inner.token_requests_in_flight += 1;
        inner.token_requests_in_flight_max = inner
            .token_requests_in_flight_max
            .max(inner.token_requests_in_flight);
        (InFlight(emu.clone()), inner.token_latency)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.token_requests_in_flight = inner.token_requests_in_flight.saturating_sub(1);
    }
}

async fn token_request(State(emu): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let (_in_flight, latency) = InFlight::start(&emu);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = {
        let mut inner = emu.lock();
        inner.counters.token_requests += 1;
        let fault = match &mut inner.fault {
            Some((fault, left)) => {
                let f = *fault;
                *left = left.saturating_sub(1);
                if *left == 0 {
                    inner.fault = None;
                }
                Some(f)
            }
            None => None,
        };
        if fault.is_some() {
            inner.counters.faulted_token_requests += 1;
        }
        fault
    };
    match fault {
        Some(Fault::ServerError) => {
            return html_error(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable");
        }
        Some(Fault::Timeout) => {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            return html_error(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out");
        }
        Some(Fault::Garbage) => {
            let mut resp = (
                StatusCode::OK,
                "<html><body>Snowflake is undergoing maintenance</body></html>",
            )
                .into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return resp;
        }
        Some(Fault::MissingAccessToken) => {
            return (
                StatusCode::OK,
                axum::Json(serde_json::json!({"token_type": "Bearer", "idpInitiated": false, "expires_in": 600})),
            )
                .into_response();
        }
        None => {}
    }

    let form = params(&body);
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    if grant_type == "refresh_token"
        && let Some(presented) = form.get("refresh_token")
    {
        *emu.lock()
            .refresh_requests_by_token
            .entry(presented.clone())
            .or_default() += 1;
    }
    let hold = if grant_type == "refresh_token" {
        emu.lock().refresh_hold.take()
    } else {
        None
    };
    let hold = match hold {
        Some(h) if h.point == crate::HoldPoint::BeforeGrant => {
            let _ = h.held.send(());
            if h.release.await == Ok(false) {
                return html_error(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable");
            }
            None
        }
        other => other,
    };
    let result = {
        let mut inner = emu.lock();
        let result = token_inner(&mut inner, &headers, &form, &grant_type);
        let counters = &mut inner.counters;
        match (grant_type.as_str(), result.is_ok()) {
            ("authorization_code", true) => counters.authorization_code_grants_ok += 1,
            ("authorization_code", false) => counters.authorization_code_grants_failed += 1,
            ("refresh_token", true) => counters.refresh_token_grants_ok += 1,
            ("refresh_token", false) => counters.refresh_token_grants_failed += 1,
            _ => {}
        }
        result
    };
    if let Some(h) = hold {
        let _ = h.held.send(());
        let _ = h.release.await;
    }
    match result {
        Ok(resp) => {
            let mut resp = resp;
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn token_inner(
    inner: &mut Inner,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    grant_type: &str,
) -> Result<Response, TokenError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(TokenError::invalid_request(
            "The token request must be sent as Content-Type: application/x-www-form-urlencoded.",
        ));
    }
    let client_id = authenticate(inner, headers, form)?;
    match grant_type {
        "authorization_code" => code_grant(inner, &client_id, form),
        "refresh_token" => refresh_grant(inner, &client_id, form),
        "" => Err(TokenError::invalid_request(
            "Missing required parameter 'grant_type'.",
        )),
        other => Err(TokenError {
            error: "unsupported_grant_type",
            message: format!("Unsupported grant type '{other}'."),
        }),
    }
}

/// Client authentication: Basic (URL-encoded or raw id:secret), or client_id/client_secret
/// in the body. Returns the client id.
fn authenticate(
    inner: &Inner,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, TokenError> {
    let secret_ok = |id: &str, secret: &str| {
        inner
            .integration_by_client_id(id)
            .is_some_and(|i| i.enabled && (i.secret == secret || i.secret_2 == secret))
    };
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let auth = auth.to_str().map_err(|_| TokenError::invalid_client())?;
        let Some((scheme, encoded)) = auth.trim().split_once(' ') else {
            return Err(TokenError::invalid_client());
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(TokenError::invalid_client());
        }
        let encoded = encoded.trim();
        let decoded = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')))
            .map_err(|_| TokenError::invalid_client())?;
        let decoded = String::from_utf8(decoded).map_err(|_| TokenError::invalid_client())?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(TokenError::invalid_client)?;
        if secret_ok(id, secret) {
            return Ok(id.to_string());
        }
        let pct = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
        };
        if let (Ok(id), Ok(secret)) = (pct(id), pct(secret))
            && secret_ok(&id, &secret)
        {
            return Ok(id);
        }
        return Err(TokenError::invalid_client());
    }
    let Some(id) = form.get("client_id") else {
        return Err(TokenError::invalid_client());
    };
    match form.get("client_secret") {
        Some(secret) if secret_ok(id, secret) => Ok(id.clone()),
        Some(_) => Err(TokenError::invalid_client()),
        None => {
            let public = inner
                .integration_by_client_id(id)
                .is_some_and(|i| i.enabled && i.client_type == ClientType::Public);
            if public {
                Ok(id.clone())
            } else {
                Err(TokenError::invalid_client())
            }
        }
    }
}

fn remaining(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (expires_at - now).num_seconds().max(0)
}

fn issue_access_token(inner: &mut Inner, grant: u64, user: &str, role: &str, ttl: u64) -> String {
    let token = random::token(1);
    let expires_at = inner.now() + chrono::Duration::seconds(ttl as i64);
    inner.access_tokens.insert(
        token.clone(),
        AccessEntry {
            grant: Some(grant),
            user: user.to_string(),
            role: role.to_string(),
            expires_at,
            valid: true,
        },
    );
    token
}

fn code_grant(
    inner: &mut Inner,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Response, TokenError> {
    let code = form
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| TokenError::invalid_request("Missing required parameter 'code'."))?;
    let now = inner.now();
    let Some(entry) = inner.codes.get_mut(code) else {
        return Err(TokenError::invalid_grant("Invalid authorization code."));
    };
    if entry.request.client_id != client_id {
        return Err(TokenError::invalid_grant(
            "The authorization code was issued to another client.",
        ));
    }
    if entry.used {
        let grant = entry.grant;
        if let Some(g) = grant {
            inner.revoke_grant(g);
        }
        return Err(TokenError::invalid_grant(
            "The authorization code has already been used; tokens issued from it are revoked.",
        ));
    }
    entry.used = true;
    let entry = entry.clone();
    if now > entry.expires_at {
        return Err(TokenError::invalid_grant(
            "The authorization code has expired.",
        ));
    }
    let sent_redirect = form.get("redirect_uri");
    let redirect_ok = match sent_redirect {
        Some(uri) => *uri == entry.request.redirect_uri,
        None => !entry.request.redirect_uri_sent,
    };
    if !redirect_ok {
        return Err(TokenError::invalid_grant(
            "The redirect_uri does not match the one of the authorization request.",
        ));
    }
    if let Some(challenge) = &entry.request.code_challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return Err(TokenError::invalid_grant(
                "Missing code_verifier for a PKCE authorization code.",
            ));
        };
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !(43..=128).contains(&verifier.len())
            || !is_pkce_value(verifier)
            || computed != *challenge
        {
            return Err(TokenError::invalid_grant(
                "The code_verifier does not match the code_challenge.",
            ));
        }
    }
    let Some(integ) = inner.integration_by_client_id(client_id).cloned() else {
        return Err(TokenError::invalid_client());
    };
    let single_use = integ.single_use_refresh_tokens
        || form
            .get("enable_single_use_refresh_tokens")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let issue_refresh = integ.issue_refresh_tokens && entry.request.wants_refresh_token;
    let refresh_expires_at =
        issue_refresh.then(|| now + chrono::Duration::seconds(integ.refresh_token_validity as i64));
    let grant_id = inner.next_grant;
    inner.next_grant += 1;
    inner.grants.insert(
        grant_id,
        Grant {
            client_id: client_id.to_string(),
            integration: integ.name.clone(),
            user: entry.user.clone(),
            role: entry.role.clone(),
            refresh_expires_at,
            single_use,
            revoked: false,
        },
    );
    if let Some(e) = inner.codes.get_mut(code) {
        e.grant = Some(grant_id);
    }
    let ttl = integ
        .access_token_validity
        .unwrap_or(inner.access_token_ttl);
    let access_token = issue_access_token(inner, grant_id, &entry.user, &entry.role, ttl);
    let refresh_token = refresh_expires_at.map(|_| {
        let t = random::token(2);
        inner.refresh_tokens.insert(
            t.clone(),
            RefreshEntry {
                grant: grant_id,
                current: true,
            },
        );
        t
    });
    let body = CodeResponse {
        access_token,
        refresh_token,
        token_type: "Bearer",
        username: entry.user.clone(),
        scope: granted_scope(issue_refresh, &entry.role),
        refresh_token_expires_in: refresh_expires_at.map(|e| remaining(e, now)),
        idp_initiated: false,
        expires_in: ttl,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn refresh_grant(
    inner: &mut Inner,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Response, TokenError> {
    let token = form
        .get("refresh_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            TokenError::invalid_request("Missing required parameter 'refresh_token'.")
        })?;
    let now = inner.now();
    let Some(entry) = inner.refresh_tokens.get(token).cloned() else {
        return Err(TokenError::invalid_grant(
            "Unknown or invalid refresh token.",
        ));
    };
    let Some(grant) = inner.grants.get(&entry.grant).cloned() else {
        return Err(TokenError::invalid_grant(
            "Unknown or invalid refresh token.",
        ));
    };
    if grant.client_id != client_id {
        return Err(TokenError::invalid_grant(
            "The refresh token was issued to another client.",
        ));
    }
    if grant.revoked {
        return Err(TokenError::invalid_grant(
            "The refresh token has been revoked.",
        ));
    }
    if !entry.current {
        inner.revoke_grant(entry.grant);
        return Err(TokenError::invalid_grant(
            "This single-use refresh token was already used; every token of this authorization is now revoked.",
        ));
    }
    let Some(expires_at) = grant.refresh_expires_at else {
        return Err(TokenError::invalid_grant(
            "Unknown or invalid refresh token.",
        ));
    };
    if now >= expires_at {
        return Err(TokenError::invalid_grant("The refresh token has expired."));
    }
    if let Some(scope) = form.get("scope") {
        for item in scope.split_whitespace() {
            let role = if item == "refresh_token" {
                continue;
            } else if let Some(r) = item.strip_prefix("session:role:") {
                r.to_string()
            } else if let Some(r) = item.strip_prefix("session:role-encoded:") {
                percent_encoding::percent_decode_str(r)
                    .decode_utf8_lossy()
                    .into_owned()
            } else {
                return Err(TokenError::invalid_grant(format!(
                    "Invalid scope '{item}' for a refresh."
                )));
            };
            if role != grant.role {
                return Err(TokenError::invalid_grant(format!(
                    "The scope asks for role '{role}' but the refresh token was granted for role '{}'.",
                    grant.role
                )));
            }
        }
    }
    let Some(integ) = inner.integration_by_client_id(client_id).cloned() else {
        return Err(TokenError::invalid_client());
    };
    let ttl = integ
        .access_token_validity
        .unwrap_or(inner.access_token_ttl);
    let mut new_refresh = None;
    if grant.single_use {
        for a in inner.access_tokens.values_mut() {
            if a.grant == Some(entry.grant) {
                a.valid = false;
            }
        }
        if let Some(e) = inner.refresh_tokens.get_mut(token) {
            e.current = false;
        }
        let t = random::token(2);
        inner.refresh_tokens.insert(
            t.clone(),
            RefreshEntry {
                grant: entry.grant,
                current: true,
            },
        );
        new_refresh = Some(t);
    }
    let access_token = issue_access_token(inner, entry.grant, &grant.user, &grant.role, ttl);
    let body = RefreshResponse {
        access_token,
        refresh_token_expires_in: new_refresh.as_ref().map(|_| remaining(expires_at, now)),
        refresh_token: new_refresh,
        token_type: "Bearer",
        idp_initiated: false,
        expires_in: ttl,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}
