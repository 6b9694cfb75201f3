//! Getting and keeping token material: starting an authorization, completing the callback,
//! storing a token response, refreshing under an owner-checked lease.

use crate::AppContext;
use crate::audit::{self, Object};
use crate::error::ApiError;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tokenwarden_domain::{Timestamp, TokenId, TokenStatus};
use tokenwarden_oauth::ResolvedProvider;
use tokenwarden_oauth::client::{self, ClientCredentials, Grant, Pkce, TokenError, TokenResponse};
use tokenwarden_store::{Lease, OAuthStateRecord, Sealed, StateOutcome, StoreError, TokenRecord};

/// How long a started authorization stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;

pub fn hash_state(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Resolves the token's provider with its settings; the error names what is missing.
pub fn resolve(ctx: &AppContext, t: &TokenRecord) -> Result<ResolvedProvider, ApiError> {
    ctx.catalog
        .resolve(t.provider.as_str(), &t.settings)
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// The stored client secrets, opened, in the order they are tried.
pub async fn client_secrets(
    ctx: &AppContext,
    t: &TokenRecord,
) -> Result<Vec<SecretString>, ApiError> {
    let mut out = Vec::new();
    for (column, sealed) in [
        ("client_secret", &t.client_secret),
        ("client_secret_2", &t.client_secret_2),
    ] {
        if let Some(s) = sealed {
            out.push(
                ctx.vault
                    .open_secret(s, "tokens", column, &t.id.to_string())
                    .await
                    .map_err(ApiError::internal)?,
            );
        }
    }
    Ok(out)
}

/// Starts the authorization-code flow for a token: a one-time state bound to the token and to
/// whoever asked, a fresh PKCE verifier, and the URL to open.
pub async fn start_authorization(
    ctx: &AppContext,
    t: &TokenRecord,
    actor: &str,
    session_hash: Option<String>,
) -> Result<String, ApiError> {
    let provider = resolve(ctx, t)?;
    let client_id = t.client_id.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::InvalidRequest("this token has no client_id yet: set it (or paste the client secrets output) first".into())
    })?;
    if t.client_secret.is_none() && t.client_secret_2.is_none() {
        return Err(ApiError::InvalidRequest("this token has no client secret yet: set it (or paste the client secrets output) first".into()));
    }
    let now = ctx.clock.now();
    let state = client::new_state();
    let pkce = provider.pkce.then(Pkce::generate);
    let id = uuid::Uuid::new_v4().to_string();
    let redirect_uri = ctx.settings.redirect_uri();
    let record = OAuthStateRecord {
        id: id.clone(),
        state_hash: hash_state(&state),
        token_id: t.id,
        started_by: actor.to_owned(),
        session_hash,
        verifier: pkce
            .as_ref()
            .map(|p| ctx.vault.seal(&p.verifier, "oauth_states", "verifier", &id)),
        redirect_uri: redirect_uri.clone(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(STATE_TTL_MINUTES),
        used_at: None,
    };
    ctx.store.create_oauth_state(&record).await?;
    let _ = ctx
        .store
        .purge_oauth_states(now - chrono::Duration::days(1))
        .await;
    audit::record(
        ctx,
        actor,
        "token.authorize_start",
        Object::new("token", t.id, &t.name),
        "ok",
        serde_json::json!({"provider": t.provider}),
    )
    .await;
    Ok(client::authorization_url(
        &provider,
        client_id,
        &redirect_uri,
        &state,
        pkce.as_ref().map(|p| p.challenge.as_str()),
    ))
}

/// The query of a callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub message: Option<String>,
}

/// What the callback page tells the admin.
#[derive(Debug)]
pub enum CallbackResult {
    Authorized {
        token: Box<TokenRecord>,
        detail: String,
    },
    /// The state is missing, unknown, expired, used, or from another session: nothing was sent
    /// to the provider.
    BadState(String),
    /// The provider refused, or the exchange failed; the token is unchanged.
    Failed {
        token_name: String,
        token_id: TokenId,
        message: String,
    },
}

