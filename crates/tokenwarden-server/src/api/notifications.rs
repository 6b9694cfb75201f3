//! Notification channels (webhooks signed the Standard Webhooks way, email), their delivery
//! log, a test send, and the audit log.

use super::{ApiJson, CommonErrors, PageQuery, list_page};
use crate::AppContext;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::{self, channels::ChannelChanges, channels::NewChannel, channels::Target};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokenwarden_domain::ChannelKind;
use tokenwarden_store::{AuditFilter, ChannelRecord};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[schema(schema_with = super::schema::channel_name)]
    name: String,
    #[schema(schema_with = super::schema::channel_kind)]
    kind: String,
    /// Webhook: where to POST events.
    url: Option<String>,
    /// Email: recipients.
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = super::schema::event_kinds)]
    events: Vec<String>,
    #[schema(schema_with = super::schema::channel_app)]
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
    #[schema(schema_with = super::schema::optional_channel_name)]
    name: Option<String>,
    url: Option<String>,
    to: Option<Vec<String>>,
    #[schema(schema_with = super::schema::optional_event_kinds)]
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    /// Its scope: an app's name (only events about that app and the tokens it uses), or ""
    /// for every app and token.
    app: Option<String>,
    /// Apply only if the channel is still at this version (409 `version_mismatch` if not);
    /// without it, the change applies to the current state.
    version: Option<i64>,
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
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    updated_at: DateTime<Utc>,
    /// Incremented by every change; send it back in a PATCH to change only that version.
    version: i64,
    /// Webhook signing secret (`whsec_...`): only in the answer that creates the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

async fn view(ctx: &AppContext, c: &ChannelRecord) -> ChannelView {
    let app = match c.app_id {
        Some(id) => ctx.store.get_app(id).await.ok().map(|a| a.name.to_string()),
        None => None,
    };
    let channel = ops::channels::Channel::of(c);
    let (url, to) = match channel.target {
        Target::Webhook { url } => (Some(url), Vec::new()),
        Target::Email { to } => (None, to),
    };
    ChannelView {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        url,
        to,
        events: channel
            .events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        app,
        enabled: c.enabled,
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
        secret: None,
    }
}

async fn load(ctx: &AppContext, id: &str) -> ApiResult<ChannelRecord> {
    Ok(ops::channels::get(ctx, id).await?)
}

list_page!(ChannelList, ChannelView);

/// List notification channels, oldest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/notification-channels", tag = "notifications", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = ChannelList), CommonErrors))]
pub async fn list_channels(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<ChannelList>> {
    let page = ops::lists::channels(&ctx, &page.into()).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for c in &page.items {
        items.push(view(&ctx, c).await);
    }
    Ok(Json(ChannelList {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Add a webhook or email channel. A webhook's signing secret is answered once.
#[utoipa::path(post, path = "/api/v1/notification-channels", tag = "notifications", security(("bearer" = [])),
    request_body = CreateChannel, responses((status = 201, body = ChannelView), CommonErrors))]
pub async fn create_channel(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    ApiJson(req): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let target = match ops::channels::parse_kind(&req.kind)? {
        ChannelKind::Webhook => Target::Webhook {
            url: req
                .url
                .ok_or_else(|| ApiError::InvalidRequest("a webhook channel needs a url".into()))?,
        },
        ChannelKind::Email => Target::Email { to: req.to },
    };
    let (rec, secret) = ops::channels::create(
        &ctx,
        &who.actor(),
        NewChannel {
            name: req.name,
            target,
            events: ops::channels::parse_events(&req.events)?,
            app: req.app,
            enabled: req.enabled,
        },
    )
    .await?;
    let mut v = view(&ctx, &rec).await;
    v.secret = secret.map(|s| s.expose_secret().to_owned());
    Ok((StatusCode::CREATED, Json(v)))
}

/// Change a channel.
#[utoipa::path(patch, path = "/api/v1/notification-channels/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PatchChannel,
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody),
        (status = 409, description = "`version_mismatch`: the `version` sent is stale (never without one)", body = ErrorBody),
        CommonErrors))]
pub async fn patch_channel(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchChannel>,
) -> ApiResult<Json<ChannelView>> {
    let events = match &req.events {
        Some(e) => Some(ops::channels::parse_events(e)?),
        None => None,
    };
    let c = ops::channels::update(
        &ctx,
        &who.actor(),
        &id,
        ChannelChanges {
            name: req.name,
            url: req.url,
            to: req.to,
            events,
            enabled: req.enabled,
            app: req.app,
            version: req.version,
        },
    )
    .await?;
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
    ops::channels::delete(&ctx, &who.actor(), &id).await?;
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
    let r = ops::channels::test(&ctx, &who.actor(), &id).await?;
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
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    at: DateTime<Utc>,
    outcome: String,
    status_code: Option<i64>,
    error: Option<String>,
}

list_page!(DeliveryList, DeliveryView);

/// The delivery log of a channel, newest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/notification-channels/{id}/deliveries", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path), PageQuery), responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn list_deliveries(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let c = load(&ctx, &id).await?;
    let page = ops::lists::deliveries(&ctx, &c.id, &page.into()).await?;
    Ok(Json(
        page.map(|d| DeliveryView {
            event_id: d.event_id,
            event_kind: d.event_kind,
            attempt: d.attempt,
            at: d.at,
            outcome: d.outcome,
            status_code: d.status_code,
            error: d.error,
        })
        .into(),
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    at: DateTime<Utc>,
    actor: String,
    action: String,
    object_type: String,
    object_id: Option<String>,
    object_name: Option<String>,
    outcome: String,
    detail: serde_json::Value,
}

list_page!(AuditList, AuditView);

/// The audit log, newest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "notifications", security(("bearer" = [])),
    params(AuditParams, PageQuery), responses((status = 200, body = AuditList), CommonErrors))]
pub async fn list_audit(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(p): Query<AuditParams>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<AuditList>> {
    let filter = AuditFilter {
        object_id: p.object_id,
        action: p.action,
        actor: p.actor,
        limit: 0,
    };
    let page = ops::lists::audit(&ctx, &filter, &page.into()).await?;
    Ok(Json(
        page.map(|e| AuditView {
            at: e.at,
            actor: e.actor,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            object_name: e.object_name,
            outcome: e.outcome,
            detail: e.detail,
        })
        .into(),
    ))
}
