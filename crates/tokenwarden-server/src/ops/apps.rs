//! Apps: create (with a first API key), change, delete; their API keys; start and stop by an
//! admin.

use crate::AppContext;
use crate::auth::{self, NewKey};
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::lifecycle::{self, EventKind};
use crate::ops::{Error, Result, retrying};
use tokenwarden_domain::{
    ApiKeyId, AppId, AppName, AppState, KeyLabel, StopReason, TokenName, TokenStatus,
};
use tokenwarden_store::{ApiKeyKind, ApiKeyRecord, AppRecord, StoreError};

/// A new app.
#[derive(Debug)]
pub struct NewApp {
    pub name: AppName,
    /// Names of the tokens it uses (its own app-level token of that name, else the global
    /// one). They need not exist yet.
    pub tokens: Vec<TokenName>,
}

/// A change to an app; `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct AppChanges {
    pub name: Option<AppName>,
    pub tokens: Option<Vec<TokenName>>,
    /// Apply only if the app is still at this version; without it, the change applies to the
    /// current state (re-read and retried if the app starts or stops meanwhile).
    pub version: Option<i64>,
}

fn dedup(mut names: Vec<TokenName>) -> Vec<TokenName> {
    names.sort();
    names.dedup();
    names
}

fn name_taken(name: &AppName) -> Error {
    Error::Conflict(format!("an app named {name} already exists"))
}

/// The app with this id.
pub async fn get(ctx: &AppContext, id: AppId) -> Result<AppRecord> {
    ctx.store
        .get_app(id)
        .await
        .map_err(Error::not_found_as(format!("app {:?}", id.to_string())))
}

/// Finds an app by id or by name.
pub async fn find(ctx: &AppContext, key: &str) -> Result<AppRecord> {
    let found = match AppId::parse(key) {
        Some(id) => ctx.store.get_app(id).await,
        None => match AppName::parse(key) {
            Ok(name) => ctx.store.get_app_by_name(&name).await,
            Err(_) => Err(StoreError::NotFound("app")),
        },
    };
    found.map_err(Error::not_found_as(format!("app {key:?}")))
}

/// Creates an app with its first API key (shown once by the caller, stored as a hash).
pub async fn create(ctx: &AppContext, actor: &str, new: NewApp) -> Result<(AppRecord, NewKey)> {
    let now = ctx.clock.now();
    let app = AppRecord {
        id: AppId::new_v7(now),
        name: new.name,
        state: AppState::Running,
        stop_reason: None,
        tokens: dedup(new.tokens),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let label = KeyLabel::parse("initial key").map_err(Error::internal)?;
    let key = auth::new_key(ApiKeyKind::App, Some(app.id), label, now);
    ctx.store
        .create_app(&app, &key.record)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => name_taken(&app.name),
            other => other.into(),
        })?;
    audit::record(
        ctx,
        actor,
        Action::AppCreate,
        Object::new("app", app.id, &app.name),
        Outcome::Ok,
        serde_json::json!({ "tokens": app.tokens, "api_key_id": key.record.id }),
    )
    .await;
    Ok((app, key))
}

/// Renames an app or changes the tokens it uses.
pub async fn update(
    ctx: &AppContext,
    actor: &str,
    id: AppId,
    changes: AppChanges,
) -> Result<AppRecord> {
    let changes = &changes;
    retrying(changes.version, move || async move {
        let before = get(ctx, id).await?;
        if let Some(v) = changes.version
            && v != before.version
        {
            return Err(StoreError::VersionMismatch("app").into());
        }
        let mut app = before.clone();
        if let Some(name) = &changes.name {
            app.name = name.clone();
        }
        if let Some(tokens) = &changes.tokens {
            app.tokens = dedup(tokens.clone());
        }
        if app.name == before.name && app.tokens == before.tokens {
            return Ok(before);
        }
        let updated = ctx
            .store
            .update_app(&app, ctx.clock.now())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => name_taken(&app.name),
                other => other.into(),
            })?;
        ctx.cache.clear_served();
        audit::record(
            ctx,
            actor,
            Action::AppUpdate,
            Object::new("app", updated.id, &updated.name),
            Outcome::Ok,
            serde_json::json!({ "name": [before.name.as_str(), updated.name.as_str()], "tokens": updated.tokens }),
        )
        .await;
        Ok(updated)
    })
    .await
}

/// Deletes an app, and with it (one statement, `ON DELETE CASCADE`) everything that is only
/// its: its app-level tokens (their material is gone; nobody else could read them), its API
/// keys (they stop working at once: on this instance now, elsewhere within the key cache's
/// few seconds) and its per-app notification channels. Global tokens it used stay. Never
/// refused for what it holds: the caller (the UI's confirmation) names what goes.
pub async fn delete(ctx: &AppContext, actor: &str, id: AppId) -> Result<AppRecord> {
    let app = get(ctx, id).await?;
    ctx.store.delete_app(app.id).await?;
    ctx.cache.forget_app_keys(app.id);
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        Action::AppDelete,
        Object::new("app", app.id, &app.name),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(app)
}