pub async fn complete_callback(
    ctx: &AppContext,
    q: &CallbackQuery,
    session_hash: Option<&str>,
) -> CallbackResult {
    let now = ctx.clock.now();
    let Some(state) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return CallbackResult::BadState(
            "the callback has no state parameter: start the authorization again from tokenwarden"
                .into(),
        );
    };
    let st = match ctx.store.consume_oauth_state(&hash_state(state), now).await {
        Ok(StateOutcome::Consumed(st)) => st,
        Ok(StateOutcome::Unknown) => {
            return CallbackResult::BadState(
                "this sign-in was not started by tokenwarden (unknown state): start it again"
                    .into(),
            );
        }
        Ok(StateOutcome::Expired) => {
            return CallbackResult::BadState(format!(
                "this sign-in took longer than {STATE_TTL_MINUTES} minutes and expired: start it again"
            ));
        }
        Ok(StateOutcome::AlreadyUsed) => {
            return CallbackResult::BadState(
                "this sign-in was already completed (the state was used): start it again".into(),
            );
        }
        Err(e) => {
            return CallbackResult::BadState(format!(
                "the sign-in could not be checked: {}",
                ApiError::from(e)
            ));
        }
    };
    if let Some(expected) = &st.session_hash
        && session_hash != Some(expected.as_str())
    {
        return CallbackResult::BadState("this sign-in was started from another session: finish it in the browser window that started it".into());
    }
    let t = match ctx.store.get_token(st.token_id).await {
        Ok(t) => t,
        Err(_) => {
            return CallbackResult::BadState(
                "the token this sign-in was for no longer exists".into(),
            );
        }
    };
    let fail = |message: String| CallbackResult::Failed {
        token_name: t.name.to_string(),
        token_id: t.id,
        message,
    };
    if let Some(error) = &q.error {
        let mut message = format!("the provider answered {error}");
        for extra in [&q.error_description, &q.message].into_iter().flatten() {
            message.push_str(": ");
            message.push_str(extra);
        }
        audit::record(
            ctx,
            &st.started_by,
            "token.authorize",
            Object::new("token", t.id, &t.name),
            "failed",
            serde_json::json!({"error": error}),
        )
        .await;
        return fail(message);
    }
    let provider = match resolve(ctx, &t) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    // RFC 9207: with a known issuer, the response must name it.
    if let Some(issuer) = &provider.issuer
        && q.iss.as_deref() != Some(issuer.as_str())
    {
        audit::record(
            ctx,
            &st.started_by,
            "token.authorize",
            Object::new("token", t.id, &t.name),
            "failed",
            serde_json::json!({"error": "issuer_mismatch"}),
        )
        .await;
        return fail(format!(
            "the response's issuer {:?} is not the configured issuer {issuer:?}: possible mix-up attack; nothing was stored",
            q.iss.as_deref().unwrap_or("(none)")
        ));
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return fail("the provider sent neither a code nor an error".into());
    };
    let verifier = match &st.verifier {
        Some(v) => match ctx
            .vault
            .open_secret(v, "oauth_states", "verifier", &st.id)
            .await
        {
            Ok(v) => Some(v),
            Err(e) => return fail(ApiError::internal(e).to_string()),
        },
        None => None,
    };
    let secrets = match client_secrets(ctx, &t).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let creds = ClientCredentials {
        client_id: t.client_id.as_deref().unwrap_or_default(),
        secrets,
    };
    let grant = Grant::AuthorizationCode {
        code,
        redirect_uri: &st.redirect_uri,
        verifier: verifier.as_ref(),
    };
    let resp = match ctx.oauth.token(&provider, &creds, &grant).await {
        Ok(r) => r,
        Err(e) => {
            audit::record(
                ctx,
                &st.started_by,
                "token.authorize",
                Object::new("token", t.id, &t.name),
                "failed",
                serde_json::json!({"error": e.to_string()}),
            )
            .await;
            return fail(format!("exchanging the code failed: {e}"));
        }
    };
    let received_at = ctx.clock.now();
    let was = t.status;
    match store_response(ctx, t.id, &provider, &resp, received_at, true, None).await {
        Ok(token) => {
            record_success(ctx, &token, received_at).await;
            crate::lifecycle::token_authorized(ctx, &token, was, &st.started_by).await;
            let detail = resp
                .username
                .as_ref()
                .map(|u| format!("signed in as {u}"))
                .unwrap_or_default();
            audit::record(
                ctx,
                &st.started_by,
                "token.authorize",
                Object::new("token", token.id, &token.name),
                "ok",
                serde_json::json!({"scopes": token.material.scopes, "refresh_token_expires_at": token.material.refresh_expires_at}),
            )
            .await;
            CallbackResult::Authorized {
                token: Box::new(token),
                detail,
            }
        }
        Err(e) => fail(format!("the token could not be stored: {e}")),
    }
}

