//! Request ids and the access log: one line per request, at INFO, naming the method, the route
//! template (never the raw path or the query string: a path can hold a token's name, a query an
//! OAuth code), the status, the duration and the request id.
//!
//! The read route (`GET /api/v1/access-tokens/{name}`, the hot path) is logged only when it
//! fails (4xx/5xx) or at DEBUG: apps read before each of their requests, and a line per read
//! would cost more than the read (issue 10).

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The header a request id comes in and goes out with.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The read route's template, as the access log names it; [`is_read`] tells its requests apart
/// (the unit test below checks it against the OpenAPI document).
pub const READ_ROUTE: &str = "/api/v1/access-tokens/{name}";

/// What a read's path starts with; the token's name follows ([`is_read`]).
pub const READ_PREFIX: &str = "/api/v1/access-tokens/";

/// The route the access line names for a request no route matched (a 404 or 405 fallback).
pub const UNMATCHED: &str = "(no route)";

/// The longest request id taken from a request.
const MAX_SENT_ID: usize = 128;

/// A request's id: the one the client or a proxy sent (`X-Request-Id`) when it is sane (1 to
/// 128 of `A-Z a-z 0-9 - _ . : @ + = /`), else a new one: 16 hex digits, a random prefix per
/// process and a counter, so ids from several instances do not collide. Making one allocates
/// nothing; the answer's header copies it once.
pub enum RequestId {
    Sent(HeaderValue),
    Made(u32, u32),
}

fn sane(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SENT_ID
        && b.iter().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'-' | b'_' | b'.' | b':' | b'@' | b'+' | b'=' | b'/')
        })
}

fn process_prefix() -> u32 {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(|| {
        let r = uuid::Uuid::new_v4().as_u128();
        (r ^ (r >> 64)) as u32
    })
}

impl RequestId {
    /// The id the request sent, when sane; else a new one.
    pub fn of(headers: &HeaderMap) -> Self {
        match headers.get(REQUEST_ID) {
            Some(v) if sane(v) => Self::Sent(v.clone()),
            _ => Self::new(),
        }
    }

    /// A new id.
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Self::Made(process_prefix(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a header value (a sent one is shared, not copied).
    pub fn header_value(&self) -> HeaderValue {
        match self {
            Self::Sent(v) => v.clone(),
            Self::Made(p, n) => {
                let mut buf = [0u8; 16];
                hex(&mut buf[..8], *p);
                hex(&mut buf[8..], *n);
                HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("-"))
            }
        }
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

fn hex(out: &mut [u8], v: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Sane ids are ASCII.
            Self::Sent(v) => f.write_str(v.to_str().unwrap_or("-")),
            Self::Made(p, n) => write!(f, "{p:08x}{n:08x}"),
        }
    }
}

/// Whether a request is for the read route, told from the method and path alone (before
/// routing, at no cost): `GET /api/v1/access-tokens/{name}`, one path segment after the prefix.
pub fn is_read(method: &Method, path: &str) -> bool {
    *method == Method::GET
        && path
            .strip_prefix(READ_PREFIX)
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The matched route's template, handed from inside the router to [`crate::guard`] in the
/// answer's extensions.
#[derive(Clone)]
pub struct Route(MatchedPath);

impl Route {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A per-route layer (every route but the read route): records the matched route's template
/// in the answer for the access line.
pub async fn record_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(Route(route));
    }
    res
}

/// Writes the access line of one request: at INFO, except a read that succeeded (DEBUG).
pub fn log(
    read: bool,
    method: &Method,
    route: &str,
    status: StatusCode,
    elapsed: Duration,
    id: &RequestId,
) {
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let status = status.as_u16();
    if read && status < 400 {
        tracing::debug!(
            target: "tokenwarden_server::access",
            method = %method, route = %route, status, duration_ms, request_id = %id, "request"
        );
    } else {
        tracing::info!(
            target: "tokenwarden_server::access",
            method = %method, route = %route, status, duration_ms, request_id = %id, "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_ids_are_taken_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(RequestId::of(&h).to_string(), "abc-123_x.y:z");
        for bad in ["has space", "quote\"", "", "semi;colon"] {
            h.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = RequestId::of(&h);
            assert!(matches!(id, RequestId::Made(..)), "{bad:?} was taken");
        }
        h.insert(REQUEST_ID, HeaderValue::from_str(&"a".repeat(129)).unwrap());
        assert!(matches!(RequestId::of(&h), RequestId::Made(..)));
    }

    #[test]
    fn made_ids_are_16_hex_digits_and_differ() {
        let a = RequestId::new();
        let b = RequestId::new();
        let (sa, sb) = (a.to_string(), b.to_string());
        assert_eq!(sa.len(), 16);
        assert!(sa.chars().all(|c| c.is_ascii_hexdigit()), "{sa}");
        assert_ne!(sa, sb);
        assert_eq!(a.header_value().to_str().unwrap(), sa);
    }

    #[test]
    fn the_read_route_is_the_documented_one() {
        let doc = crate::openapi();
        assert!(doc["paths"][READ_ROUTE]["get"].is_object(), "{READ_ROUTE}");
        let only_get = doc["paths"][READ_ROUTE].as_object().unwrap();
        assert_eq!(only_get.keys().filter(|k| *k != "parameters").count(), 1);
    }

    #[test]
    fn the_read_route_is_told_apart_by_method_and_one_segment() {
        assert!(is_read(&Method::GET, "/api/v1/access-tokens/sf"));
        assert!(!is_read(&Method::POST, "/api/v1/access-tokens/sf"));
        assert!(!is_read(&Method::GET, "/api/v1/access-tokens/"));
        assert!(!is_read(&Method::GET, "/api/v1/access-tokens/a/b"));
        assert!(!is_read(&Method::GET, "/api/v1/tokens/sf"));
    }
}
