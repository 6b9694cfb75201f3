//! Admins: who signs in to this UI (add, reset a password, remove) and the admin tokens of the
//! JSON API (create, shown once; revoke). The rules (password length, never the last admin,
//! never yourself, your own password only with the current one) are `ops::admins`'.

use super::tokens::sentence;
use super::view::{self, Layout};
use super::{AdminSession, UiResult, page, page_with, see_other, shown_once};
use crate::AppContext;
use crate::ops::{self, admins::Asker, lists::PageParams};
use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;

struct AdminRow {
    id: String,
    username: String,
    created: String,
    last_login: String,
    me: bool,
}

struct TokenRow {
    id: String,
    label: String,
    created: String,
    revoked: String,
}

#[derive(Template)]
#[template(path = "admins.html")]
struct AdminsPage {
    l: Layout,
    admins: Vec<AdminRow>,
    /// The next page of admins, if any.
    next_admins: Option<String>,
    tokens: Vec<TokenRow>,
    next_tokens: Option<String>,
    /// What the add-admin form sent (to show it again) and what went wrong.
    username: String,
    error: String,
    token_error: String,
    notice: String,
}

/// The page's query: the cursors of the two lists, and what was just done.
#[derive(Debug, Default, Deserialize)]
pub struct AdminsQuery {
    admins: Option<String>,
    tokens: Option<String>,
    done: Option<String>,
}

#[derive(Default)]
struct Problems {
    username: String,
    error: String,
    token_error: String,
}

async fn admins_page(
    ctx: &AppContext,
    s: &AdminSession,
    q: &AdminsQuery,
    p: Problems,
) -> UiResult<AdminsPage> {
    let admins = ops::lists::admins(
        ctx,
        &PageParams {
            limit: None,
            cursor: q.admins.clone(),
        },
    )
    .await?;
    let tokens = ops::lists::admin_tokens(
        ctx,
        &PageParams {
            limit: None,
            cursor: q.tokens.clone(),
        },
    )
    .await?;
    let link = |key: &str, cursor: String| {
        format!(
            "/admins?{}",
            serde_urlencoded::to_string([(key, cursor)]).unwrap_or_default()
        )
    };
    let notice = match q.done.as_deref() {
        Some("added") => "Admin created: they can sign in now.",
        Some("removed") => "Admin removed: they can no longer sign in, and their sessions ended.",
        Some("revoked") => "Admin token revoked: it stops working at once.",
        _ => "",
    };
    Ok(AdminsPage {
        l: Layout::new(s, "admins", "Admins"),
        admins: admins
            .items
            .iter()
            .map(|a| AdminRow {
                id: a.id.clone(),
                username: a.username.clone(),
                created: view::fmt_time(Some(a.created_at)),
                last_login: view::fmt_time(a.last_login_at),
                me: a.id == s.admin_id,
            })
            .collect(),
        next_admins: admins.next_cursor.map(|c| link("admins", c)),
        tokens: tokens
            .items
            .iter()
            .map(|k| TokenRow {
                id: k.id.to_string(),
                label: k.label.to_string(),
                created: view::fmt_time(Some(k.created_at)),
                revoked: k
                    .revoked_at
                    .map(|r| view::fmt_time(Some(r)))
                    .unwrap_or_default(),
            })
            .collect(),
        next_tokens: tokens.next_cursor.map(|c| link("tokens", c)),
        username: p.username,
        error: p.error,
        token_error: p.token_error,
        notice: notice.into(),
    })
}

pub async fn list(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(q): Query<AdminsQuery>,
) -> UiResult {
    let p = admins_page(&ctx, &s, &q, Problems::default()).await?;
    page(&p)
}

#[derive(Deserialize)]
pub struct NewAdminForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

