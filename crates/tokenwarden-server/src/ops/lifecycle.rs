//! What happens around a token's life: events for notification channels, apps that stop when a
//! token they use dies and start again by themselves when it is re-authorized.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use serde::{Deserialize, Serialize};
pub use tokenwarden_domain::EventKind;
use tokenwarden_domain::{AppState, Rfc3339, StopReason, Timestamp, TokenStatus};
use tokenwarden_store::{AppRecord, JobRecord, StoreError, TokenRecord};

/// One thing that happened, as queued for each channel. Never holds a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Stable across retries: receivers deduplicate on it.
    pub id: String,
    /// token.authorized, token.refresh_failed, token.needs_reauthorization, token.expiring,
    /// token.expired, token.restored, app.stopped, app.started, test.
    pub kind: String,
    pub at: Timestamp,
    /// One sentence for people.
    pub summary: String,
    pub data: serde_json::Value,
    /// The app this event concerns (app channels hear only about their app).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

pub fn token_data(t: &TokenRecord, app_name: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "refresh_token_expires_at": t.material.refresh_expires_at.map(Rfc3339),
        "token": {
            "id": t.id, "name": t.name, "provider": t.provider,
            "scope": if t.app_id.is_some() { "app" } else { "global" }, "app": app_name,
            "status": t.status, "refresh_token_expires_at": t.material.refresh_expires_at.map(Rfc3339),
            "access_token_expires_at": t.material.access_expires_at.map(Rfc3339),
        }
    })
}

pub fn app_data(a: &AppRecord) -> serde_json::Value {
    serde_json::json!({
        "app": {"id": a.id, "name": a.name, "state": a.state, "stop_reason": a.stop_reason.as_ref().map(ToString::to_string)}
    })
}

/// Queues `event` for every enabled channel that wants it. Queuing is a database insert, never a
/// network call: a slow or dead receiver cannot hold anything up (R38).
pub async fn emit(ctx: &AppContext, event: Event) {
    let channels = match ctx.store.list_channels().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, kind = %event.kind, "could not list notification channels");
            return;
        }
    };
    let app_ids: Vec<String> = event.apps.clone();
    for ch in channels.into_iter().filter(|c| c.enabled) {
        let wanted: Vec<String> = ch.config["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !wanted.is_empty()
            && !wanted.contains(&event.kind)
            && event.kind != EventKind::Test.as_str()
        {
            continue;
        }
        if let Some(app) = ch.app_id
            && !app_ids.contains(&app.to_string())
        {
            continue;
        }
        let job = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            kind: "deliver".into(),
            dedupe_key: Some(format!("{}:{}", ch.id, event.id)),
            payload: serde_json::json!({"channel_id": ch.id, "event": event}),
            run_at: event.at,
            attempts: 0,
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            done_at: None,
            created_at: ctx.clock.now(),
        };
        if let Err(e) = ctx.store.enqueue_job(&job).await {
            tracing::error!(error = %e, channel = %ch.id, "could not queue a notification");
        }
    }
}

pub fn new_event(
    ctx: &AppContext,
    kind: EventKind,
    summary: String,
    data: serde_json::Value,
    apps: Vec<String>,
) -> Event {
    Event {
        id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
        kind: kind.as_str().to_owned(),
        at: ctx.clock.now(),
        summary,
        data,
        apps,
    }
}

/// The apps whose token of this name resolves to `t`: for an app-level token its owner (if it
/// uses it), for a global one every app using the name without its own app-level token.
pub async fn dependants(ctx: &AppContext, t: &TokenRecord) -> Result<Vec<AppRecord>, StoreError> {
    let users = ctx.store.apps_using_token(&t.name).await?;
    let mut out = Vec::new();
    for app in users {
        let resolves_here = match t.app_id {
            Some(owner) => owner == app.id,
            None => matches!(
                ctx.store.find_token(Some(app.id), &t.name).await,
                Err(StoreError::NotFound(_))
            ),
        };
        if resolves_here {
            out.push(app);
        }
    }
    Ok(out)
}

async fn app_name(ctx: &AppContext, t: &TokenRecord) -> Option<String> {
    match t.app_id {
        Some(id) => ctx.store.get_app(id).await.ok().map(|a| a.name.to_string()),
        None => None,
    }
}

/// A token died (`needs_reauthorization` or `expired`, already stored): tell the channels, stop
/// every app depending on it with the reason, and tell each app.
pub async fn token_died(ctx: &AppContext, t: &TokenRecord, kind: EventKind, why: &str) {
    let owner = app_name(ctx, t).await;
    let apps = dependants(ctx, t).await.unwrap_or_default();
    // The background pass's reason (`engine::expire`) says which expiry it was.
    let secret_expired = t
        .status_reason
        .as_deref()
        .is_some_and(|r| r.starts_with("the client secret expired"));
    let summary = match kind {
        EventKind::TokenExpired if secret_expired => format!(
            "The client secret of {} expired; an admin must store a new one (with its new expiry). {why}",
            t.name
        ),
        EventKind::TokenExpired => format!(
            "The refresh token of {} expired; an admin must re-authorize it. {why}",
            t.name
        ),
        EventKind::TokenNeedsCredentials => format!(
            "Token {} needs new client credentials: {why}. Store a new client secret; the apps start again by themselves.",
            t.name
        ),
        _ => format!("Token {} needs re-authorization: {why}", t.name),
    };
    let mut data = token_data(t, owner.as_deref());
    data["reason"] = serde_json::Value::String(why.to_owned());
    data["stopped_apps"] =
        serde_json::json!(apps.iter().map(|a| a.name.to_string()).collect::<Vec<_>>());
    emit(
        ctx,
        new_event(
            ctx,
            kind,
            summary,
            data,
            apps.iter().map(|a| a.id.to_string()).collect(),
        ),
    )
    .await;
    for app in apps {
        stop_app_for_token(ctx, app, t).await;
    }
}

