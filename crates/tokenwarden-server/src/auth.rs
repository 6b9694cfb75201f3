//! Authentication, deny by default. Every `/api/v1` handler takes a [`Principal`] (any valid
//! credential) or an [`Admin`]; a request without a valid credential never reaches a handler.
//!
//! Credentials are bearer tokens: the bootstrap admin token from configuration, admin tokens made
//! with `tokenwarden admin token create`, and app API keys. Keys look like
//! `tw_app_<key id>_<secret>`: the id finds the row, the secret (256 random bits) is compared by
//! SHA-256 hash in constant time. Only the hash is stored.

use crate::AppContext;
use crate::cache::StoreGate;
use crate::error::ApiError;
use crate::ops::audit;
use crate::ops::audit::{Action, Outcome};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokenwarden_domain::{ApiKeyId, AppId, KeyLabel, Timestamp};
use tokenwarden_store::{ApiKeyKind, ApiKeyRecord};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin { label: String },
    App { app_id: AppId, key_id: ApiKeyId },
}

impl Principal {
    /// How the caller appears in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { label } => format!("admin:{label}"),
            Principal::App { app_id, .. } => format!("app:{app_id}"),
        }
    }
}

/// A caller that must be an admin.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

/// A freshly made key: the full secret text, shown once, and the row to store.
pub struct NewKey {
    pub text: SecretString,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

fn prefix(kind: ApiKeyKind) -> &'static str {
    match kind {
        ApiKeyKind::App => "tw_app_",
        ApiKeyKind::Admin => "tw_adm_",
    }
}

/// Makes a key with 256 bits of randomness.
pub fn new_key(kind: ApiKeyKind, app_id: Option<AppId>, label: KeyLabel, now: Timestamp) -> NewKey {
    let id = ApiKeyId(uuid::Uuid::new_v4());
    let secret_bytes: [u8; 32] = tokenwarden_crypto::random_bytes();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let text = format!("{}{}_{}", prefix(kind), id.0.simple(), secret);
    NewKey {
        record: ApiKeyRecord {
            id,
            kind,
            app_id,
            label,
            secret_hash: Sha256::digest(secret.as_bytes()).to_vec(),
            created_at: now,
            revoked_at: None,
        },
        text: text.into(),
    }
}

/// Splits `tw_app_<32 hex>_<secret>` into its kind, id and secret part.
fn parse_key(text: &str) -> Option<(ApiKeyKind, ApiKeyId, &str)> {
    let (kind, rest) = if let Some(r) = text.strip_prefix("tw_app_") {
        (ApiKeyKind::App, r)
    } else if let Some(r) = text.strip_prefix("tw_adm_") {
        (ApiKeyKind::Admin, r)
    } else {
        return None;
    };
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 {
        return None;
    }
    Some((kind, ApiKeyId::parse(id)?, secret))
}

/// The id of the admin token a request presents in its `Authorization` header, if it presents
/// one (not the bootstrap token, which has no id). Only the id, never the secret: used to
/// refuse revoking the token the request itself was made with.
pub fn presented_admin_key(headers: &axum::http::HeaderMap) -> Option<ApiKeyId> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?
        .trim();
    match parse_key(presented)? {
        (ApiKeyKind::Admin, id, _) => Some(id),
        _ => None,
    }
}

/// Query parameters that look like credentials; sending one is refused outright (R25).
const CREDENTIAL_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "admin_token",
];

fn credential_in_query(parts: &Parts) -> bool {
    parts.uri.query().is_some_and(query_has_credential)
}

/// Whether a query string names a credential parameter. Names are compared after
/// percent-decoding and lower-casing, and pairs are split on `&` and `;` (both separators are
/// accepted by common form parsers), so `api%5Fkey=` and `a=1;token=` are refused too.
fn query_has_credential(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let raw = pair.split('=').next().unwrap_or_default();
        // Each decoded byte takes at most three characters: a longer name cannot be one of ours.
        if raw.len() > 64 {
            return false;
        }
        let name = decode_param_name(raw);
        CREDENTIAL_PARAMS.contains(&name.as_str())
    })
}

/// `application/x-www-form-urlencoded` decoding of a parameter name, lower-cased; invalid
/// escapes are kept as they are.
fn decode_param_name(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = |c: u8| (c as char).to_digit(16);
        match b {
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8); // two hex digits: at most 255
                        i += 3;
                        continue;
                    }
                    _ => out.push(b),
                }
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