/// Adds an admin; the password is typed twice (a typo would otherwise lock them out).
pub async fn create(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Form(f): Form<NewAdminForm>,
) -> UiResult {
    let username = f.username.trim().to_owned();
    let again = |error: String| {
        let username = username.clone();
        let (ctx, s) = (&ctx, &s);
        async move {
            let p = admins_page(
                ctx,
                s,
                &AdminsQuery::default(),
                Problems {
                    username,
                    error,
                    ..Problems::default()
                },
            )
            .await?;
            page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    };
    if f.password != f.password2 {
        return again("The two passwords differ; nothing was saved.".into()).await;
    }
    match ops::admins::create_admin(&ctx, &s.actor(), &username, f.password.into()).await {
        Ok(_) => Ok(see_other("/admins?done=added")),
        Err(ops::Error::Invalid(m) | ops::Error::Conflict(m)) => again(sentence(&m)).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "admin_detail.html")]
struct AdminPage {
    l: Layout,
    id: String,
    username: String,
    created: String,
    last_login: String,
    me: bool,
    error: String,
    notice: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdminQuery {
    done: Option<String>,
}

async fn admin_page(
    ctx: &AppContext,
    s: &AdminSession,
    id: &str,
    error: String,
    notice: &str,
) -> UiResult<AdminPage> {
    let a = ops::admins::find_admin(ctx, id).await?;
    Ok(AdminPage {
        l: Layout::new(s, "admins", a.username.clone()),
        me: a.id == s.admin_id,
        id: a.id,
        username: a.username,
        created: view::fmt_time(Some(a.created_at)),
        last_login: view::fmt_time(a.last_login_at),
        error,
        notice: notice.into(),
    })
}

pub async fn detail(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Query(q): Query<AdminQuery>,
) -> UiResult {
    let notice = match q.done.as_deref() {
        Some("password") => "Password changed.",
        _ => "",
    };
    let p = admin_page(&ctx, &s, &id, String::new(), notice).await?;
    page(&p)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

/// Resets an admin's password (their sessions end), or changes your own (with the current
/// one; you stay signed in here).
pub async fn set_password(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(f): Form<PasswordForm>,
) -> UiResult {
    let error = if f.password != f.password2 {
        "The two new passwords differ; nothing was changed.".to_owned()
    } else {
        let actor = s.actor();
        let current = (!f.current.is_empty()).then(|| SecretString::from(f.current));
        match ops::admins::set_password(
            &ctx,
            Asker::session(&s, &actor),
            &id,
            f.password.into(),
            current,
        )
        .await
        {
            Ok(a) => return Ok(see_other(&format!("/admins/{}?done=password", a.id))),
            Err(ops::Error::Invalid(m)) => sentence(&m),
            Err(e) => return Err(e.into()),
        }
    };
    let p = admin_page(&ctx, &s, &id, error, "").await?;
    page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
}

/// Removes an admin; the last one and yourself are refused, with the reason on the page.
pub async fn remove(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let actor = s.actor();
    match ops::admins::remove_admin(&ctx, Asker::session(&s, &actor), &id).await {
        Ok(_) => Ok(see_other("/admins?done=removed")),
        Err(ops::Error::Conflict(m)) => {
            let p = admin_page(&ctx, &s, &id, sentence(&m), "").await?;
            page_with(StatusCode::CONFLICT, &p)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates an admin token and shows it once (post/redirect/get: a reload makes no other).
pub async fn create_token(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Form(f): Form<super::view::LabelForm>,
) -> UiResult {
    let label = match f.label("api") {
        Ok(l) => l,
        Err(token_error) => {
            let problems = Problems {
                token_error,
                ..Problems::default()
            };
            let p = admins_page(&ctx, &s, &AdminsQuery::default(), problems).await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
    };
    let key = ops::admins::create_admin_token(&ctx, &s.actor(), label).await?;
    shown_once::redirect(
        &ctx,
        &s,
        shown_once::Shown::admin_token(
            &key.record.id.to_string(),
            &key.record.label.to_string(),
            &key.text,
        ),
    )
}

/// Revokes an admin token (it stops working at once).
pub async fn revoke_token(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    ops::admins::get_admin_token(&ctx, &id).await?;
    ops::admins::revoke_admin_token(&ctx, &s.actor(), &id, None).await?;
    Ok(see_other("/admins?done=revoked"))
}
