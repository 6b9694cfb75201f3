//! Admins: accounts that sign in to the web UI (sign-in, sessions, the one-time setup link;
//! R29-R32) and admin tokens for the API.
//!
//! - Passwords are stored as argon2id PHC strings; an unknown username is checked against a
//!   dummy hash so both failures take about as long and answer the same.
//! - A session cookie carries 256 random bits; the database keeps only its SHA-256. Each sign-in
//!   makes a new value; sign-out deletes the row. Sessions end 12 h after sign-in or after 2 h
//!   without a request.
//! - `SameSite=Lax`, deliberately not `Strict`: the provider sends the sign-in popup back to
//!   `/oauth/callback` with a cross-site top-level GET, and the callback needs the cookie to
//!   check that the flow returns to the session that started it. Lax is safe here because no
//!   UI GET changes anything, and every POST needs the session's CSRF token as well.
//! - Failed sign-ins are counted per client address and per username ([`login`]): an address
//!   with 5 failures waits 1 minute, doubling up to 15, refused with 429 meanwhile; checks of a
//!   username with 5 failures are delayed (250 ms doubling up to 4 s), never refused. Failures
//!   are forgotten 15 minutes after the last one.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use subtle::ConstantTimeEq;
use tokenwarden_domain::Timestamp;
use tokenwarden_store::{AdminRecord, SessionRecord, StoreError};

/// Absolute session lifetime.
pub const SESSION_MAX: chrono::Duration = chrono::Duration::hours(12);
/// Idle timeout.
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::hours(2);
/// Failed sign-ins from one client address before it must wait between attempts (R32: 429).
pub const MAX_FAILURES: u32 = 5;
/// Failures (of an address, of a username) are forgotten after this long without a new one.
pub const FAILURE_MEMORY: chrono::Duration = chrono::Duration::minutes(15);
/// How long a sign-in waits for its turn (one check per address and per username at a time)
/// and for a password-hashing permit before it is turned away as busy (never counted as a
/// failed password).
pub const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the one-time setup link works.
pub const SETUP_LINK_TTL: chrono::Duration = chrono::Duration::hours(1);
pub const MIN_PASSWORD: usize = 12;
const SETUP_META_KEY: &str = "ui_setup_link";

/// At most this many password checks run at once (argon2id holds ~19 MiB each): a burst of
/// sign-ins cannot exhaust memory.
const MAX_CONCURRENT_CHECKS: usize = 4;

/// How long an address with `failures` recent failed sign-ins must wait after its last one:
/// nothing below [`MAX_FAILURES`], then 1 minute, doubling with each further failure, at most
/// 15 minutes. Attempts inside the wait are refused with 429 unchecked (and not counted).
pub fn address_delay(failures: u32) -> chrono::Duration {
    match failures.checked_sub(MAX_FAILURES) {
        None => chrono::Duration::zero(),
        Some(extra) => {
            chrono::Duration::minutes(1 << extra.min(4)).min(chrono::Duration::minutes(15))
        }
    }
}

