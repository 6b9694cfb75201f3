//! Notification channels (webhooks signed the Standard Webhooks way, email), their delivery
//! log, a test send, and the audit log.

use super::apps::find_app;
use super::{ApiJson, CommonErrors};
use crate::AppContext;
use crate::audit::{self, Object};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::lifecycle::EVENT_KINDS;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokenwarden_store::{AuditFilter, ChannelRecord, StoreError};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    name: String,
    /// `webhook` or `email`.
    kind: String,
    /// Webhook: where to POST events.
    url: Option<String>,
    /// Email: recipients.
    #[serde(default)]
    to: Vec<String>,
    /// Event kinds to send; empty = all.
    #[serde(default)]
    events: Vec<String>,
    /// Only events about this app and the tokens it uses (a per-app channel).
    app: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchChannel {
    name: Option<String>,
    url: Option<String>,
    to: Option<Vec<String>>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    id: String,
    name: String,
    kind: String,
    url: Option<String>,
    to: Vec<String>,
    events: Vec<String>,
    /// The app whose events this channel hears (none: all events).
    app: Option<String>,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Webhook signing secret (`whsec_...`): only in the answer that creates the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

async fn view(ctx: &AppContext, c: &ChannelRecord) -> ChannelView {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let app = match c.app_id {
        Some(id) => ctx.store.get_app(id).await.ok().map(|a| a.name.to_string()),
        None => None,
    };
    ChannelView {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        url: c.config["url"].as_str().map(str::to_owned),
        to: strings(&c.config["to"]),
        events: strings(&c.config["events"]),
        app,
        enabled: c.enabled,
        created_at: c.created_at,
        updated_at: c.updated_at,
        secret: None,
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "name must be 1-100 characters without control characters".into(),
        ));
    }
    Ok(())
}

fn check_events(events: &[String]) -> ApiResult<()> {
    for e in events {
        if !EVENT_KINDS.contains(&e.as_str()) {
            return Err(ApiError::InvalidRequest(format!(
                "unknown event kind {e:?}; known: {}",
                EVENT_KINDS.join(", ")
            )));
        }
    }
    Ok(())
}

fn check_recipients(to: &[String]) -> ApiResult<()> {
    crate::delivery::check_recipients(to).map_err(ApiError::InvalidRequest)
}

fn check_url(url: &str) -> ApiResult<()> {
    tokenwarden_notify::check_webhook_url(url).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

async fn load(ctx: &AppContext, id: &str) -> ApiResult<ChannelRecord> {
    ctx.store.get_channel(id).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::NotFound(format!("notification channel {id:?}")),
        other => other.into(),
    })
}

/// List notification channels.
#[utoipa::path(get, path = "/api/v1/notification-channels", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChannelView>), CommonErrors))]
pub async fn list_channels(
    State(ctx): State<AppContext>,
    _: Admin,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let mut out = Vec::new();
    for c in ctx.store.list_channels().await? {
        out.push(view(&ctx, &c).await);
    }
    Ok(Json(out))
}

/// Add a webhook or email channel. A webhook's signing secret is answered once.
#[utoipa::path(post, path = "/api/v1/notification-channels", tag = "notifications", security(("bearer" = [])),
    request_body = CreateChannel, responses((status = 201, body = ChannelView), CommonErrors))]
pub async fn create_channel(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    ApiJson(req): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    check_name(&req.name)?;
    check_events(&req.events)?;
    let id = format!("ch_{}", uuid::Uuid::new_v4().simple());
    let (config, secret) = match req.kind.as_str() {
        "webhook" => {
            let url = req
                .url
                .clone()
                .ok_or_else(|| ApiError::InvalidRequest("a webhook channel needs a url".into()))?;
            check_url(&url)?;
            (
                serde_json::json!({"url": url, "events": req.events}),
                Some(tokenwarden_notify::new_webhook_secret()),
            )
        }
        "email" => {
            check_recipients(&req.to)?;
            (
                serde_json::json!({"to": req.to, "events": req.events}),
                None,
            )
        }
        other => {
            return Err(ApiError::InvalidRequest(format!(
                "kind must be webhook or email, not {other:?}"
            )));
        }
    };
    let app_id = match &req.app {
        Some(a) => Some(
            find_app(&ctx, a)
                .await
                .map_err(|_| ApiError::InvalidRequest(format!("no app named {a}")))?
                .id,
        ),
        None => None,
    };
    let now = ctx.clock.now();
    let rec = ChannelRecord {
        id: id.clone(),
        app_id,
        kind: req.kind.clone(),
        name: req.name.trim().to_owned(),
        config,
        secret: secret
            .as_ref()
            .map(|s| ctx.vault.seal(s, "notification_channels", "secret", &id)),
        enabled: req.enabled,
        created_at: now,
        updated_at: now,
    };
    ctx.store.create_channel(&rec).await?;
    audit::record(
        &ctx,
        &who.actor(),
        "channel.create",
        Object::new("channel", &id, &rec.name),
        "ok",
        serde_json::json!({"kind": rec.kind}),
    )
    .await;
    let mut v = view(&ctx, &rec).await;
    v.secret = secret.map(|s| s.expose_secret().to_owned());
    Ok((StatusCode::CREATED, Json(v)))
}

