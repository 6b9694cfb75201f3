//! Apps: their state, the tokens they use, their own tokens, start/stop, API keys.

use super::pager::{PageQuery, Pager};
use super::shown_once::{self, Shown};
use super::view::{self, Countdown, Layout, TokenRow};
use super::{AdminSession, UiError, UiResult, page, page_with, see_other};
use crate::AppContext;
use crate::error::ApiError;
use crate::ops::{self, apps::AppChanges, apps::NewApp, grant::read::Scope};
use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tokenwarden_domain::{AppId, AppName, AppState, TokenName};
use tokenwarden_store::{ApiKeyKind, AppRecord};

async fn load(ctx: &AppContext, id: &str) -> UiResult<AppRecord> {
    let aid = AppId::parse(id).ok_or_else(|| UiError(ApiError::NotFound(format!("app {id:?}"))))?;
    Ok(ops::apps::get(ctx, aid).await?)
}

fn state_of(a: &AppRecord) -> (&'static str, &'static str, String) {
    match a.state {
        AppState::Running => ("running", "ok", String::new()),
        AppState::Stopped => (
            "stopped",
            "crit",
            a.stop_reason
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
    }
}

/// A token an app uses, resolved the way reads resolve it: its own, else the global one.
struct UsedToken {
    name: String,
    id: String,
    scope: &'static str,
    status: &'static str,
    class: &'static str,
    refresh: Countdown,
}

async fn used_tokens(ctx: &AppContext, a: &AppRecord) -> UiResult<Vec<UsedToken>> {
    let mut out = Vec::new();
    for name in &a.tokens {
        let found = ops::grant::resolve_token(ctx, Some(a.id), name)
            .await?
            .map(|(t, scope)| {
                let label = match scope {
                    Scope::App => "app-level",
                    Scope::Global => "global",
                };
                (t, label)
            });
        out.push(match found {
            Some((t, scope)) => {
                let (status, class) = view::status_label(t.status);
                UsedToken {
                    name: name.to_string(),
                    id: t.id.to_string(),
                    scope,
                    status,
                    class,
                    refresh: view::countdown(ctx, t.status, t.material.refresh_expires_at),
                }
            }
            None => UsedToken {
                name: name.to_string(),
                id: String::new(),
                scope: "",
                status: "no such token",
                class: "crit",
                refresh: view::countdown(ctx, tokenwarden_domain::TokenStatus::NotAuthorized, None),
            },
        });
    }
    Ok(out)
}

struct AppRow {
    id: String,
    name: String,
    state: &'static str,
    state_class: &'static str,
    reason: String,
    used: Vec<UsedToken>,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    l: Layout,
    apps: Vec<AppRow>,
    error: String,
    name: String,
    tokens: String,
    pager: Pager,
}

/// One page of apps (by name, `ops::lists`), and the form.
async fn apps_page(
    ctx: &AppContext,
    s: &AdminSession,
    at: &PageQuery,
    error: String,
    name: String,
    tokens: String,
) -> UiResult<AppsPage> {
    let found = ops::lists::apps(ctx, &at.params()).await?;
    let pager = Pager::new("/apps", &[], at, found.next_cursor.as_deref());
    let mut apps = Vec::new();
    for a in found.items {
        let (state, state_class, reason) = state_of(&a);
        apps.push(AppRow {
            id: a.id.to_string(),
            name: a.name.to_string(),
            state,
            state_class,
            reason,
            used: used_tokens(ctx, &a).await?,
        });
    }
    Ok(AppsPage {
        l: Layout::new(s, "apps", "Apps"),
        apps,
        error,
        name,
        tokens,
        pager,
    })
}

pub async fn list(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(at): Query<PageQuery>,
) -> UiResult {
    let p = apps_page(&ctx, &s, &at, String::new(), String::new(), String::new()).await?;
    page(&p)
}

fn parse_names(text: &str) -> Result<Vec<TokenName>, String> {
    text.split([',', ' ', '\n', '\r', '\t'])
        .filter(|n| !n.is_empty())
        .map(|n| TokenName::parse(n).map_err(|e| format!("token name {n:?}: {e}")))
        .collect()
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    tokens: String,
}

pub async fn create(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Form(f): Form<CreateForm>,
) -> UiResult {
    let again = |error: String| async {
        let first = PageQuery::default();
        let p = apps_page(&ctx, &s, &first, error, f.name.clone(), f.tokens.clone()).await?;
        page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
    };
    let name = match AppName::parse(f.name.trim()) {
        Ok(n) => n,
        Err(e) => return again(format!("Name: {e}")).await,
    };
    let tokens = match parse_names(&f.tokens) {
        Ok(t) => t,
        Err(e) => return again(e).await,
    };
    match ops::apps::create(&ctx, &s.actor(), NewApp { name, tokens }).await {
        Ok((app, key)) => shown_once::redirect(
            &ctx,
            &s,
            Shown::new_app(&app.id.to_string(), &app.name.to_string(), &key.text),
        ),
        Err(ops::Error::Conflict(_)) => {
            again(format!("An app named {} exists already.", f.name.trim())).await
        }
        Err(e) => Err(e.into()),
    }
}

struct KeyRow {
    id: String,
    label: String,
    created: String,
    revoked: String,
}

#[derive(Template)]
#[template(path = "app_detail.html")]
struct AppPage {
    l: Layout,
    id: String,
    name: String,
    state: &'static str,
    state_class: &'static str,
    reason: String,
    running: bool,
    used: Vec<UsedToken>,
    own: Vec<TokenRow>,
    /// The pages of its own tokens.
    pager: Pager,
    keys: Vec<KeyRow>,
    /// More keys than the first page holds (the API and the CLI list them all).
    more_keys: bool,
    tokens_text: String,
    error: String,
}

/// An app with one page of its own tokens (by name, `ops::lists`; the links keep the page) and
/// the first page of its API keys: what is shown, never every token or app.
async fn app_page(
    ctx: &AppContext,
    s: &AdminSession,
    a: &AppRecord,
    at: &PageQuery,
    error: String,
) -> UiResult<AppPage> {
    let (state, state_class, reason) = state_of(a);
    let filter = tokenwarden_store::TokenFilter {
        app: Some(a.id),
        ..Default::default()
    };
    let own = ops::lists::tokens(ctx, &filter, &at.params()).await?;
    let path = format!("/apps/{}", a.id);
    let pager = Pager::new(&path, &[], at, own.next_cursor.as_deref());
    let apps = std::slice::from_ref(a);
    let keys = ops::lists::api_keys(ctx, a.id, &ops::lists::PageParams::default()).await?;
    let more_keys = keys.next_cursor.is_some();
    let keys = keys
        .items
        .into_iter()
        .filter(|k| k.kind == ApiKeyKind::App)
        .map(|k| KeyRow {
            id: k.id.to_string(),
            label: k.label.to_string(),
            created: view::fmt_time(Some(k.created_at)),
            revoked: k
                .revoked_at
                .map(|r| view::fmt_time(Some(r)))
                .unwrap_or_default(),
        })
        .collect();
    Ok(AppPage {
        l: Layout::new(s, "apps", a.name.to_string()),
        id: a.id.to_string(),
        name: a.name.to_string(),
        state,
        state_class,
        reason,
        running: a.state == AppState::Running,
        used: used_tokens(ctx, a).await?,
        own: super::tokens::rows_for(ctx, &own.items, apps),
        pager,
        keys,
        more_keys,
        tokens_text: a
            .tokens
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        error,
    })
}

pub async fn detail(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Query(at): Query<PageQuery>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    let p = app_page(&ctx, &s, &a, &at, String::new()).await?;
    page(&p)
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    tokens: String,
}

/// Changes which tokens the app uses.
pub async fn update(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(f): Form<UpdateForm>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    let tokens = match parse_names(&f.tokens) {
        Ok(t) => t,
        Err(e) => {
            let p = app_page(&ctx, &s, &a, &PageQuery::default(), e).await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
    };
    let changes = AppChanges {
        tokens: Some(tokens),
        ..AppChanges::default()
    };
    let a = ops::apps::update(&ctx, &s.actor(), a.id, changes).await?;
    Ok(see_other(&format!("/apps/{}", a.id)))
}

pub async fn stop(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    let a = ops::apps::stop(&ctx, &s.actor(), a.id).await?;
    Ok(see_other(&format!("/apps/{}", a.id)))
}

pub async fn start(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    match ops::apps::start(&ctx, &s.actor(), a.id).await {
        Ok(a) => Ok(see_other(&format!("/apps/{}", a.id))),
        Err(e @ ops::Error::TokenUnusable { .. }) => {
            let p = app_page(&ctx, &s, &a, &PageQuery::default(), e.to_string()).await?;
            page_with(StatusCode::CONFLICT, &p)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn create_key(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(f): Form<view::LabelForm>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    let label = match f.label("key") {
        Ok(l) => l,
        Err(e) => {
            let p = app_page(&ctx, &s, &a, &PageQuery::default(), e).await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
    };
    let (a, key) = ops::apps::create_key(&ctx, &s.actor(), a.id, Some(label)).await?;
    shown_once::redirect(
        &ctx,
        &s,
        Shown::new_app_key(
            &a.id.to_string(),
            &a.name.to_string(),
            &key.record.label.to_string(),
            &key.text,
        ),
    )
}

pub async fn revoke_key(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path((id, key_id)): Path<(String, String)>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    ops::apps::revoke_key(&ctx, &s.actor(), a.id, &key_id).await?;
    Ok(see_other(&format!("/apps/{}", a.id)))
}

/// Deletes the app with its API keys, its app-level tokens and its per-app channels (the page
/// names them in the confirmation); global tokens it used stay.
pub async fn delete(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let a = load(&ctx, &id).await?;
    ops::apps::delete(&ctx, &s.actor(), a.id).await?;
    Ok(see_other("/apps"))
}
