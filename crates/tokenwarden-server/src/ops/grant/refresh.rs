//! Refreshing a token under an owner-checked lease, storing a token response, and the
//! token's refresh health (failures, backoff).

use super::client_secrets;
use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::metrics::{LeaseKind, RefreshOutcome};
use crate::ops::{Error, Result};
use tokenwarden_domain::{Timestamp, TokenId, TokenStatus};
use tokenwarden_oauth::ResolvedProvider;
use tokenwarden_oauth::client::{ClientCredentials, Grant, TokenError, TokenResponse};
use tokenwarden_store::SealedColumn;
use tokenwarden_store::{
    Lease, RefreshCommit, StoreError, TokenHealth, TokenRecord, TokenSchedule,
};

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
    let sealed = SealedResponse::new(ctx, id, provider, resp, received_at);
    for _ in 0..5 {
        let mut t = ctx.store.get_token(id).await?;
        apply_response(ctx, &mut t, provider, resp, &sealed, received_at, new_grant);
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

/// A token response's secrets sealed for the row, and the access token's expiry.
struct SealedResponse {
    access: tokenwarden_store::Sealed,
    refresh: Option<tokenwarden_store::Sealed>,
    access_expires_at: Timestamp,
}

impl SealedResponse {
    fn new(
        ctx: &AppContext,
        id: TokenId,
        provider: &ResolvedProvider,
        resp: &TokenResponse,
        received_at: Timestamp,
    ) -> Self {
        let access = ctx.vault.seal(
            &resp.access_token,
            SealedColumn::TokenAccessToken,
            &id.to_string(),
        );
        let refresh = resp.refresh_token.as_ref().map(|r| {
            ctx.vault
                .seal(r, SealedColumn::TokenRefreshToken, &id.to_string())
        });
        let lifetime = resp
            .expires_in
            .unwrap_or(provider.default_access_token_lifetime)
            .min(10 * 365 * 86_400);
        SealedResponse {
            access,
            refresh,
            access_expires_at: received_at + chrono::Duration::seconds(lifetime as i64),
        }
    }
}

/// Puts a token response into the row read (`t`): see [`store_response`].
fn apply_response(
    ctx: &AppContext,
    t: &mut TokenRecord,
    provider: &ResolvedProvider,
    resp: &TokenResponse,
    sealed: &SealedResponse,
    received_at: Timestamp,
    new_grant: bool,
) {
    let (access, refresh, access_expires_at) =
        (&sealed.access, &sealed.refresh, sealed.access_expires_at);
    t.material.access_token = Some(access.clone());
    t.material.access_expires_at = Some(access_expires_at);
    t.material.token_type = Some(resp.token_type.clone());
    if let Some(scope) = &resp.scope {
        t.material.scopes = Some(scope.clone());
    }
    let reported = resp
        .refresh_token_expires_in
        .map(|s| received_at + chrono::Duration::seconds(s.min(20 * 365 * 86_400) as i64));
    if !t.grant.renews_with_refresh_token() {
        // Renewed with the grant's own credentials: no refresh token to keep or to expire.
        t.material.refresh_token = None;
        t.material.refresh_expires_at = None;
        if new_grant {
            t.material.issued_at = Some(received_at);
        }
    } else if new_grant {
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
    // A refresh does not make a refresh token (or a client secret) that dies soon any younger.
    (t.status, t.status_reason) = expiry_status(t, received_at, ctx.first_lead_time());
}

/// The status of a token that can serve, from what expires on it (its refresh token, its
/// client secret: the sooner counts), with the reason when it expires soon. The one place the
/// wording lives (a refresh, the background pass, an edit of the secret's expiry).
pub fn expiry_status(
    t: &TokenRecord,
    now: Timestamp,
    first_lead: tokenwarden_domain::LeadTime,
) -> (TokenStatus, Option<String>) {
    let (refresh, secret) = (t.material.refresh_expires_at, t.client_secret_expires_at);
    match TokenStatus::from_expiries(refresh, secret, now, first_lead) {
        TokenStatus::ExpiringSoon => {
            let (what, exp) = match (refresh, secret) {
                (Some(r), Some(s)) if s < r => ("client secret", s),
                (Some(r), _) => ("refresh token", r),
                (None, Some(s)) => ("client secret", s),
                (None, None) => return (TokenStatus::Healthy, None),
            };
            (
                TokenStatus::ExpiringSoon,
                Some(format!(
                    "the {what} expires {}",
                    exp.format("%Y-%m-%d %H:%M UTC")
                )),
            )
        }
        other => (other, None),
    }
}

/// The refresh-storm guard, relative to the provider's lifetime: an access token still valid
/// and younger than half its lifetime (from `last_success_at`, when it was received, to its
/// expiry) is not refreshed again, whatever validity a reader asks for. So a token is refreshed
/// at most about once per half-lifetime; with lifetimes of at least twice the asked validity
/// the guard never holds a needed refresh back. The one place this rule lives.
pub fn refresh_held_back(
    t: &TokenRecord,
    h: &tokenwarden_store::TokenHealth,
    now: Timestamp,
) -> bool {
    match (t.material.access_expires_at, h.last_success_at) {
        (Some(exp), Some(received)) if t.material.access_token.is_some() && exp > now => {
            now < received + (exp - received) / 2
        }
        _ => false,
    }
}

/// Why a refresh did not give a token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the token needs re-authorization: {0}")]
    NeedsReauthorization(String),
    #[error("the token needs new client credentials: {0}")]
    NeedsCredentials(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    #[error("another instance is refreshing this token")]
    Busy,
    #[error(transparent)]
    Core(#[from] Error),
}

const LEASE_SECONDS: i64 = 30;

/// R9's renewal before the provider call is skipped within this long of taking the lease (by
/// both the monotonic clock and the service clock): at least 25 of its 30 s are then left, so
/// no other instance can hold it (leases already assume clocks agree far better than that).
/// A holder paused longer renews as before. Saves a write (an fsync on SQLite) per refresh.
const RENEW_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// What the background pass stores with a refresh it starts: the `check_seq` it read the
/// token with, and the token's next check computed from its state after the refresh (stored in
/// the refresh's own transaction, see [`tokenwarden_store::RefreshCommit::schedule`]).
pub struct AfterRefresh<'a> {
    pub check_seq: i64,
    pub schedule: &'a (dyn Fn(&TokenRecord, &TokenHealth) -> TokenSchedule + Send + Sync),
}

/// A refresh's result: the token as it is now, and whether this call wrote it (then the
/// lease was released and any [`AfterRefresh`] schedule stored in the same transaction).
#[derive(Debug)]
pub struct Refreshed {
    pub token: TokenRecord,
    pub wrote: bool,
}

/// Refreshes a token: take the token's lease, re-read the row (another instance may have
/// refreshed already), call the provider, commit access and refresh token together while still
/// holding the lease. Permanent refusals mark the token `needs_reauthorization` (after a
/// re-read shows nobody rotated it meanwhile); transient ones change nothing.
pub async fn refresh(
    ctx: &AppContext,
    id: TokenId,
    min_valid_until: Timestamp,
) -> Result<TokenRecord, RefreshError> {
    refresh_then(ctx, id, min_valid_until, None)
        .await
        .map(|r| r.token)
}

/// [`refresh`], storing the background pass's next check with a successful refresh.
pub async fn refresh_then(
    ctx: &AppContext,
    id: TokenId,
    min_valid_until: Timestamp,
    after: Option<AfterRefresh<'_>>,
) -> Result<Refreshed, RefreshError> {
    run(ctx, id, min_valid_until, after, Purpose::Refresh).await
}

/// Gets a new access token for a token whose grant needs no sign-in (client credentials),
/// whatever its status: its first one once the client secret is stored, or one with new
/// credentials after the provider refused the old ones. The same path as a refresh (the
/// token's lease, one provider call, one commit); on success a token that could not serve
/// before is authorized (`lifecycle::token_authorized`: its apps resume), on a refusal it is
/// marked and its apps stop. `actor` is who asked.
pub async fn obtain(
    ctx: &AppContext,
    id: TokenId,
    actor: &str,
) -> Result<TokenRecord, RefreshError> {
    let far = ctx.clock.now() + chrono::Duration::days(3650);
    run(ctx, id, far, None, Purpose::Obtain { actor })
        .await
        .map(|r| r.token)
}

/// Why a renewal runs.
#[derive(Clone, Copy)]
enum Purpose<'a> {
    /// Keep a usable token usable (a read, the background pass).
    Refresh,
    /// An admin's action gets a new access token with the stored credentials, whatever the
    /// token's state ([`obtain`]).
    Obtain { actor: &'a str },
}

async fn run(
    ctx: &AppContext,
    id: TokenId,
    min_valid_until: Timestamp,
    after: Option<AfterRefresh<'_>>,
    purpose: Purpose<'_>,
) -> Result<Refreshed, RefreshError> {
    let now = ctx.clock.now();
    // A refresh rotates the refresh token: never store its successor in a database file that
    // is gone.
    ctx.store.check_storage().map_err(Error::from)?;
    // Backing off after transient failures: say when the next attempt is, do not hammer. (An
    // admin's explicit action tries at once; the background pass read the token's bookkeeping
    // with it and does not start a refresh while it backs off.)
    if matches!(purpose, Purpose::Refresh)
        && after.is_none()
        && let Ok(Some(h)) = ctx.store.get_token_health(id).await
        && let Some(next) = h.next_attempt_at.filter(|n| *n > now)
    {
        let current = ctx.store.get_token(id).await.map_err(Error::from)?;
        if current
            .material
            .access_expires_at
            .is_some_and(|e| e > min_valid_until)
        {
            return Ok(Refreshed {
                token: current,
                wrote: false,
            });
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
        .map_err(Error::from)?
    else {
        ctx.metrics.lease_contended(LeaseKind::Refresh);
        return Err(RefreshError::Busy);
    };
    let taken = (std::time::Instant::now(), now);
    let result = refresh_holding(ctx, id, min_valid_until, &lease, taken, after, purpose).await;
    if !matches!(result, Ok(Refreshed { wrote: true, .. })) {
        let _ = ctx.store.release_lease(&lease).await;
    }
    result
}

async fn refresh_holding(
    ctx: &AppContext,
    id: TokenId,
    min_valid_until: Timestamp,
    lease: &Lease,
    taken: (std::time::Instant, Timestamp),
    after: Option<AfterRefresh<'_>>,
    purpose: Purpose<'_>,
) -> Result<Refreshed, RefreshError> {
    let unchanged = |token| {
        Ok(Refreshed {
            token,
            wrote: false,
        })
    };
    // The token and its bookkeeping as they are now that the lease is ours (one statement).
    let (t, h) = ctx
        .store
        .get_token_with_health(id)
        .await
        .map_err(Error::from)?;
    let h = h.unwrap_or_else(|| TokenHealth::new(id));
    let refreshing = matches!(purpose, Purpose::Refresh);
    if refreshing
        && t.material.access_token.is_some()
        && t.material
            .access_expires_at
            .is_some_and(|e| e > min_valid_until)
    {
        return unchanged(t); // someone refreshed it while we waited
    }
    // The provider's tokens live shorter than asked: the one in the row is the freshest there
    // is until half its lifetime has passed (an app asking for a large min_validity must not
    // turn every read into a provider call); the caller serves it with its true expiry.
    let now = ctx.clock.now();
    if refreshing && refresh_held_back(&t, &h, now) {
        return unchanged(t);
    }
    let renewal = renewal(&t)?;
    if refreshing && (t.status.is_dead() || t.status == TokenStatus::NotAuthorized) {
        return Err(RefreshError::NeedsReauthorization(
            t.status_reason
                .clone()
                .unwrap_or_else(|| t.status.to_string()),
        ));
    }
    let provider = crate::ops::grant::resolve(ctx, &t)?;
    let secrets = client_secrets(ctx, &t).await?;
    let creds = ClientCredentials {
        client_id: t.client_id.as_deref().unwrap_or_default(),
        secrets,
    };
    // R9: this instance may have been paused since it took the lease (reading, unsealing). Renew
    // it right before the provider sees the refresh token: a holder that lost the lease to
    // another instance must not send a refresh token that one may already have used. (Not
    // within RENEW_AFTER of taking it: nobody else can hold it yet.)
    let fresh = taken.0.elapsed() < RENEW_AFTER
        && ctx.clock.now() - taken.1 < chrono::Duration::from_std(RENEW_AFTER).unwrap_or_default();
    if !fresh
        && ctx
            .store
            .renew_lease(
                lease,
                chrono::Duration::seconds(LEASE_SECONDS),
                ctx.clock.now(),
            )
            .await
            .map_err(Error::from)?
            .is_none()
    {
        ctx.metrics.lease_contended(LeaseKind::Refresh);
        return Err(RefreshError::Busy);
    }
    let answer = match &renewal {
        // Minted here: nothing is sent anywhere, so it cannot be refused.
        Renewal::KeypairJwt => Ok(super::keypair::mint(ctx, &t).await?),
        Renewal::RefreshToken(sealed) => {
            let refresh_token = ctx
                .vault
                .open_secret(sealed, SealedColumn::TokenRefreshToken, &id.to_string())
                .await
                .map_err(Error::internal)?;
            ctx.oauth
                .token(
                    &provider,
                    &creds,
                    &Grant::Refresh {
                        refresh_token: &refresh_token,
                    },
                )
                .await
        }
        Renewal::ClientCredentials { .. } => {
            ctx.oauth
                .token(&provider, &creds, &Grant::ClientCredentials)
                .await
        }
    };
    let started = std::time::Instant::now();
    let counted = |outcome| {
        ctx.metrics
            .refresh(t.provider.as_str(), outcome, started.elapsed())
    };
    match answer {
        Ok(resp) => {
            let received_at = ctx.clock.now();
            let stored = commit_refresh(
                ctx,
                &t,
                &h,
                &provider,
                &resp,
                received_at,
                lease,
                after,
                purpose,
            )
            .await
            .map_err(Error::from);
            // Counted once stored: a refresh whose answer could not be stored failed.
            counted(if stored.is_ok() {
                RefreshOutcome::Ok
            } else {
                RefreshOutcome::Failed
            });
            let stored = stored?;
            if let Purpose::Obtain { actor } = purpose {
                crate::ops::lifecycle::token_authorized(ctx, &stored, t.status, actor).await;
            }
            Ok(Refreshed {
                token: stored,
                wrote: true,
            })
        }
        Err(e) if e.is_permanent() => {
            counted(RefreshOutcome::Refused);
            // R13: only if the row still holds what we sent (the refresh token).
            let current = ctx.store.get_token(id).await.map_err(Error::from)?;
            if !renewal.still_held_by(&current) {
                return unchanged(current);
            }
            let mut marked = current.clone();
            marked.status = renewal.refused_status();
            marked.status_reason = Some(match renewal {
                Renewal::RefreshToken(_) => format!("refresh refused: {e}"),
                Renewal::KeypairJwt => format!("the key-pair JWT was refused: {e}"),
                Renewal::ClientCredentials { .. } => {
                    format!("the provider refused the client credentials: {e}")
                }
            });
            let stored = match ctx
                .store
                .update_token_under_lease(&marked, lease, ctx.clock.now())
                .await
            {
                Ok(stored) => stored,
                Err(StoreError::VersionMismatch(_)) | Err(StoreError::LeaseLost(_)) => {
                    // Changed meanwhile (re-authorized, or another instance took over): its news wins.
                    return unchanged(ctx.store.get_token(id).await.map_err(Error::from)?);
                }
                Err(other) => return Err(Error::from(other).into()),
            };
            ctx.cache.forget_token(id);
            record_failure(ctx, &stored, &e.to_string(), true).await;
            let (action, kind, what) = renewal.refusal();
            let actor = match purpose {
                Purpose::Obtain { actor } => actor,
                Purpose::Refresh => "system",
            };
            audit::record(
                ctx,
                actor,
                action,
                Object::new("token", id, &t.name),
                Outcome::Failed,
                serde_json::json!({"error": e.to_string()}),
            )
            .await;
            // Apps stop once, when the token dies (not again at each later refusal).
            if !t.status.is_dead() {
                crate::ops::lifecycle::token_died(
                    ctx,
                    &stored,
                    kind,
                    &format!("the provider refused {what} ({e})"),
                )
                .await;
            }
            Err(match renewal {
                Renewal::RefreshToken(_) | Renewal::KeypairJwt => {
                    RefreshError::NeedsReauthorization(e.to_string())
                }
                Renewal::ClientCredentials { .. } => RefreshError::NeedsCredentials(e.to_string()),
            })
        }
        Err(TokenError::Transient(m)) | Err(TokenError::Refused { error: m, .. }) => {
            counted(RefreshOutcome::Failed);
            audit::record(
                ctx,
                "system",
                Action::TokenRefreshFailed,
                Object::new("token", id, &t.name),
                Outcome::Failed,
                serde_json::json!({"error": m}),
            )
            .await;
            record_failure(ctx, &t, &m, false).await;
            Err(RefreshError::Unavailable(m))
        }
    }
}

/// What a renewal presents to the provider, by the token's grant: the dispatch point of the
/// refresh engine (each grant's arm says what it sends and what a refusal means).
enum Renewal {
    /// Authorization code and device code: the stored refresh token (sealed, as read).
    RefreshToken(tokenwarden_store::Sealed),
    /// Client credentials (RFC 6749 4.4): the client id and secrets alone, as read.
    ClientCredentials {
        client_id: Option<String>,
        secrets: (
            Option<tokenwarden_store::Sealed>,
            Option<tokenwarden_store::Sealed>,
        ),
    },
    /// Snowflake key pair: a JWT minted from the token's key (no provider call).
    KeypairJwt,
}

impl Renewal {
    /// Whether the row still holds what was presented (R13: a refusal marks the token only
    /// then; otherwise someone stored newer material or credentials meanwhile and its news wins).
    fn still_held_by(&self, current: &TokenRecord) -> bool {
        match self {
            Renewal::RefreshToken(sealed) => {
                current.material.refresh_token.as_ref() == Some(sealed)
            }
            Renewal::KeypairJwt => true,
            Renewal::ClientCredentials { client_id, secrets } => {
                current.client_id == *client_id
                    && (&current.client_secret, &current.client_secret_2)
                        == (&secrets.0, &secrets.1)
            }
        }
    }

    /// The status a permanent refusal leaves the token in.
    fn refused_status(&self) -> TokenStatus {
        match self {
            Renewal::RefreshToken(_) | Renewal::KeypairJwt => TokenStatus::NeedsReauthorization,
            Renewal::ClientCredentials { .. } => TokenStatus::NeedsCredentials,
        }
    }

    /// A permanent refusal's audit action, event, and what was refused (for the message).
    fn refusal(&self) -> (Action, crate::ops::lifecycle::EventKind, &'static str) {
        use crate::ops::lifecycle::EventKind;
        match self {
            Renewal::RefreshToken(_) => (
                Action::TokenNeedsReauthorization,
                EventKind::TokenNeedsReauthorization,
                "the refresh token",
            ),
            Renewal::KeypairJwt => (
                Action::TokenNeedsReauthorization,
                EventKind::TokenNeedsReauthorization,
                "the key-pair JWT",
            ),
            Renewal::ClientCredentials { .. } => (
                Action::TokenNeedsCredentials,
                EventKind::TokenNeedsCredentials,
                "the client credentials",
            ),
        }
    }
}

fn renewal(t: &TokenRecord) -> Result<Renewal, RefreshError> {
    match t.grant {
        tokenwarden_domain::Grant::AuthorizationCode | tokenwarden_domain::Grant::DeviceCode => {
            match &t.material.refresh_token {
                Some(sealed) => Ok(Renewal::RefreshToken(sealed.clone())),
                None => Err(RefreshError::NeedsReauthorization(
                    "no refresh token is stored; authorize the token".into(),
                )),
            }
        }
        tokenwarden_domain::Grant::ClientCredentials => {
            if t.client_secret.is_none() && t.client_secret_2.is_none() {
                return Err(RefreshError::NeedsCredentials(
                    "no client secret is stored: set it".into(),
                ));
            }
            if t.client_id.as_deref().is_none_or(str::is_empty) {
                return Err(RefreshError::NeedsCredentials(
                    "no client id is stored: set it".into(),
                ));
            }
            Ok(Renewal::ClientCredentials {
                client_id: t.client_id.clone(),
                secrets: (t.client_secret.clone(), t.client_secret_2.clone()),
            })
        }
        tokenwarden_domain::Grant::SnowflakeKeypair => Ok(Renewal::KeypairJwt),
    }
}

/// Stores a successful refresh's answer under the lease, with the bookkeeping's success, its
/// audit record, the lease's release and the pass's next check, in one transaction; over the
/// row read under the lease (`t`) first, re-reading it if it changed meanwhile.
#[allow(clippy::too_many_arguments)]
async fn commit_refresh(
    ctx: &AppContext,
    t: &TokenRecord,
    h: &TokenHealth,
    provider: &ResolvedProvider,
    resp: &TokenResponse,
    received_at: Timestamp,
    lease: &Lease,
    after: Option<AfterRefresh<'_>>,
    purpose: Purpose<'_>,
) -> Result<TokenRecord, StoreError> {
    let sealed = SealedResponse::new(ctx, t.id, provider, resp, received_at);
    let mut health = h.clone();
    health.last_attempt_at = Some(received_at);
    health.last_success_at = Some(received_at);
    health.failures = 0;
    health.next_attempt_at = None;
    health.last_error = None;
    let (actor, action, new_grant) = match purpose {
        Purpose::Refresh => ("system", Action::TokenRefresh, false),
        Purpose::Obtain { actor } => (actor, Action::TokenAuthorize, true),
    };
    let audit = audit::event(
        ctx,
        actor,
        action,
        Object::new("token", t.id, &t.name),
        Outcome::Ok,
        // Which instance refreshed: how the work splits over several instances.
        serde_json::json!({"rotated": resp.refresh_token.is_some(), "instance": ctx.instance_id, "grant": t.grant}),
    );
    let mut current = t.clone();
    for attempt in 0..5 {
        if attempt > 0 {
            current = ctx.store.get_token(t.id).await?;
        }
        let mut next = current.clone();
        apply_response(
            ctx,
            &mut next,
            provider,
            resp,
            &sealed,
            received_at,
            new_grant,
        );
        // A new refresh-token expiry or status may make a reminder due at once: then the token
        // stays due and the next pass looks at it (as after any write).
        let same_course = next.status == current.status
            && next.material.refresh_expires_at == current.material.refresh_expires_at;
        let schedule = after
            .as_ref()
            .filter(|_| same_course)
            .map(|a| (a.check_seq, (a.schedule)(&next, &health)));
        let written = ctx
            .store
            .commit_refresh(&RefreshCommit {
                token: &next,
                lease,
                now: ctx.clock.now(),
                succeeded_at: received_at,
                audit: &audit,
                schedule,
            })
            .await;
        match written {
            Err(StoreError::VersionMismatch(_)) => continue,
            other => {
                ctx.cache.forget_token(t.id);
                return other;
            }
        }
    }
    Err(StoreError::VersionMismatch("token"))
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
        let apps = crate::ops::lifecycle::dependants(ctx, t)
            .await
            .unwrap_or_default();
        let mut data = crate::ops::lifecycle::token_data(t, None);
        data["error"] = serde_json::Value::String(error.chars().take(500).collect());
        let ev = crate::ops::lifecycle::new_event(
            ctx,
            crate::ops::lifecycle::EventKind::TokenRefreshFailed,
            format!(
                "Refreshing token {} failed ({error}); retrying with backoff, the current access token is still served while valid.",
                t.name
            ),
            data,
            apps.iter().map(|a| a.id.to_string()).collect(),
        );
        crate::ops::lifecycle::emit(ctx, ev).await;
    }
}
