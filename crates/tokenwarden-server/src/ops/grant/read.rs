//! The usable token: which token a name means for an app, and an access token from it that is
//! valid long enough, refreshed first if needed.

use super::open_material;
use super::refresh::{RefreshError, refresh, refresh_held_back};
use crate::AppContext;
use crate::cache::{ReaderKey, Served, StoreGate};
use crate::ops::metrics::ReadOutcome;
use crate::ops::{Error, Result, audit};
use crate::reads::ReadBy;
use secrecy::SecretString;
use std::sync::Arc;
use tokenwarden_domain::{AppId, AppName, AppState, TokenName, TokenStatus};
use tokenwarden_store::{AppReading, SealedColumn, StoreError, TokenRecord};

/// An access token to serve and the token it came from.
#[derive(Debug)]
pub struct Usable {
    pub token: TokenRecord,
    pub access: SecretString,
    /// The access token is valid for less than asked, but it is the freshest there is (the
    /// provider's tokens live shorter than asked): served with its true expiry.
    pub short: bool,
}

/// The largest `min_validity` a reader may ask for (a day); more is a bad request.
pub const MAX_MIN_VALIDITY: u64 = 86_400;

/// Returns the token with an access token valid for at least `min_validity` seconds,
/// refreshing it if needed, and the opened access token. When the provider's tokens live
/// shorter than asked, the freshest valid one is returned (`short`), refreshed at most about
/// once per half-lifetime ([`refresh_held_back`]): a healthy provider never makes this fail.
pub async fn usable_token(ctx: &AppContext, t: TokenRecord, min_validity: u64) -> Result<Usable> {
    match t.status {
        TokenStatus::NotAuthorized => {
            return Err(Error::TokenUnusable {
                code: "token_not_authorized",
                message: if t.grant.needs_sign_in() {
                    format!(
                        "token {} has not been authorized yet: an admin must sign in once (POST /api/v1/tokens/{}/authorize)",
                        t.name, t.id
                    )
                } else {
                    format!(
                        "token {} has no access token yet: an admin must store its client id and secret (PATCH /api/v1/tokens/{}), then it fetches one",
                        t.name, t.id
                    )
                },
            });
        }
        TokenStatus::NeedsReauthorization | TokenStatus::Expired => {
            return Err(Error::TokenUnusable {
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
        TokenStatus::NeedsCredentials => {
            return Err(Error::TokenUnusable {
                code: "token_needs_credentials",
                message: format!(
                    "token {} needs new client credentials from an admin{}",
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
    let now = ctx.clock.now();
    let needed = now + chrono::Duration::seconds(min_validity.min(MAX_MIN_VALIDITY) as i64);
    let fresh = |t: &TokenRecord| {
        t.material.access_token.is_some()
            && t.material.access_expires_at.is_some_and(|e| e > needed)
    };
    let valid = |t: &TokenRecord| {
        t.material.access_token.is_some()
            && t.material
                .access_expires_at
                .is_some_and(|e| e > ctx.clock.now())
    };
    let mut t = t;
    if !fresh(&t) {
        let held_back = match ctx.store.get_token_health(t.id).await? {
            Some(h) => refresh_held_back(&t, &h, now),
            None => false,
        };
        if !held_back {
            let mut attempts = 0;
            t = loop {
                match refresh(ctx, t.id, needed).await {
                    Ok(t) => break t,
                    Err(RefreshError::Busy) if attempts < 50 => {
                        // Another caller is refreshing: wait for its result.
                        attempts += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        let current = ctx.store.get_token(t.id).await?;
                        let refreshed =
                            current.material.access_expires_at != t.material.access_expires_at;
                        if fresh(&current) || (refreshed && valid(&current)) {
                            break current;
                        }
                    }
                    Err(RefreshError::Busy) => {
                        return Err(Error::ProviderUnavailable {
                            message: "the token is being refreshed; retry shortly".into(),
                            retry_after: 5,
                        });
                    }
                    Err(RefreshError::NeedsReauthorization(m)) => {
                        return Err(Error::TokenUnusable {
                            code: "token_needs_reauthorization",
                            message: format!(
                                "token {} needs re-authorization by an admin: {m}",
                                t.name
                            ),
                        });
                    }
                    Err(RefreshError::NeedsCredentials(m)) => {
                        return Err(Error::TokenUnusable {
                            code: "token_needs_credentials",
                            message: format!(
                                "token {} needs new client credentials from an admin: {m}",
                                t.name
                            ),
                        });
                    }
                    Err(RefreshError::Unavailable(m)) => {
                        return Err(Error::ProviderUnavailable {
                            message: format!(
                                "token {} could not be refreshed right now: {m}",
                                t.name
                            ),
                            retry_after: 30,
                        });
                    }
                    Err(RefreshError::Core(e)) => return Err(e),
                }
            };
        }
        if !valid(&t) {
            return Err(Error::ProviderUnavailable {
                message: format!(
                    "the provider issued token {} already expired; retry shortly",
                    t.name
                ),
                retry_after: 30,
            });
        }
    }
    let short = !fresh(&t);
    let sealed = t
        .material
        .access_token
        .clone()
        .ok_or_else(|| Error::internal("no access token"))?;
    let access = open_material(ctx, &t, SealedColumn::TokenAccessToken, &sealed).await?;
    Ok(Usable {
        token: t,
        access,
        short,
    })
}

/// Where a token name resolved to for an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The app's own app-level token of that name.
    App,
    /// The global token of that name.
    Global,
}

/// The token a name means for `app`: its own app-level token of that name, else the global
/// one; without an app, the global one. `None` when there is neither. The one place this rule
/// lives.
pub async fn resolve_token(
    ctx: &AppContext,
    app: Option<AppId>,
    name: &TokenName,
) -> Result<Option<(TokenRecord, Scope)>> {
    if let Some(app) = app {
        match ctx.store.find_token(Some(app), name).await {
            Ok(t) => return Ok(Some((t, Scope::App))),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match ctx.store.find_token(None, name).await {
        Ok(t) => Ok(Some((t, Scope::Global))),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Who reads an access token.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    /// An app, with its API key: only tokens it uses; its own app-level token first.
    App(AppId),
    /// An admin (by label), optionally reading as the app named `as_app`.
    Admin {
        label: &'a str,
        as_app: Option<&'a str>,
    },
}

impl<'a> Reader<'a> {
    /// How the read is counted in the read statistics.
    fn by(&self) -> ReadBy<'a> {
        match *self {
            Reader::App(app) => ReadBy::App(app),
            Reader::Admin { label, .. } => ReadBy::Admin(label),
        }
    }
}

/// The read path: a current access token of `name` for `reader`, valid for at least
/// `min_validity` seconds (0 to [`MAX_MIN_VALIDITY`], else `Invalid`) or, when the provider's
/// tokens live shorter, the freshest one; from memory while fresh, else from the database
/// (refreshed first if needed); while the database is down, a cached token still valid is
/// served. Each read is counted for `reader` in the read statistics, and by outcome and
/// latency in the metrics (`ops::metrics::Metrics::read`: atomic adds, no lock, no allocation).
pub async fn read_access_token(
    ctx: &AppContext,
    reader: Reader<'_>,
    name: &str,
    min_validity: i64,
) -> Result<Arc<Served>> {
    let started = std::time::Instant::now();
    let answer = read_counted(ctx, reader, name, min_validity).await;
    ctx.metrics
        .read(ReadOutcome::of(&answer), started.elapsed());
    answer
}

async fn read_counted(
    ctx: &AppContext,
    reader: Reader<'_>,
    name: &str,
    min_validity: i64,
) -> Result<Arc<Served>> {
    let min_validity = u64::try_from(min_validity)
        .ok()
        .filter(|m| *m <= MAX_MIN_VALIDITY)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "min_validity must be a number of seconds from 0 to {MAX_MIN_VALIDITY}"
            ))
        })?;
    let now = ctx.clock.now();
    // No key string is built per read: the cache is keyed by reader, then by name.
    let cache_key = match reader {
        Reader::App(app_id) => ReaderKey::App(app_id),
        Reader::Admin { as_app, .. } => ReaderKey::Admin(as_app.map(Into::into)),
    };
    let min = chrono::Duration::seconds(min_validity as i64);
    // The hot path: a fresh answer from memory, no database at all.
    let served = match ctx.cache.served(&cache_key, name, now, min, false) {
        Some(hit) => {
            ctx.metrics.read_cache_hit();
            hit
        }
        None => {
            let gate = ctx.cache.store_gate();
            let answer = match gate {
                // R16: the database is known down and another reader is trying it again.
                StoreGate::Skip => Err(Error::Unavailable),
                StoreGate::Open | StoreGate::Probe(_) => {
                    let answer = read_from_store(ctx, reader, name, min_validity).await;
                    ctx.cache
                        .store_answered(!matches!(answer, Err(Error::Unavailable)));
                    answer
                }
            };
            drop(gate);
            match answer {
                Ok(served) => {
                    let served = Arc::new(served);
                    ctx.cache.put_served(cache_key, name, Arc::clone(&served));
                    served
                }
                // R16: the database is down, but a cached token is still valid: keep serving it.
                Err(Error::Unavailable) => ctx
                    .cache
                    .served(&cache_key, name, now, min, true)
                    .ok_or(Error::Unavailable)?,
                Err(e) => return Err(e),
            }
        }
    };
    if let Some((app, why)) = &served.app_stopped {
        return Err(Error::TokenUnusable {
            code: "app_stopped",
            message: format!("app {app} is stopped ({why}); an admin can start it"),
        });
    }
    ctx.reads.record(served.token_id, reader.by(), now);
    Ok(served)
}

/// R26: an app asking for a token it does not use is audited, repeats within a minute counted
/// into the next record (`cache::ReadCache::count_denial`).
async fn audit_cross_app_denial(ctx: &AppContext, app: &AppReading, name: &TokenName) {
    let Some(repeats) = ctx
        .cache
        .count_denial(format!("{}:{name}", app.id), ctx.clock.now())
    else {
        return;
    };
    audit::record(
        ctx,
        &format!("app:{}", app.id),
        audit::Action::AuthForbidden,
        audit::Object {
            kind: "token",
            id: None,
            name: Some(name.to_string()),
        },
        audit::Outcome::Denied,
        serde_json::json!({
            "reason": "the app does not use this token",
            "app": app.name.to_string(),
            "repeats_since_last_record": repeats,
        }),
    )
    .await;
}

/// The read path through the database: who may read which token, refreshing it if needed.
async fn read_from_store(
    ctx: &AppContext,
    reader: Reader<'_>,
    name: &str,
    min_validity: u64,
) -> Result<Served> {
    let not_found = || Error::NotFound(format!("token {name:?}"));
    let token_name = TokenName::parse(name).map_err(|_| not_found())?;
    let app = match reader {
        Reader::App(app_id) => {
            // One binding, not the app's whole token list.
            let app = ctx.store.app_reading(app_id, &token_name).await?;
            if !app.uses {
                audit_cross_app_denial(ctx, &app, &token_name).await;
                return Err(Error::NotFound(format!(
                    "token {name:?} (app {} does not use it; an admin can add it to the app's tokens)",
                    app.name
                )));
            }
            Some(app)
        }
        Reader::Admin {
            as_app: Some(app), ..
        } => {
            let app_name =
                AppName::parse(app).map_err(|_| Error::NotFound(format!("app {app:?}")))?;
            let a = ctx
                .store
                .get_app_by_name(&app_name)
                .await
                .map_err(Error::not_found_as(format!("app {app:?}")))?;
            Some(AppReading {
                uses: a.tokens.contains(&token_name),
                id: a.id,
                name: a.name,
                state: a.state,
                stop_reason: a.stop_reason,
            })
        }
        Reader::Admin { as_app: None, .. } => None,
    };
    let (t, _) = resolve_token(ctx, app.as_ref().map(|a| a.id), &token_name)
        .await?
        .ok_or_else(not_found)?;
    let Usable {
        token: t,
        access,
        short,
    } = usable_token(ctx, t, min_validity).await?;
    let app_stopped = match (&app, reader) {
        (Some(a), Reader::App(_)) if a.state == AppState::Stopped => Some((
            a.name.to_string(),
            a.stop_reason
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "stopped".into()),
        )),
        _ => None,
    };
    Ok(Served::new(
        t.id,
        &access,
        t.material.token_type.as_deref().unwrap_or("Bearer"),
        t.material
            .access_expires_at
            .unwrap_or_else(|| ctx.clock.now()),
        app_stopped,
        short,
        ctx.clock.now(),
    ))
}