/// Writes a token response into the row, under a version check (re-reading on conflicts), and
/// under `lease` when given. Expiries count from `received_at`, our own receive time (R15).
/// A response without a refresh token keeps the stored one and its expiry (R10).
pub async fn store_response(
    ctx: &AppContext,
    id: TokenId,
    provider: &ResolvedProvider,
    resp: &TokenResponse,
    received_at: Timestamp,
    new_grant: bool,
    lease: Option<&Lease>,
) -> Result<TokenRecord, StoreError> {
    let access = ctx.vault.seal(
        &resp.access_token,
        "tokens",
        "access_token",
        &id.to_string(),
    );
    let refresh = resp.refresh_token.as_ref().map(|r| {
        ctx.vault
            .seal(r, "tokens", "refresh_token", &id.to_string())
    });
    let lifetime = resp
        .expires_in
        .unwrap_or(provider.default_access_token_lifetime)
        .min(10 * 365 * 86_400);
    let access_expires_at = received_at + chrono::Duration::seconds(lifetime as i64);
    for _ in 0..5 {
        let mut t = ctx.store.get_token(id).await?;
        t.material.access_token = Some(access.clone());
        t.material.access_expires_at = Some(access_expires_at);
        t.material.token_type = Some(resp.token_type.clone());
        if let Some(scope) = &resp.scope {
            t.material.scopes = Some(scope.clone());
        }
        let reported = resp
            .refresh_token_expires_in
            .map(|s| received_at + chrono::Duration::seconds(s.min(20 * 365 * 86_400) as i64));
        if new_grant {
            t.material.refresh_token = refresh.clone();
            t.material.issued_at = Some(received_at);
            t.material.refresh_expires_at = reported.or_else(|| {
                provider
                    .refresh_token_validity
                    .map(|v| received_at + chrono::Duration::seconds(v as i64))
            });
            if t.material.scopes.is_none() {
                t.material.scopes = Some(provider.scopes.clone());
            }
        } else if let Some(r) = &refresh {
            t.material.refresh_token = Some(r.clone());
            if let Some(exp) = reported {
                t.material.refresh_expires_at = Some(exp);
            }
        }
        // A refresh does not make a refresh token that dies soon any younger.
        let first_lead = ctx
            .lead_times()
            .first()
            .copied()
            .unwrap_or_else(|| chrono::Duration::days(14));
        match t.material.refresh_expires_at {
            Some(exp) if exp - received_at <= first_lead => {
                t.status = TokenStatus::ExpiringSoon;
                t.status_reason = Some(format!(
                    "the refresh token expires {}",
                    exp.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            _ => {
                t.status = TokenStatus::Healthy;
                t.status_reason = None;
            }
        }
        let written = match lease {
            Some(l) => {
                ctx.store
                    .update_token_under_lease(&t, l, ctx.clock.now())
                    .await
            }
            None => ctx.store.update_token(&t, ctx.clock.now()).await,
        };
        match written {
            Err(StoreError::VersionMismatch(_)) => continue,
            other => {
                ctx.cache.forget_token(id);
                return other;
            }
        }
    }
    Err(StoreError::VersionMismatch("token"))
}

/// Why a refresh did not give a token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the token needs re-authorization: {0}")]
    NeedsReauthorization(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    #[error("another instance is refreshing this token")]
    Busy,
    #[error(transparent)]
    Api(#[from] ApiError),
}

const LEASE_SECONDS: i64 = 30;

/// Refreshes a token: take the token's lease, re-read the row (another instance may have
/// refreshed already), call the provider, commit access and refresh token together while still
/// holding the lease. Permanent refusals mark the token `needs_reauthorization` (after a
/// re-read shows nobody rotated it meanwhile); transient ones change nothing.
pub async fn refresh(
    ctx: &AppContext,
    id: TokenId,
    min_valid_until: Timestamp,
) -> Result<TokenRecord, RefreshError> {
    let now = ctx.clock.now();
    // Backing off after transient failures: say when the next attempt is, do not hammer.
    if let Ok(Some(h)) = ctx.store.get_token_health(id).await
        && let Some(next) = h.next_attempt_at.filter(|n| *n > now)
    {
        let current = ctx.store.get_token(id).await.map_err(ApiError::from)?;
        if current
            .material
            .access_expires_at
            .is_some_and(|e| e > min_valid_until)
        {
            return Ok(current);
        }
        return Err(RefreshError::Unavailable(format!(
            "{} (next attempt in {} s)",
            h.last_error
                .unwrap_or_else(|| "the last refresh failed".into()),
            (next - now).num_seconds().max(1)
        )));
    }
    let name = format!("refresh:{id}");
    // One owner per refresh attempt, not per process: concurrent reads within one instance must
    // exclude each other too (a same-owner lease would be handed to all of them).
    let owner = format!("{}:{}", ctx.instance_id, uuid::Uuid::new_v4().simple());
    let Some(lease) = ctx
        .store
        .acquire_lease(&name, &owner, chrono::Duration::seconds(LEASE_SECONDS), now)
        .await
        .map_err(ApiError::from)?
    else {
        return Err(RefreshError::Busy);
    };
    let result = refresh_holding(ctx, id, min_valid_until, &lease).await;
    let _ = ctx.store.release_lease(&lease).await;
    result
}

async fn refresh_holding(
    ctx: &AppContext,
    id: TokenId,
    min_valid_until: Timestamp,
    lease: &Lease,
) -> Result<TokenRecord, RefreshError> {
    let t = ctx.store.get_token(id).await.map_err(ApiError::from)?;
    if t.material.access_token.is_some()
        && t.material
            .access_expires_at
            .is_some_and(|e| e > min_valid_until)
    {
        return Ok(t); // someone refreshed it while we waited
    }
    // Refreshed within the last minute and still valid: the provider's tokens simply live
    // shorter than asked. Do not refresh again (an app asking for a large min_validity must not
    // turn every read into a provider call); the caller answers that the validity is short.
    let now = ctx.clock.now();
    if t.material.access_expires_at.is_some_and(|e| e > now)
        && let Ok(Some(h)) = ctx.store.get_token_health(id).await
        && h.last_success_at
            .is_some_and(|s| now - s < chrono::Duration::seconds(60))
    {
        return Ok(t);
    }
    let Some(sealed_refresh) = &t.material.refresh_token else {
        return Err(RefreshError::NeedsReauthorization(
            "no refresh token is stored; authorize the token".into(),
        ));
    };
    if matches!(
        t.status,
        TokenStatus::NeedsReauthorization | TokenStatus::Expired | TokenStatus::NotAuthorized
    ) {
        return Err(RefreshError::NeedsReauthorization(
            t.status_reason
                .clone()
                .unwrap_or_else(|| t.status.to_string()),
        ));
    }
    let provider = crate::grant::resolve(ctx, &t)?;
    let refresh_token = ctx
        .vault
        .open_secret(sealed_refresh, "tokens", "refresh_token", &id.to_string())
        .await
        .map_err(ApiError::internal)?;
    let secrets = client_secrets(ctx, &t).await?;
    let creds = ClientCredentials {
        client_id: t.client_id.as_deref().unwrap_or_default(),
        secrets,
    };
    match ctx
        .oauth
        .token(
            &provider,
            &creds,
            &Grant::Refresh {
                refresh_token: &refresh_token,
            },
        )
        .await
    {
        Ok(resp) => {
            let received_at = ctx.clock.now();
            let stored = store_response(ctx, id, &provider, &resp, received_at, false, Some(lease))
                .await
                .map_err(ApiError::from)?;
            record_success(ctx, &stored, received_at).await;
            audit::record(
                ctx,
                "system",
                "token.refresh",
                Object::new("token", id, &t.name),
                "ok",
                serde_json::json!({"rotated": resp.refresh_token.is_some()}),
            )
            .await;
            Ok(stored)
        }
        Err(e) if e.is_permanent() => {
            // R13: only if the row still holds the refresh token we sent.
            let current = ctx.store.get_token(id).await.map_err(ApiError::from)?;
            if current.material.refresh_token.as_ref() != Some(sealed_refresh) {
                return Ok(current);
            }
            let mut marked = current.clone();
            marked.status = TokenStatus::NeedsReauthorization;
            marked.status_reason = Some(format!("refresh refused: {e}"));
            let stored = match ctx
                .store
                .update_token_under_lease(&marked, lease, ctx.clock.now())
                .await
            {
                Ok(stored) => stored,
                Err(StoreError::VersionMismatch(_)) | Err(StoreError::LeaseLost(_)) => {
                    // Changed meanwhile (re-authorized, or another instance took over): its news wins.
                    return Ok(ctx.store.get_token(id).await.map_err(ApiError::from)?);
                }
                Err(other) => return Err(ApiError::from(other).into()),
            };
            ctx.cache.forget_token(id);
            record_failure(ctx, &stored, &e.to_string(), true).await;
            audit::record(
                ctx,
                "system",
                "token.needs_reauthorization",
                Object::new("token", id, &t.name),
                "failed",
                serde_json::json!({"error": e.to_string()}),
            )
            .await;
            crate::lifecycle::token_died(
                ctx,
                &stored,
                "token.needs_reauthorization",
                &format!("the provider refused the refresh token ({e})"),
            )
            .await;
            Err(RefreshError::NeedsReauthorization(e.to_string()))
        }
        Err(TokenError::Transient(m)) | Err(TokenError::Refused { error: m, .. }) => {
            audit::record(
                ctx,
                "system",
                "token.refresh_failed",
                Object::new("token", id, &t.name),
                "failed",
                serde_json::json!({"error": m}),
            )
            .await;
            record_failure(ctx, &t, &m, false).await;
            Err(RefreshError::Unavailable(m))
        }
    }
}

/// Opens a sealed token value of a row.
pub async fn open_material(
    ctx: &AppContext,
    t: &TokenRecord,
    column: &str,
    sealed: &Sealed,
) -> Result<SecretString, ApiError> {
    ctx.vault
        .open_secret(sealed, "tokens", column, &t.id.to_string())
        .await
        .map_err(ApiError::internal)
}

/// Resets the failure streak after a successful refresh or authorization.
pub async fn record_success(ctx: &AppContext, t: &TokenRecord, at: Timestamp) {
    let mut h = ctx
        .store
        .get_token_health(t.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| tokenwarden_store::TokenHealth::new(t.id));
    h.last_attempt_at = Some(at);
    h.last_success_at = Some(at);
    h.failures = 0;
    h.next_attempt_at = None;
    h.last_error = None;
    if let Err(e) = ctx.store.put_token_health(&h).await {
        tracing::warn!(error = %e, "could not record refresh success");
    }
}

/// Capped exponential backoff with full jitter: 15 s, 30 s, 1 min, ... at most 30 min.
pub fn backoff(failures: i64, jitter01: f64) -> chrono::Duration {
    let exp = failures.clamp(1, 12) as u32 - 1;
    let cap_ms = (15_000i64 << exp).min(30 * 60 * 1000);
    let jittered = cap_ms / 2 + ((cap_ms / 2) as f64 * jitter01.clamp(0.0, 1.0)) as i64;
    chrono::Duration::milliseconds(jittered)
}

/// Records a failed attempt; a transient failure schedules the next try with backoff and, on
/// the first failure of a streak, tells the channels.
pub async fn record_failure(ctx: &AppContext, t: &TokenRecord, error: &str, permanent: bool) {
    let now = ctx.clock.now();
    let mut h = ctx
        .store
        .get_token_health(t.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| tokenwarden_store::TokenHealth::new(t.id));
    h.last_attempt_at = Some(now);
    h.failures += 1;
    h.last_error = Some(error.chars().take(500).collect());
    let jitter = f64::from(tokenwarden_crypto::random_bytes::<1>()[0]) / 256.0;
    h.next_attempt_at = if permanent {
        None
    } else {
        Some(now + backoff(h.failures, jitter))
    };
    if let Err(e) = ctx.store.put_token_health(&h).await {
        tracing::warn!(error = %e, "could not record refresh failure");
    }
    if !permanent && h.failures == 1 {
        let apps = crate::lifecycle::dependants(ctx, t)
            .await
            .unwrap_or_default();
        let mut data = crate::lifecycle::token_data(t, None);
        data["error"] = serde_json::Value::String(error.chars().take(500).collect());
        let ev = crate::lifecycle::new_event(
            ctx,
            "token.refresh_failed",
            format!(
                "Refreshing token {} failed ({error}); retrying with backoff, the current access token is still served while valid.",
                t.name
            ),
            data,
            apps.iter().map(|a| a.id.to_string()).collect(),
        );
        crate::lifecycle::emit(ctx, ev).await;
    }
}

/// Stores pasted client credentials (Snowflake's `SYSTEM$SHOW_OAUTH_CLIENT_SECRETS` output) in
/// both slots, sealed; audited. Used by the API and the UI.
pub async fn apply_client_secrets(
    ctx: &AppContext,
    mut t: TokenRecord,
    parsed: tokenwarden_oauth::snowflake::ClientSecrets,
    actor: &str,
) -> Result<TokenRecord, StoreError> {
    let rid = t.id.to_string();
    t.client_id = Some(parsed.client_id);
    t.client_secret = Some(
        ctx.vault
            .seal(&parsed.client_secret, "tokens", "client_secret", &rid),
    );
    t.client_secret_2 = parsed
        .client_secret_2
        .as_ref()
        .map(|s| ctx.vault.seal(s, "tokens", "client_secret_2", &rid));
    let updated = ctx.store.update_token(&t, ctx.clock.now()).await?;
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        "token.client_secrets",
        Object::new("token", updated.id, &updated.name),
        "ok",
        serde_json::json!({"client_secret_2": updated.client_secret_2.is_some()}),
    )
    .await;
    Ok(updated)
}

/// Returns the token with an access token valid for at least `min_validity` seconds,
/// refreshing it if needed, and the opened access token.
pub async fn usable_token(
    ctx: &AppContext,
    t: TokenRecord,
    min_validity: u64,
) -> Result<(TokenRecord, SecretString), ApiError> {
    match t.status {
        TokenStatus::NotAuthorized => {
            return Err(ApiError::TokenUnusable {
                code: "token_not_authorized",
                message: format!(
                    "token {} has not been authorized yet: an admin must sign in once (POST /api/v1/tokens/{}/authorize)",
                    t.name, t.id
                ),
            });
        }
        TokenStatus::NeedsReauthorization | TokenStatus::Expired => {
            return Err(ApiError::TokenUnusable {
                code: "token_needs_reauthorization",
                message: format!(
                    "token {} needs re-authorization by an admin{}",
                    t.name,
                    t.status_reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            });
        }
        TokenStatus::Healthy | TokenStatus::ExpiringSoon => {}
    }
    let needed = ctx.clock.now() + chrono::Duration::seconds(min_validity.min(86_400) as i64);
    let fresh = |t: &TokenRecord| {
        t.material.access_token.is_some()
            && t.material.access_expires_at.is_some_and(|e| e > needed)
    };
    let mut t = t;
    if !fresh(&t) {
        let mut attempts = 0;
        t = loop {
            match refresh(ctx, t.id, needed).await {
                Ok(t) => break t,
                Err(RefreshError::Busy) if attempts < 50 => {
                    // Another caller is refreshing: wait for its result.
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let current = ctx.store.get_token(t.id).await?;
                    if fresh(&current) {
                        break current;
                    }
                }
                Err(RefreshError::Busy) => {
                    return Err(ApiError::ProviderUnavailable {
                        message: "the token is being refreshed; retry shortly".into(),
                        retry_after: 5,
                    });
                }
                Err(RefreshError::NeedsReauthorization(m)) => {
                    return Err(ApiError::TokenUnusable {
                        code: "token_needs_reauthorization",
                        message: format!(
                            "token {} needs re-authorization by an admin: {m}",
                            t.name
                        ),
                    });
                }
                Err(RefreshError::Unavailable(m)) => {
                    return Err(ApiError::ProviderUnavailable {
                        message: format!("token {} could not be refreshed right now: {m}", t.name),
                        retry_after: 30,
                    });
                }
                Err(RefreshError::Api(e)) => return Err(e),
            }
        };
        if !fresh(&t) {
            return Err(ApiError::ProviderUnavailable {
                message: format!(
                    "the provider issued token {} with less validity than the {min_validity} s asked for",
                    t.name
                ),
                retry_after: 30,
            });
        }
    }
    let sealed = t
        .material
        .access_token
        .clone()
        .ok_or_else(|| ApiError::internal("no access token"))?;
    let opened = open_material(ctx, &t, "access_token", &sealed).await?;
    Ok((t, opened))
}

/// "Test connection": for Snowflake `SELECT CURRENT_USER()` through the SQL API, else the
/// provider's probe URL, with an access token refreshed if needed. Audited. Returns whether it
/// worked and what the provider said.
pub async fn test_connection(ctx: &AppContext, t: &TokenRecord, actor: &str) -> (bool, String) {
    let result = async {
        let provider = resolve(ctx, t).map_err(|e| e.to_string())?;
        if provider.probe == tokenwarden_oauth::Probe::None {
            return Err(
                "not available: this provider has no test endpoint (set probe_url)".to_owned(),
            );
        }
        let (_, token) = usable_token(ctx, t.clone(), 30)
            .await
            .map_err(|e| e.to_string())?;
        ctx.oauth.test_connection(&provider, &token).await
    }
    .await;
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    audit::record(
        ctx,
        actor,
        "token.test",
        Object::new("token", t.id, &t.name),
        if ok { "ok" } else { "failed" },
        serde_json::json!({"message": message}),
    )
    .await;
    (ok, message)
}

/// The Snowflake setup for a token: the integration name (its setting, else `TW_` + the token
/// name), the refresh-token validity (its setting, else 90 days) and the SQL to run.
pub fn snowflake_setup(
    ctx: &AppContext,
    t: &TokenRecord,
) -> Result<
    (
        tokenwarden_oauth::snowflake::IntegrationName,
        u64,
        tokenwarden_oauth::snowflake::SetupSql,
    ),
    String,
> {
    use tokenwarden_oauth::snowflake::{self, IntegrationName};
    let setting = |k: &str| {
        t.settings
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let integration = match setting("integration_name") {
        Some(n) => IntegrationName::parse(n).map_err(|e| e.0)?,
        None => IntegrationName::for_token(t.name.as_str()),
    };
    let validity = match setting("refresh_token_validity") {
        Some(v) => v
            .parse()
            .map_err(|_| "refresh_token_validity must be a number of seconds".to_owned())?,
        None => snowflake::DEFAULT_REFRESH_VALIDITY,
    };
    let sql = snowflake::setup_sql(
        &integration,
        &ctx.settings.redirect_uri(),
        validity,
        &format!("tokenwarden token {}", t.name),
    )
    .map_err(|e| e.0)?;
    Ok((integration, validity, sql))
}

/// Where a token's secrets go: the token endpoint and the test URL its settings resolve to.
fn destinations(ctx: &AppContext, t: &TokenRecord) -> Option<(String, Option<String>)> {
    let p = ctx.catalog.resolve(t.provider.as_str(), &t.settings).ok()?;
    let probe = match p.probe {
        tokenwarden_oauth::Probe::SnowflakeSql { base_url, .. } => Some(base_url),
        tokenwarden_oauth::Probe::Url(u) => Some(u),
        tokenwarden_oauth::Probe::None => None,
    };
    Some((p.token_url, probe))
}

/// An edit that sends the token somewhere else (another token endpoint or test URL) must not
/// carry the stored secrets there: it needs the client secret again (`new_secret`), and the
/// token material, which belongs to the old server, is dropped (authorize again). Returns
/// whether the destination changed; `Err` with the reason when the secret is missing.
pub fn guard_destination_change(
    ctx: &AppContext,
    before: &TokenRecord,
    after: &mut TokenRecord,
    new_secret: bool,
) -> Result<bool, String> {
    let (Some(old), new) = (destinations(ctx, before), destinations(ctx, after)) else {
        return Ok(false); // nothing was ever sent anywhere
    };
    if new.as_ref() == Some(&old) {
        return Ok(false);
    }
    if !new_secret && (before.client_secret.is_some() || before.client_secret_2.is_some()) {
        return Err(format!(
            "this change sends the token to another server ({}); enter the client secret again with it, so the stored one never goes there",
            new.map(|n| n.0)
                .unwrap_or_else(|| "an unresolved endpoint".into())
        ));
    }
    if !new_secret {
        return Ok(true);
    }
    after.material = tokenwarden_store::TokenMaterial::default();
    after.status = TokenStatus::NotAuthorized;
    after.status_reason = Some("the provider settings changed: authorize again".into());
    if before.client_secret_2 == after.client_secret_2 {
        after.client_secret_2 = None;
    }
    Ok(true)
}