async fn authenticate(ctx: &AppContext, parts: &Parts) -> Result<Principal, ApiError> {
    if credential_in_query(parts) {
        return Err(ApiError::CredentialsInQuery);
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    if let Some(boot) = &ctx.settings.bootstrap_admin_token {
        let expected = boot.expose_secret().as_bytes();
        if !expected.is_empty() && bool::from(expected.ct_eq(presented.as_bytes())) {
            return Ok(Principal::Admin {
                label: "bootstrap".into(),
            });
        }
    }
    let (kind, id, secret) = parse_key(presented).ok_or(ApiError::Unauthorized)?;
    let now = ctx.clock.now();
    let record = match ctx.cache.key(id, now, false) {
        Some(r) => r,
        None => {
            let gate = ctx.cache.store_gate();
            let answer = match gate {
                // R16: the database is known down and another reader is trying it again.
                StoreGate::Skip => Err(tokenwarden_store::StoreError::Unavailable(
                    "the database is unreachable".into(),
                )),
                StoreGate::Open | StoreGate::Probe(_) => {
                    let answer = ctx.store.get_api_key(id).await;
                    ctx.cache.store_answered(!matches!(
                        answer,
                        Err(tokenwarden_store::StoreError::Unavailable(_))
                    ));
                    answer
                }
            };
            drop(gate);
            match answer {
                Ok(r) => {
                    let r = std::sync::Arc::new(r);
                    ctx.cache.put_key(std::sync::Arc::clone(&r), now);
                    r
                }
                Err(tokenwarden_store::StoreError::NotFound(_)) => {
                    return Err(ApiError::Unauthorized);
                }
                // Database down: a key seen recently still authenticates (R16).
                Err(e) => ctx
                    .cache
                    .key(id, now, true)
                    .ok_or_else(|| ApiError::from(e))?,
            }
        }
    };
    let hash = Sha256::digest(secret.as_bytes());
    let matches: bool = record.secret_hash.as_slice().ct_eq(hash.as_slice()).into();
    if !matches || record.kind != kind || record.revoked_at.is_some() {
        return Err(ApiError::Unauthorized);
    }
    Ok(match (record.kind, record.app_id) {
        (ApiKeyKind::App, Some(app_id)) => Principal::App {
            app_id,
            key_id: record.id,
        },
        (ApiKeyKind::Admin, _) => Principal::Admin {
            label: record.label.to_string(),
        },
        (ApiKeyKind::App, None) => return Err(ApiError::Unauthorized),
    })
}

/// What kind of credential a refused request presented, never the credential itself.
fn credential_kind(parts: &Parts) -> &'static str {
    let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return "none";
    };
    let value = header.as_bytes();
    let token = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
        _ => return "other",
    };
    if token.starts_with(b"tw_app_") {
        "tw_app_"
    } else if token.starts_with(b"tw_adm_") {
        "tw_adm_"
    } else {
        "bearer"
    }
}

/// The method and route pattern (`GET /api/v1/apps/{id}`) a request matched: a bounded set,
/// whatever paths are sent.
fn route_pattern(parts: &Parts) -> String {
    let pattern = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
        // The read route is answered without the router (`api::read_direct`).
        .or_else(|| {
            crate::access::is_read(&parts.method, parts.uri.path())
                .then_some(crate::access::READ_ROUTE)
        })
        .unwrap_or("(unmatched)");
    format!("{} {pattern}", parts.method)
}

impl FromRequestParts<AppContext> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, ApiError> {
        match authenticate(ctx, parts).await {
            Ok(p) => Ok(p),
            Err(e @ (ApiError::Unauthorized | ApiError::CredentialsInQuery)) => {
                // Counted in memory, audited in aggregate by the background pass (one row per
                // minute, route, credential kind and reason): a flood of bad requests cannot
                // fill the disk (issue 9, bug 3).
                let credential = if matches!(e, ApiError::CredentialsInQuery) {
                    "query"
                } else {
                    credential_kind(parts)
                };
                ctx.denials
                    .record(route_pattern(parts), credential, e.code(), ctx.clock.now());
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

impl FromRequestParts<AppContext> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, ApiError> {
        let p = Principal::from_request_parts(parts, ctx).await?;
        if matches!(p, Principal::Admin { .. }) {
            return Ok(Admin(p));
        }
        audit::record(
            ctx,
            &p.actor(),
            Action::AuthForbidden,
            audit::Object::route(parts),
            Outcome::Denied,
            serde_json::json!({ "reason": "admin only" }),
        )
        .await;
        Err(ApiError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r25_keys_carry_256_random_bits_and_only_their_hash_is_kept() {
        let now = tokenwarden_domain::ManualClock::at_epoch();
        let label = KeyLabel::parse("k").unwrap();
        let a = new_key(
            ApiKeyKind::App,
            None,
            label.clone(),
            tokenwarden_domain::Clock::now(&now),
        );
        let b = new_key(
            ApiKeyKind::App,
            None,
            label,
            tokenwarden_domain::Clock::now(&now),
        );
        assert_ne!(a.text.expose_secret(), b.text.expose_secret());
        let (kind, id, secret) = parse_key(a.text.expose_secret()).unwrap();
        assert_eq!((kind, id), (ApiKeyKind::App, a.record.id));
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(secret)
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            a.record.secret_hash,
            Sha256::digest(secret.as_bytes()).to_vec()
        );
        assert!(!format!("{a:?}").contains(secret));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in ["", "tw_app_", "tw_app_zz_secret", "tw_xyz_0123", "Bearer x"] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
