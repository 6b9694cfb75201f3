//! The UI's session cookie. Sign-in, sessions and admins themselves are core operations
//! ([`crate::ops::admins`]); this is only how a session travels over HTTP.

use crate::AppContext;
pub use crate::ops::admins::AdminSession;
use crate::ops::admins::{SESSION_MAX, sha256_hex};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Is the public URL https (then the cookie is `Secure` and `__Host-` prefixed)?
pub fn secure(ctx: &AppContext) -> bool {
    ctx.settings.public_url.starts_with("https://")
}

pub fn cookie_name(ctx: &AppContext) -> &'static str {
    if secure(ctx) {
        "__Host-tw_session"
    } else {
        "tw_session"
    }
}

/// The `Set-Cookie` value for a new session.
pub fn set_cookie(ctx: &AppContext, value: &SecretString) -> String {
    format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        cookie_name(ctx),
        value.expose_secret(),
        SESSION_MAX.num_seconds(),
        if secure(ctx) { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(ctx: &AppContext) -> String {
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        cookie_name(ctx),
        if secure(ctx) { "; Secure" } else { "" }
    )
}

/// Our session cookie's value from the request's `Cookie` headers.
pub fn cookie_value(ctx: &AppContext, headers: &axum::http::HeaderMap) -> Option<String> {
    let name = cookie_name(ctx);
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The hash of the session cookie a request carries (for binding OAuth flows), if any.
pub fn session_hash(ctx: &AppContext, headers: &axum::http::HeaderMap) -> Option<String> {
    cookie_value(ctx, headers).map(|v| sha256_hex(&v))
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_matches(session: &AdminSession, presented: &str) -> bool {
    !presented.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}