async fn stop_app_for_token(ctx: &AppContext, mut app: AppRecord, t: &TokenRecord) {
    if app.state == AppState::Stopped {
        return; // already stopped (by an admin, or for another token): keep that reason
    }
    for _ in 0..3 {
        app.state = AppState::Stopped;
        app.stop_reason = Some(StopReason::WaitingForToken {
            token: t.name.to_string(),
        });
        match ctx.store.update_app(&app, ctx.clock.now()).await {
            Ok(stopped) => {
                ctx.cache.clear_served();
                audit::record(
                    ctx,
                    "system",
                    Action::AppStop,
                    Object::new("app", stopped.id, &stopped.name),
                    Outcome::Ok,
                    serde_json::json!({"reason": format!("waiting for token {}", t.name)}),
                )
                .await;
                let summary = format!(
                    "App {} stopped: waiting for token {} to be re-authorized.",
                    stopped.name, t.name
                );
                emit(
                    ctx,
                    new_event(
                        ctx,
                        EventKind::AppStopped,
                        summary,
                        app_data(&stopped),
                        vec![stopped.id.to_string()],
                    ),
                )
                .await;
                return;
            }
            Err(StoreError::VersionMismatch(_)) => match ctx.store.get_app(app.id).await {
                Ok(fresh) if fresh.state == AppState::Running => app = fresh,
                _ => return,
            },
            Err(e) => {
                tracing::error!(error = %e, app = %app.name, "could not stop app");
                return;
            }
        }
    }
}

/// A token was authorized. Tell the channels; if it had died, it is restored: every app stopped
/// waiting for it starts again by itself (unless another token it uses is still dead).
pub async fn token_authorized(ctx: &AppContext, t: &TokenRecord, was: TokenStatus, actor: &str) {
    let owner = app_name(ctx, t).await;
    let exp = t
        .material
        .refresh_expires_at
        .map(|e| {
            format!(
                " The refresh token is valid until {}.",
                e.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .unwrap_or_default();
    let apps = dependants(ctx, t).await.unwrap_or_default();
    let app_ids: Vec<String> = apps.iter().map(|a| a.id.to_string()).collect();
    emit(
        ctx,
        new_event(
            ctx,
            EventKind::TokenAuthorized,
            format!("Token {} was authorized by {actor}.{exp}", t.name),
            token_data(t, owner.as_deref()),
            app_ids.clone(),
        ),
    )
    .await;
    if was.is_dead() {
        emit(
            ctx,
            new_event(
                ctx,
                EventKind::TokenRestored,
                format!(
                    "Token {} works again; the apps waiting for it are starting.",
                    t.name
                ),
                token_data(t, owner.as_deref()),
                app_ids,
            ),
        )
        .await;
    }
    for app in apps {
        if app.state == AppState::Stopped
            && matches!(&app.stop_reason, Some(StopReason::WaitingForToken { token }) if token == t.name.as_str())
        {
            resume_if_healthy(ctx, app).await;
        }
    }
}

/// The first dead token an app uses, if any: (name, status).
pub async fn dead_token_of(ctx: &AppContext, app: &AppRecord) -> Option<(String, TokenStatus)> {
    for name in &app.tokens {
        if let Ok(Some((t, _))) = crate::ops::grant::resolve_token(ctx, Some(app.id), name).await
            && t.status.is_dead()
        {
            return Some((t.name.to_string(), t.status));
        }
    }
    None
}

async fn resume_if_healthy(ctx: &AppContext, mut app: AppRecord) {
    if let Some((other, _)) = dead_token_of(ctx, &app).await {
        app.stop_reason = Some(StopReason::WaitingForToken { token: other });
        let _ = ctx.store.update_app(&app, ctx.clock.now()).await;
        return;
    }
    app.state = AppState::Running;
    app.stop_reason = None;
    match ctx.store.update_app(&app, ctx.clock.now()).await {
        Ok(started) => {
            ctx.cache.clear_served();
            audit::record(
                ctx,
                "system",
                Action::AppStart,
                Object::new("app", started.id, &started.name),
                Outcome::Ok,
                serde_json::json!({"reason": "its tokens work again"}),
            )
            .await;
            emit(
                ctx,
                new_event(
                    ctx,
                    EventKind::AppStarted,
                    format!("App {} started again: its tokens work.", started.name),
                    app_data(&started),
                    vec![started.id.to_string()],
                ),
            )
            .await;
        }
        Err(e) => tracing::warn!(error = %e, app = %app.name, "could not restart app"),
    }
}