/// How long a password check for a username with `failures` recent failures (from any
/// address) is delayed: nothing below [`MAX_FAILURES`], then 250 ms doubling, at most 4 s. A
/// delay, never a refusal: whoever has the right password gets in, from any address, however
/// hard another address hammers the username; a guesser gets one check per delay.
pub fn username_delay(failures: u32) -> std::time::Duration {
    match failures.checked_sub(MAX_FAILURES) {
        None => std::time::Duration::ZERO,
        Some(extra) => std::time::Duration::from_millis(250 << extra.min(4)),
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Timestamp,
}

/// In-memory sign-in state: recent failures by key (`user:<name>` / `ip:<addr>`), one check at
/// a time per key, and the permits for the (memory-hungry) password checks.
#[derive(Debug)]
pub struct UiState {
    failures: Mutex<HashMap<String, Failures>>,
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    checks: tokio::sync::Semaphore,
    /// Shown-once pages already shown (`ui::shown_once`), by nonce, until they expire anyway.
    shown: Mutex<HashMap<String, Timestamp>>,
}

impl Default for UiState {
    fn default() -> Self {
        Self {
            failures: Mutex::default(),
            turns: Mutex::default(),
            checks: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
            shown: Mutex::default(),
        }
    }
}

impl UiState {
    /// Marks the shown-once page `nonce` (valid until `until`) as shown: true the first time
    /// only, so a replayed cookie shows nothing on this instance.
    pub fn first_showing(&self, nonce: &str, until: Timestamp, now: Timestamp) -> bool {
        let mut map = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, u| *u >= now);
        map.insert(nonce.to_owned(), until).is_none()
    }

    /// Waits (at most [`TURN_WAIT`]) until no other sign-in with this key is being checked: a
    /// parallel burst is checked one by one, each seeing the failures of the ones before.
    async fn turn(&self, key: &str) -> Result<tokio::sync::OwnedMutexGuard<()>, LoginError> {
        let lock = {
            let mut map = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > 1_000 {
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            map.entry(key.to_owned()).or_default().clone()
        };
        tokio::time::timeout(TURN_WAIT, lock.lock_owned())
            .await
            .map_err(|_| LoginError::Busy)
    }

    /// The recent failures of `key` (0 once [`FAILURE_MEMORY`] has passed since the last).
    fn failures(&self, key: &str, now: Timestamp) -> Option<Failures> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .copied()
            .filter(|f| now - f.last <= FAILURE_MEMORY)
    }

    /// How long the address `key` must still wait before its next attempt, if at all.
    fn address_wait(&self, key: &str, now: Timestamp) -> Option<chrono::Duration> {
        let f = self.failures(key, now)?;
        let until = f.last + address_delay(f.count);
        (now < until).then(|| until - now)
    }

    fn username_delay(&self, key: &str, now: Timestamp) -> std::time::Duration {
        self.failures(key, now)
            .map_or(std::time::Duration::ZERO, |f| username_delay(f.count))
    }

    /// A password check failed: counts against every key.
    fn failed(&self, keys: &[&str], now: Timestamp) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, f| now - f.last <= FAILURE_MEMORY);
        }
        for k in keys {
            let f = map.entry((*k).to_owned()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now - f.last > FAILURE_MEMORY {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
        }
    }

    fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The signed-in admin, put into the request by the session middleware.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub admin_id: String,
    pub username: String,
    pub csrf: String,
    /// SHA-256 (hex) of the cookie value: binds UI-started OAuth flows to this session.
    pub session_hash: String,
}

impl AdminSession {
    /// How the admin appears in the audit log.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.username)
    }
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_token() -> String {
    let bytes: [u8; 32] = tokenwarden_crypto::random_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash nobody knows the password of, checked for unknown usernames.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

pub fn check_username(username: &str) -> Result<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "the username must be 1-64 ASCII letters (A-Z, a-z), digits or . _ - @".into(),
        ))
    }
}

pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(Error::Invalid(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(Error::Invalid(
            "the password must be at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

async fn hash_blocking(password: SecretString) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(password.expose_secret()))
        .await
        .map_err(Error::internal)?
}

fn new_admin(username: &str, hash: String, now: Timestamp) -> AdminRecord {
    AdminRecord {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
        password_hash: hash,
        created_at: now,
        last_login_at: None,
    }
}

/// Creates an admin who signs in to the UI (`tokenwarden admin create`); audited.
pub async fn create_admin(
    ctx: &AppContext,
    actor: &str,
    username: &str,
    password: SecretString,
) -> Result<AdminRecord> {
    check_username(username)?;
    check_password(password.expose_secret())?;
    let admin = new_admin(username, hash_blocking(password).await?, ctx.clock.now());
    ctx.store.create_admin(&admin).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::Conflict(format!("an admin named {username} exists")),
        other => other.into(),
    })?;
    audit::record(
        ctx,
        actor,
        Action::AdminCreate,
        Object::new("admin", &admin.id, &admin.username),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(admin)
}

/// When no admin exists yet: makes a new one-time setup link (valid an hour; only its hash is
/// stored) and returns its URL. `None` once an admin exists.
pub async fn setup_link(ctx: &AppContext) -> Result<Option<String>> {
    if ctx.store.count_admins().await? > 0 {
        ctx.store.delete_meta(SETUP_META_KEY).await?;
        return Ok(None);
    }
    let token = random_token();
    let expires = ctx.clock.now() + SETUP_LINK_TTL;
    ctx.store
        .set_meta(
            SETUP_META_KEY,
            &format!(
                "{}:{}",
                sha256_hex(&token),
                tokenwarden_domain::clock::to_millis(expires)
            ),
        )
        .await?;
    Ok(Some(format!(
        "{}/setup?token={token}",
        ctx.settings.public_url.trim_end_matches('/')
    )))
}

/// Is `token` the current, unexpired setup link?
pub async fn setup_link_valid(ctx: &AppContext, token: &str) -> Result<bool> {
    let Some(stored) = ctx.store.get_meta(SETUP_META_KEY).await? else {
        return Ok(false);
    };
    let Some((hash, expires)) = stored.split_once(':') else {
        return Ok(false);
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return Ok(false);
    };
    let same: bool = sha256_hex(token).as_bytes().ct_eq(hash.as_bytes()).into();
    Ok(same && ctx.clock.now() < tokenwarden_domain::clock::from_millis(expires))
}

/// Creates the first admin through the setup link; false if one exists already.
pub async fn complete_setup(
    ctx: &AppContext,
    username: &str,
    password: SecretString,
) -> Result<Option<AdminRecord>> {
    check_username(username)?;
    check_password(password.expose_secret())?;
    let admin = new_admin(username, hash_blocking(password).await?, ctx.clock.now());
    if !ctx.store.create_first_admin(&admin).await? {
        return Ok(None);
    }
    ctx.store.delete_meta(SETUP_META_KEY).await?;
    audit::record(
        ctx,
        "setup-link",
        Action::AdminCreate,
        Object::new("admin", &admin.id, &admin.username),
        Outcome::Ok,
        serde_json::json!({"via": "one-time setup link"}),
    )
    .await;
    Ok(Some(admin))
}

/// Why a sign-in failed; both kinds of wrong credentials look the same to the caller.
#[derive(Debug)]
pub enum LoginError {
    WrongCredentials,
    /// Too many failed sign-ins from this address: try again after this long (R32).
    RateLimited {
        retry_after: chrono::Duration,
    },
    /// Too many sign-ins at once: nothing was checked or counted; try again shortly.
    Busy,
    Internal(Error),
}

/// The time sessions run on: the service's clock, except that `tokenwarden demo`'s
/// fast-forward does not move it (an admin's session lasts real hours, however far the demo
/// jumps ahead).
pub fn session_now(ctx: &AppContext) -> Timestamp {
    let now = ctx.clock.now();
    #[cfg(feature = "demo")]
    if let Some(d) = &ctx.demo {
        return now - d.clock.offset();
    }
    now
}

/// A new session: the cookie value (shown to the browser only) and its row.
pub struct NewSession {
    pub cookie_value: SecretString,
    pub record: SessionRecord,
}

/// Starts a session for an admin: a new random cookie value, a new CSRF token.
pub async fn start_session(ctx: &AppContext, admin: &AdminRecord) -> Result<NewSession> {
    let now = session_now(ctx);
    let value = random_token();
    let record = SessionRecord {
        id: sha256_hex(&value),
        admin_id: admin.id.clone(),
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + SESSION_MAX,
        last_seen_at: now,
    };
    ctx.store.create_session(&record).await?;
    let _ = ctx.store.purge_sessions(now).await;
    Ok(NewSession {
        cookie_value: value.into(),
        record,
    })
}

/// Checks a username and password; on success starts a session. Audited either way.
///
/// Throttled per client address (after [`MAX_FAILURES`] failures it must wait
/// [`address_delay`], refused with 429 meanwhile) and per username (each check delayed by
/// [`username_delay`], never refused): another address hammering a username cannot lock its
/// admin out. Sign-ins with the same address or username are checked one at a time, so a
/// parallel burst cannot slip past the count. Only a checked wrong password counts; waiting
/// too long for a turn or a hashing permit answers `Busy` and counts nothing.
pub async fn login(
    ctx: &AppContext,
    username: &str,
    password: SecretString,
    client: &str,
) -> Result<(AdminRecord, NewSession), LoginError> {
    // Long or odd usernames are never keys of the limiter (they cannot exist anyway).
    let user_key = if check_username(username).is_ok() {
        format!("user:{}", username.to_ascii_lowercase())
    } else {
        "user:(invalid)".to_owned()
    };
    let ip_key = format!("ip:{client}");
    let object = Object {
        kind: "admin",
        id: None,
        name: Some(username.chars().take(64).collect()),
    };
    let _address_turn = ctx.ui.turn(&ip_key).await?;
    if let Some(retry_after) = ctx.ui.address_wait(&ip_key, ctx.clock.now()) {
        audit::record(
            ctx,
            "anonymous",
            Action::AuthLogin,
            object,
            Outcome::Denied,
            serde_json::json!({"reason": "rate_limited", "client": client}),
        )
        .await;
        return Err(LoginError::RateLimited { retry_after });
    }
    let _username_turn = ctx.ui.turn(&user_key).await?;
    let delay = ctx.ui.username_delay(&user_key, ctx.clock.now());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let found = match ctx.store.get_admin_by_username(username).await {
        Ok(a) => Some(a),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(LoginError::Internal(e.into())),
    };
    let hash = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |a| a.password_hash.clone());
    let Ok(Ok(_permit)) = tokio::time::timeout(TURN_WAIT, ctx.ui.checks.acquire()).await else {
        return Err(LoginError::Busy);
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, password.expose_secret()))
        .await
        .unwrap_or(false);
    let now = ctx.clock.now();
    match found {
        Some(admin) if ok => {
            ctx.ui.clear(&user_key);
            let session = start_session(ctx, &admin)
                .await
                .map_err(LoginError::Internal)?;
            let _ = ctx.store.record_admin_login(&admin.id, now).await;
            audit::record(
                ctx,
                &format!("admin:{}", admin.username),
                Action::AuthLogin,
                Object::new("admin", &admin.id, &admin.username),
                Outcome::Ok,
                serde_json::json!({"client": client}),
            )
            .await;
            Ok((admin, session))
        }
        found => {
            ctx.ui.failed(&[ip_key.as_str(), user_key.as_str()], now);
            audit::record(
                ctx,
                "anonymous",
                Action::AuthLogin,
                object,
                Outcome::Denied,
                serde_json::json!({
                    "reason": if found.is_some() { "wrong_password" } else { "unknown_user" },
                    "client": client,
                }),
            )
            .await;
            Err(LoginError::WrongCredentials)
        }
    }
}