/// Makes another API key for an app (e.g. to rotate keys without downtime); the caller shows
/// it once. Without a label: `key`.
pub async fn create_key(
    ctx: &AppContext,
    actor: &str,
    id: AppId,
    label: Option<KeyLabel>,
) -> Result<(AppRecord, NewKey)> {
    let app = get(ctx, id).await?;
    let label = match label {
        Some(l) => l,
        None => KeyLabel::parse("key").map_err(Error::internal)?,
    };
    let key = auth::new_key(ApiKeyKind::App, Some(app.id), label, ctx.clock.now());
    ctx.store.create_api_key(&key.record).await?;
    audit::record(
        ctx,
        actor,
        Action::AppKeyCreate,
        Object::new("app", app.id, &app.name),
        Outcome::Ok,
        serde_json::json!({ "api_key_id": key.record.id, "label": key.record.label }),
    )
    .await;
    Ok((app, key))
}

/// Revokes one of an app's API keys; it stops working at once on this instance (within the
/// key cache's few seconds elsewhere). A key of another app is not found.
pub async fn revoke_key(
    ctx: &AppContext,
    actor: &str,
    id: AppId,
    key_id: &str,
) -> Result<ApiKeyRecord> {
    let app = get(ctx, id).await?;
    let not_found = || Error::NotFound(format!("API key {key_id:?} of app {}", app.name));
    let kid = ApiKeyId::parse(key_id).ok_or_else(not_found)?;
    let key = ctx.store.get_api_key(kid).await.map_err(|_| not_found())?;
    if key.app_id != Some(app.id) {
        return Err(not_found());
    }
    ctx.store.revoke_api_key(kid, ctx.clock.now()).await?;
    ctx.cache.forget_key(kid);
    audit::record(
        ctx,
        actor,
        Action::AppKeyRevoke,
        Object::new("app", app.id, &app.name),
        Outcome::Ok,
        serde_json::json!({ "api_key_id": kid }),
    )
    .await;
    Ok(key)
}

/// An admin stops an app: it stays stopped until an admin starts it. Audited and announced.
pub async fn stop(ctx: &AppContext, actor: &str, id: AppId) -> Result<AppRecord> {
    let app = retrying(None, move || async move {
        let mut app = get(ctx, id).await?;
        app.state = AppState::Stopped;
        app.stop_reason = Some(StopReason::Admin);
        Ok(ctx.store.update_app(&app, ctx.clock.now()).await?)
    })
    .await?;
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        Action::AppStop,
        Object::new("app", app.id, &app.name),
        Outcome::Ok,
        serde_json::json!({"reason": "stopped by an admin"}),
    )
    .await;
    let ev = lifecycle::new_event(
        ctx,
        EventKind::AppStopped,
        format!("App {} was stopped by {actor}.", app.name),
        lifecycle::app_data(&app),
        vec![app.id.to_string()],
    );
    lifecycle::emit(ctx, ev).await;
    Ok(app)
}

/// An admin starts an app; refused, with the reason in words, while a token it uses is dead.
pub async fn start(ctx: &AppContext, actor: &str, id: AppId) -> Result<AppRecord> {
    let app = retrying(None, move || start_once(ctx, id)).await?;
    if let Some(app) = app {
        ctx.cache.clear_served();
        audit::record(
            ctx,
            actor,
            Action::AppStart,
            Object::new("app", app.id, &app.name),
            Outcome::Ok,
            serde_json::json!({}),
        )
        .await;
        let ev = lifecycle::new_event(
            ctx,
            EventKind::AppStarted,
            format!("App {} was started by {actor}.", app.name),
            lifecycle::app_data(&app),
            vec![app.id.to_string()],
        );
        lifecycle::emit(ctx, ev).await;
        return Ok(app);
    }
    get(ctx, id).await
}

/// One attempt at starting: `None` when the app was running already.
async fn start_once(ctx: &AppContext, id: AppId) -> Result<Option<AppRecord>> {
    let mut app = get(ctx, id).await?;
    if let Some((token, status)) = lifecycle::dead_token_of(ctx, &app).await {
        let (code, what) = match status {
            TokenStatus::Expired => ("token_needs_reauthorization", "has expired"),
            TokenStatus::NeedsCredentials => (
                "token_needs_credentials",
                "needs new client credentials (store a new client secret on the token's page)",
            ),
            _ => ("token_needs_reauthorization", "needs re-authorization"),
        };
        return Err(Error::TokenUnusable {
            code,
            message: format!(
                "{} cannot start: token {token} {what}. Fix it on the token's page (re-authorize it, or store new credentials); the app then starts by itself.",
                app.name
            ),
        });
    }
    if app.state == AppState::Running {
        return Ok(None);
    }
    app.state = AppState::Running;
    app.stop_reason = None;
    Ok(Some(ctx.store.update_app(&app, ctx.clock.now()).await?))
}
