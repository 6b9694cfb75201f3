//! Notifications (channels, test sends, delivery logs, reminder lead times) and the audit log.

use super::tokens::ResultPartial;
use super::view::{self, Layout};
use super::{AdminSession, ShownOnce, UiError, UiResult, page, page_with, see_other};
use crate::AppContext;
use crate::audit::{self, Object};
use crate::error::ApiError;
use crate::lifecycle::EVENT_KINDS;
use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokenwarden_domain::AppName;
use tokenwarden_store::{AuditFilter, ChannelRecord, StoreError};

async fn load(ctx: &AppContext, id: &str) -> UiResult<ChannelRecord> {
    ctx.store.get_channel(id).await.map_err(|e| match e {
        StoreError::NotFound(_) => {
            UiError(ApiError::NotFound(format!("notification channel {id:?}")))
        }
        other => other.into(),
    })
}

struct ChannelRow {
    id: String,
    name: String,
    kind: String,
    target: String,
    events: String,
    app: String,
    enabled: bool,
}

async fn row(ctx: &AppContext, c: &ChannelRecord) -> ChannelRow {
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let target = match c.config["url"].as_str() {
        Some(u) => u.to_owned(),
        None => list(&c.config["to"]).join(", "),
    };
    let events = list(&c.config["events"]);
    let app = match c.app_id {
        Some(id) => ctx
            .store
            .get_app(id)
            .await
            .map(|a| a.name.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    ChannelRow {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        target,
        events: if events.is_empty() {
            "all events".into()
        } else {
            events.join(", ")
        },
        app,
        enabled: c.enabled,
    }
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    l: Layout,
    channels: Vec<ChannelRow>,
    lead_times: String,
    lead_labels: String,
    event_kinds: Vec<&'static str>,
    apps: Vec<String>,
    error: String,
}

async fn notifications_page(
    ctx: &AppContext,
    s: &AdminSession,
    error: String,
) -> UiResult<NotificationsPage> {
    let mut channels = Vec::new();
    for c in ctx.store.list_channels().await? {
        channels.push(row(ctx, &c).await);
    }
    let leads = ctx.lead_times();
    Ok(NotificationsPage {
        l: Layout::new(s, "notifications", "Notifications"),
        channels,
        lead_times: leads
            .iter()
            .map(|d| view::fmt_span(*d))
            .collect::<Vec<_>>()
            .join(", "),
        lead_labels: leads
            .iter()
            .map(|d| crate::engine::lead_label(*d))
            .collect::<Vec<_>>()
            .join(", "),
        event_kinds: EVENT_KINDS.to_vec(),
        apps: ctx
            .store
            .list_apps()
            .await?
            .iter()
            .map(|a| a.name.to_string())
            .collect(),
        error,
    })
}

#[derive(serde::Deserialize)]
pub struct LeadForm {
    lead_times: String,
}

/// Sets the reminder lead times for every instance (kept in the database).
pub async fn set_lead_times(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    axum::Form(f): axum::Form<LeadForm>,
) -> UiResult {
    let parsed: Result<Vec<chrono::Duration>, String> = f
        .lead_times
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(crate::engine::parse_lead)
        .collect();
    let leads = match parsed {
        Ok(l) if !l.is_empty() && l.len() <= 10 => l,
        Ok(_) => {
            let p = notifications_page(
                &ctx,
                &s,
                "give 1 to 10 lead times, e.g. 14d, 7d, 3d, 1d".into(),
            )
            .await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
        Err(e) => {
            let p = notifications_page(&ctx, &s, e).await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
    };
    let labels: Vec<String> = leads
        .iter()
        .map(|d| crate::engine::lead_label(*d))
        .collect();
    ctx.store
        .set_meta(
            crate::engine::LEAD_TIMES_KEY,
            &serde_json::to_string(&labels).unwrap_or_default(),
        )
        .await?;
    ctx.reload_lead_times().await;
    audit::record(
        &ctx,
        &s.actor(),
        "settings.lead_times",
        Object::new("settings", "reminder_lead_times", "reminder lead times"),
        "ok",
        serde_json::json!({"lead_times": labels}),
    )
    .await;
    Ok(see_other("/notifications"))
}

pub async fn list(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
) -> UiResult {
    let p = notifications_page(&ctx, &s, String::new()).await?;
    page(&p)
}

pub async fn create(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let name = get("name");
    let kind = get("kind");
    let events: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.clone())
        .collect();
    let app = get("app");
    let result: Result<(ChannelRecord, Option<secrecy::SecretString>), String> = async {
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err("The name must be 1-100 characters.".into());
        }
        if let Some(e) = events.iter().find(|e| !EVENT_KINDS.contains(&e.as_str())) {
            return Err(format!("Unknown event kind {e:?}."));
        }
        let id = format!("ch_{}", uuid::Uuid::new_v4().simple());
        let (config, secret) = match kind.as_str() {
            "webhook" => {
                let url = get("url");
                tokenwarden_notify::check_webhook_url(&url).map_err(|e| e.to_string())?;
                (
                    serde_json::json!({"url": url, "events": events}),
                    Some(tokenwarden_notify::new_webhook_secret()),
                )
            }
            "email" => {
                let to: Vec<String> = get("to")
                    .split([',', ' ', ';', '\n'])
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
                crate::delivery::check_recipients(&to)?;
                (serde_json::json!({"to": to, "events": events}), None)
            }
            _ => return Err("Choose webhook or email.".into()),
        };
        let app_id = if app.is_empty() {
            None
        } else {
            let n = AppName::parse(&app).map_err(|e| e.to_string())?;
            Some(
                ctx.store
                    .get_app_by_name(&n)
                    .await
                    .map_err(|_| format!("There is no app named {app}."))?
                    .id,
            )
        };
        let now = ctx.clock.now();
        let rec = ChannelRecord {
            id: id.clone(),
            app_id,
            kind: kind.clone(),
            name: name.clone(),
            config,
            secret: secret
                .as_ref()
                .map(|sec| ctx.vault.seal(sec, "notification_channels", "secret", &id)),
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        ctx.store
            .create_channel(&rec)
            .await
            .map_err(|e| ApiError::from(e).to_string())?;
        Ok((rec, secret))
    }
    .await;
    match result {
        Ok((rec, secret)) => {
            audit::record(
                &ctx,
                &s.actor(),
                "channel.create",
                Object::new("channel", &rec.id, &rec.name),
                "ok",
                serde_json::json!({"kind": rec.kind}),
            )
            .await;
            match secret {
                Some(sec) => page(&ShownOnce {
                    l: Layout::new(&s, "notifications", "Channel created"),
                    heading: format!("Webhook channel {} created", rec.name),
                    what: "Its signing secret (Standard Webhooks): the receiver verifies each request's signature with it. It is shown only this once.".into(),
                    secret: sec.expose_secret().to_owned(),
                    back: "/notifications".into(),
                    back_label: "Back to notifications".into(),
                }),
                None => Ok(see_other("/notifications")),
            }
        }
        Err(error) => {
            let p = notifications_page(&ctx, &s, error).await?;
            page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

pub async fn set_enabled(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(f): Form<EnabledForm>,
) -> UiResult {
    let mut c = load(&ctx, &id).await?;
    c.enabled = f.enabled == "true";
    c.updated_at = ctx.clock.now();
    ctx.store.update_channel(&c).await?;
    audit::record(
        &ctx,
        &s.actor(),
        "channel.update",
        Object::new("channel", &c.id, &c.name),
        "ok",
        serde_json::json!({"enabled": c.enabled}),
    )
    .await;
    Ok(see_other("/notifications"))
}

pub async fn delete(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let c = load(&ctx, &id).await?;
    ctx.store.delete_channel(&c.id).await?;
    audit::record(
        &ctx,
        &s.actor(),
        "channel.delete",
        Object::new("channel", &c.id, &c.name),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(see_other("/notifications"))
}

/// Sends a test event now and shows what happened.
pub async fn test(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let c = load(&ctx, &id).await?;
    let crate::delivery::TestSend { ok, message, .. } =
        crate::delivery::test_send(&ctx, &c, &s.actor()).await;
    page(&ResultPartial {
        ok,
        title: if ok {
            "Test sent".into()
        } else {
            "Test failed".into()
        },
        message,
    })
}

struct DeliveryRow {
    at: String,
    event_kind: String,
    attempt: i64,
    outcome: String,
    status: String,
    error: String,
}

#[derive(Template)]
#[template(path = "channel.html")]
struct ChannelPage {
    l: Layout,
    c: ChannelRow,
    deliveries: Vec<DeliveryRow>,
}

pub async fn detail(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let c = load(&ctx, &id).await?;
    let deliveries = ctx
        .store
        .list_deliveries(Some(&c.id), 200)
        .await?
        .into_iter()
        .map(|d| DeliveryRow {
            at: view::fmt_time(Some(d.at)),
            event_kind: d.event_kind,
            attempt: d.attempt,
            outcome: d.outcome,
            status: d.status_code.map(|s| s.to_string()).unwrap_or_default(),
            error: d.error.unwrap_or_default(),
        })
        .collect();
    page(&ChannelPage {
        l: Layout::new(&s, "notifications", c.name.clone()),
        c: row(&ctx, &c).await,
        deliveries,
    })
}

// --- audit log -------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct AuditQuery {
    token: Option<String>,
    app: Option<String>,
    action: Option<String>,
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    object: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    rows: Vec<AuditRow>,
    tokens: Vec<(String, String, bool)>,
    apps: Vec<(String, String, bool)>,
    action: String,
    limit: i64,
}

const AUDIT_LIMIT: i64 = 200;

pub async fn audit(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(q): Query<AuditQuery>,
) -> UiResult {
    let token = q.token.filter(|t| !t.is_empty());
    let app = q.app.filter(|a| !a.is_empty());
    let action = q.action.unwrap_or_default().trim().to_owned();
    let apps = ctx.store.list_apps().await?;
    let tokens = ctx.store.list_tokens().await?;
    let rows = ctx
        .store
        .list_audit(&AuditFilter {
            object_id: token.clone().or_else(|| app.clone()),
            action: (!action.is_empty()).then(|| action.clone()),
            actor: None,
            limit: AUDIT_LIMIT,
        })
        .await?
        .into_iter()
        .map(|e| AuditRow {
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            actor: e.actor,
            action: e.action,
            object: match (e.object_name, e.object_id) {
                (Some(n), _) => format!("{} {n}", e.object_type),
                (None, Some(i)) => format!("{} {i}", e.object_type),
                (None, None) => e.object_type,
            },
            outcome: e.outcome,
            detail: if e.detail.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                e.detail.to_string()
            },
        })
        .collect();
    let app_name = |id: Option<tokenwarden_domain::AppId>| {
        id.and_then(|id| apps.iter().find(|a| a.id == id))
            .map(|a| format!(" ({})", a.name))
            .unwrap_or_default()
    };
    page(&AuditPage {
        l: Layout::new(&s, "audit", "Audit log"),
        rows,
        tokens: tokens
            .iter()
            .map(|t| {
                let id = t.id.to_string();
                let sel = token.as_deref() == Some(id.as_str());
                (id, format!("{}{}", t.name, app_name(t.app_id)), sel)
            })
            .collect(),
        apps: apps
            .iter()
            .map(|a| {
                let id = a.id.to_string();
                let sel = app.as_deref() == Some(id.as_str());
                (id, a.name.to_string(), sel)
            })
            .collect(),
        action,
        limit: AUDIT_LIMIT,
    })
}