/// The session a cookie value names, if it is still valid; refreshes its idle timer (at most
/// once a minute, so browsing is not a stream of writes).
pub async fn lookup(ctx: &AppContext, cookie_value: &str) -> Result<Option<AdminSession>> {
    let id = sha256_hex(cookie_value);
    let s = match ctx.store.get_session(&id).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let now = session_now(ctx);
    if now >= s.expires_at || now >= s.last_seen_at + SESSION_IDLE {
        let _ = ctx.store.delete_session(&id).await;
        return Ok(None);
    }
    let admin = match ctx.store.get_admin(&s.admin_id).await {
        Ok(a) => a,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if now - s.last_seen_at > chrono::Duration::minutes(1) {
        let _ = ctx.store.touch_session(&id, now).await;
    }
    Ok(Some(AdminSession {
        admin_id: admin.id,
        username: admin.username,
        csrf: s.csrf_token,
        session_hash: id,
    }))
}

/// Ends a session.
pub async fn logout(ctx: &AppContext, session: &AdminSession) {
    let _ = ctx.store.delete_session(&session.session_hash).await;
    audit::record(
        ctx,
        &session.actor(),
        Action::AuthLogout,
        Object::new("admin", &session.admin_id, &session.username),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
}

/// Makes and stores an admin token (`tokenwarden admin token create`); the caller shows it
/// once (only its hash is kept).
pub async fn create_admin_token(
    ctx: &AppContext,
    actor: &str,
    label: tokenwarden_domain::KeyLabel,
) -> Result<crate::auth::NewKey> {
    let key = crate::auth::new_key(
        tokenwarden_store::ApiKeyKind::Admin,
        None,
        label,
        ctx.clock.now(),
    );
    ctx.store.create_api_key(&key.record).await?;
    audit::record(
        ctx,
        actor,
        Action::AdminTokenCreate,
        Object::new("api_key", key.record.id, &key.record.label),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(key)
}

/// Every admin token (never the tokens themselves), read a page at a time.
pub async fn list_admin_tokens(ctx: &AppContext) -> Result<Vec<tokenwarden_store::ApiKeyRecord>> {
    crate::ops::lists::all_admin_tokens(ctx).await
}

/// The admin token with this id (an app's key is not one).
pub async fn get_admin_token(
    ctx: &AppContext,
    id: &str,
) -> Result<tokenwarden_store::ApiKeyRecord> {
    let not_found = || Error::NotFound(format!("admin token {id:?}"));
    let key_id = tokenwarden_domain::ApiKeyId::parse(id).ok_or_else(not_found)?;
    let key = ctx
        .store
        .get_api_key(key_id)
        .await
        .map_err(Error::not_found_as(format!("admin token {id:?}")))?;
    if key.kind != tokenwarden_store::ApiKeyKind::Admin {
        return Err(not_found());
    }
    Ok(key)
}

/// Revokes an admin token by id; an app's key is refused (revoke it on its app). `presented`
/// is the admin token the request itself was made with, if any: revoking that one is refused
/// (the caller would lock itself out of the API mid-work); another token, the UI or the CLI
/// can revoke it.
pub async fn revoke_admin_token(
    ctx: &AppContext,
    actor: &str,
    id: &str,
    presented: Option<tokenwarden_domain::ApiKeyId>,
) -> Result<tokenwarden_store::ApiKeyRecord> {
    let key_id = tokenwarden_domain::ApiKeyId::parse(id).ok_or_else(|| {
        Error::Invalid(format!(
            "{id:?} is not an admin token id (see `tokenwarden admin token list`)"
        ))
    })?;
    let key = ctx
        .store
        .get_api_key(key_id)
        .await
        .map_err(Error::not_found_as(format!("admin token {id}")))?;
    if key.kind != tokenwarden_store::ApiKeyKind::Admin {
        return Err(Error::Invalid(format!(
            "{id} is an app's API key, not an admin token: revoke it on the app (API or UI)"
        )));
    }
    if presented == Some(key_id) {
        return Err(Error::Conflict(format!(
            "admin token {} is the one this request was made with: revoking it would lock this client out; revoke it with another admin token, in the web UI (Admins) or with `tokenwarden admin token revoke`",
            key.label
        )));
    }
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    ctx.store.revoke_api_key(key_id, ctx.clock.now()).await?;
    ctx.cache.forget_key(key_id);
    audit::record(
        ctx,
        actor,
        Action::AdminTokenRevoke,
        Object::new("api_key", key.id, &key.label),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(key)
}

// --- managing admins ---------------------------------------------------------------------------

/// Finds an admin by id or by username.
pub async fn find_admin(ctx: &AppContext, key: &str) -> Result<AdminRecord> {
    match ctx.store.get_admin(key).await {
        Ok(a) => return Ok(a),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if check_username(key).is_err() {
        return Err(Error::NotFound(format!("admin {key:?}")));
    }
    ctx.store
        .get_admin_by_username(key)
        .await
        .map_err(Error::not_found_as(format!("admin {key:?}")))
}

/// Who asks for a change to an admin: the signed-in admin (the web UI), or a caller that is no
/// admin account (an admin token through the API, the CLI).
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// How the caller appears in the audit log.
    pub actor: &'a str,
    /// The session making the request, when an admin signed in to the UI asks.
    pub session: Option<&'a AdminSession>,
}

impl<'a> Asker<'a> {
    /// A caller that is no admin account (`cli`, `admin:<token label>`).
    pub fn credential(actor: &'a str) -> Self {
        Self {
            actor,
            session: None,
        }
    }

    /// The admin signed in with this session.
    pub fn session(s: &'a AdminSession, actor: &'a str) -> Self {
        Self {
            actor,
            session: Some(s),
        }
    }

    fn is(&self, admin: &AdminRecord) -> bool {
        self.session.is_some_and(|s| s.admin_id == admin.id)
    }
}

/// A new password for an admin (`new` follows [`check_password`]). An admin changing their own
/// password must give the current one (`current`), so a session left open cannot take the
/// account over, and keeps the session they are in; every other session of that admin ends (a
/// reset is how an admin whose password leaked is locked out of existing sessions).
pub async fn set_password(
    ctx: &AppContext,
    asker: Asker<'_>,
    id: &str,
    new: SecretString,
    current: Option<SecretString>,
) -> Result<AdminRecord> {
    check_password(new.expose_secret())?;
    let admin = find_admin(ctx, id).await?;
    let own = asker.is(&admin);
    if own {
        let Some(current) = current else {
            return Err(Error::Invalid(
                "to change your own password, give your current password too".into(),
            ));
        };
        let hash = admin.password_hash.clone();
        let ok =
            tokio::task::spawn_blocking(move || verify_password(&hash, current.expose_secret()))
                .await
                .unwrap_or(false);
        if !ok {
            return Err(Error::Invalid(
                "the current password is not right; nothing was changed".into(),
            ));
        }
    }
    let hash = hash_blocking(new).await?;
    let keep = if own {
        asker.session.map(|s| s.session_hash.as_str())
    } else {
        None
    };
    ctx.store
        .set_admin_password(&admin.id, &hash, keep)
        .await
        .map_err(Error::not_found_as(format!("admin {id:?}")))?;
    audit::record(
        ctx,
        asker.actor,
        Action::AdminPassword,
        Object::new("admin", &admin.id, &admin.username),
        Outcome::Ok,
        serde_json::json!({"own": own, "other_sessions_ended": true}),
    )
    .await;
    Ok(admin)
}

/// Removes an admin (they can no longer sign in; their sessions end at once). Refused for the
/// last admin (nobody could sign in to the UI any more; add another first) and for the admin
/// asking (removing yourself from a session is never an accident worth allowing: another admin
/// can do it).
pub async fn remove_admin(ctx: &AppContext, asker: Asker<'_>, id: &str) -> Result<AdminRecord> {
    let admin = find_admin(ctx, id).await?;
    if asker.is(&admin) {
        return Err(Error::Conflict(format!(
            "you are signed in as {}: you cannot remove your own account; another admin can",
            admin.username
        )));
    }
    match ctx
        .store
        .delete_admin(&admin.id)
        .await
        .map_err(Error::not_found_as(format!("admin {id:?}")))?
    {
        tokenwarden_store::AdminRemoval::Removed => {}
        tokenwarden_store::AdminRemoval::LastAdmin => {
            return Err(Error::Conflict(format!(
                "{} is the last admin: nobody could sign in to the web UI any more; add another admin first",
                admin.username
            )));
        }
    }
    audit::record(
        ctx,
        asker.actor,
        Action::AdminRemove,
        Object::new("admin", &admin.id, &admin.username),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(admin)
}