/// Change a channel.
#[utoipa::path(patch, path = "/api/v1/notification-channels/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PatchChannel,
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn patch_channel(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchChannel>,
) -> ApiResult<Json<ChannelView>> {
    let mut c = load(&ctx, &id).await?;
    if let Some(n) = &req.name {
        check_name(n)?;
        c.name = n.trim().to_owned();
    }
    if let Some(events) = &req.events {
        check_events(events)?;
        c.config["events"] = serde_json::json!(events);
    }
    if let Some(url) = &req.url {
        if c.kind != "webhook" {
            return Err(ApiError::InvalidRequest(
                "only a webhook channel has a url".into(),
            ));
        }
        check_url(url)?;
        c.config["url"] = serde_json::json!(url);
    }
    if let Some(to) = &req.to {
        if c.kind != "email" {
            return Err(ApiError::InvalidRequest(
                "only an email channel has recipients".into(),
            ));
        }
        check_recipients(to)?;
        c.config["to"] = serde_json::json!(to);
    }
    if let Some(e) = req.enabled {
        c.enabled = e;
    }
    c.updated_at = ctx.clock.now();
    ctx.store.update_channel(&c).await?;
    audit::record(
        &ctx,
        &who.actor(),
        "channel.update",
        Object::new("channel", &c.id, &c.name),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(Json(view(&ctx, &c).await))
}

/// Delete a channel.
#[utoipa::path(delete, path = "/api/v1/notification-channels/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn delete_channel(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let c = load(&ctx, &id).await?;
    ctx.store.delete_channel(&c.id).await?;
    audit::record(
        &ctx,
        &who.actor(),
        "channel.delete",
        Object::new("channel", &c.id, &c.name),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestSendView {
    ok: bool,
    /// `delivered`, `retry` or `failed`.
    outcome: String,
    status: Option<u16>,
    message: String,
}

/// Send a test event to a channel now and report what happened.
#[utoipa::path(post, path = "/api/v1/notification-channels/{id}/test", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = TestSendView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn test_channel(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TestSendView>> {
    let c = load(&ctx, &id).await?;
    let r = crate::delivery::test_send(&ctx, &c, &who.actor()).await;
    Ok(Json(TestSendView {
        ok: r.ok,
        outcome: r.outcome.into(),
        status: r.status,
        message: r.message,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    event_id: String,
    event_kind: String,
    attempt: i64,
    at: DateTime<Utc>,
    outcome: String,
    status_code: Option<i64>,
    error: Option<String>,
}

/// The delivery log of a channel, newest first.
#[utoipa::path(get, path = "/api/v1/notification-channels/{id}/deliveries", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Vec<DeliveryView>), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn list_deliveries(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let c = load(&ctx, &id).await?;
    Ok(Json(
        ctx.store
            .list_deliveries(Some(&c.id), 200)
            .await?
            .into_iter()
            .map(|d| DeliveryView {
                event_id: d.event_id,
                event_kind: d.event_kind,
                attempt: d.attempt,
                at: d.at,
                outcome: d.outcome,
                status_code: d.status_code,
                error: d.error,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditParams {
    /// Only events about this object (a token, app or channel id).
    object_id: Option<String>,
    /// Only this action, e.g. `token.refresh`.
    action: Option<String>,
    /// Only this actor, e.g. `admin:bootstrap`, `system`.
    actor: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    at: DateTime<Utc>,
    actor: String,
    action: String,
    object_type: String,
    object_id: Option<String>,
    object_name: Option<String>,
    outcome: String,
    detail: serde_json::Value,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "notifications", security(("bearer" = [])),
    params(AuditParams), responses((status = 200, body = Vec<AuditView>), CommonErrors))]
pub async fn list_audit(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(p): Query<AuditParams>,
) -> ApiResult<Json<Vec<AuditView>>> {
    let events = ctx
        .store
        .list_audit(&AuditFilter {
            object_id: p.object_id,
            action: p.action,
            actor: p.actor,
            limit: p.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditView {
                at: e.at,
                actor: e.actor,
                action: e.action,
                object_type: e.object_type,
                object_id: e.object_id,
                object_name: e.object_name,
                outcome: e.outcome,
                detail: e.detail,
            })
            .collect(),
    ))
}
