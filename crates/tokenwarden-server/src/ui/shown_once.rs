//! Secrets shown once, the post/redirect/get way: the POST that makes a secret answers a 303 to
//! [`PATH`] with the page's content in a short-lived cookie, sealed by the vault for this
//! session ([`crate::vault::Transient::ShownOnce`]); the GET shows it and deletes the cookie in
//! the same answer. Reloading the page makes nothing new and shows the secret no more (it
//! says it was shown once; an instance also remembers which pages it showed, so a replayed
//! cookie shows nothing). The secret is not kept on the server, so this works behind a load
//! balancer as well: any instance can open the cookie, only for the session it was sealed for,
//! and only for [`LIFETIME`].

use super::view::Layout;
use super::{AdminSession, ShownOnce, UiResult, page_with};
use crate::AppContext;
use crate::vault::Transient;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Where a secret made by a POST is shown (the route in `ui::router`).
pub const PATH: &str = "/shown-once";
/// How long the page can be opened after the POST.
pub const LIFETIME: chrono::Duration = chrono::Duration::minutes(5);

/// What the page shows: a heading, what the secret is, the secret, and where to go back to.
/// (No `Debug`: it holds the secret.)
#[derive(Serialize, Deserialize)]
pub struct Shown {
    pub heading: String,
    pub what: String,
    pub secret: String,
    pub back: String,
    pub back_label: String,
    /// Which nav entry the page belongs to (`apps`, `notifications`, `admins`).
    pub nav: String,
    /// Which secret it is, and the id of what it belongs to (an app, a channel, an admin
    /// token): they go in the page's address, so that the page can still say which secret it
    /// was once it is gone. Neither is secret.
    pub kind: Secret,
    pub of: String,
}

/// The secrets shown once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Secret {
    /// An app's API key (a new app's first one, or another).
    AppKey,
    /// A webhook channel's signing secret.
    WebhookSecret,
    /// An admin token of the JSON API.
    AdminToken,
}

impl Secret {
    const ALL: [Secret; 3] = [Secret::AppKey, Secret::WebhookSecret, Secret::AdminToken];

    /// How it is written in the page's address.
    fn as_str(self) -> &'static str {
        match self {
            Secret::AppKey => "api-key",
            Secret::WebhookSecret => "webhook-secret",
            Secret::AdminToken => "admin-token",
        }
    }

    fn parse(text: &str) -> Option<Secret> {
        Secret::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl Shown {
    /// A new app and its first API key.
    pub fn new_app(app_id: &str, app_name: &str, key: &SecretString) -> Self {
        Self {
            heading: format!("App {app_name} created"),
            what: "Its API key — give it to the app. It is shown only this once: only its hash is kept.".into(),
            secret: key.expose_secret().to_owned(),
            back: format!("/apps/{app_id}"),
            back_label: format!("Go to {app_name}"),
            nav: "apps".into(),
            kind: Secret::AppKey,
            of: app_id.to_owned(),
        }
    }

    /// Another API key of an app.
    pub fn new_app_key(app_id: &str, app_name: &str, label: &str, key: &SecretString) -> Self {
        Self {
            heading: format!("New API key “{label}” for {app_name}"),
            what: "Give it to the app. It is shown only this once: only its hash is kept. Revoke the old key once the app uses this one.".into(),
            secret: key.expose_secret().to_owned(),
            back: format!("/apps/{app_id}"),
            back_label: format!("Back to {app_name}"),
            nav: "apps".into(),
            kind: Secret::AppKey,
            of: app_id.to_owned(),
        }
    }

    /// A new webhook channel's signing secret.
    pub fn webhook_secret(channel_id: &str, channel_name: &str, secret: &SecretString) -> Self {
        Self {
            heading: format!("Webhook channel {channel_name} created"),
            what: "Its signing secret (Standard Webhooks): the receiver verifies each request's signature with it. It is shown only this once.".into(),
            secret: secret.expose_secret().to_owned(),
            back: "/notifications".into(),
            back_label: "Back to notifications".into(),
            nav: "notifications".into(),
            kind: Secret::WebhookSecret,
            of: channel_id.to_owned(),
        }
    }

    /// A new admin token.
    pub fn admin_token(id: &str, label: &str, token: &SecretString) -> Self {
        Self {
            heading: format!("Admin token “{label}” created"),
            what: "Use it as `Authorization: Bearer …` on the JSON API: it can do everything an admin can. It is shown only this once: only its hash is kept.".into(),
            secret: token.expose_secret().to_owned(),
            back: "/admins".into(),
            back_label: "Back to admins".into(),
            nav: "admins".into(),
            kind: Secret::AdminToken,
            of: id.to_owned(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    shown: Shown,
    /// Epoch milliseconds after which the page is gone.
    until: i64,
    /// Tells this page apart: it is shown once per instance even if the cookie is replayed.
    nonce: String,
}

fn cookie_name(ctx: &AppContext) -> &'static str {
    if super::session::secure(ctx) {
        "__Host-tw_shown_once"
    } else {
        "tw_shown_once"
    }
}

fn cookie(ctx: &AppContext, value: &str, max_age: i64) -> String {
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        cookie_name(ctx),
        if super::session::secure(ctx) {
            "; Secure"
        } else {
            ""
        }
    )
}

/// The answer to the POST that made the secret: a 303 to [`PATH`], carrying it sealed.
pub fn redirect(ctx: &AppContext, s: &AdminSession, shown: Shown) -> UiResult {
    // Real time, like the session: the demo's fast-forward does not age the page.
    let until = (crate::ops::admins::session_now(ctx) + LIFETIME).timestamp_millis();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let (shown_kind, shown_of) = (shown.kind, shown.of.clone());
    let json = serde_json::to_string(&Sealed {
        shown,
        until,
        nonce,
    })
    .map_err(crate::ops::Error::internal)?;
    let sealed = ctx.vault.seal_transient(
        &SecretString::from(json),
        Transient::ShownOnce,
        &s.session_hash,
    );
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed);
    let mut res = Redirect::to(&address(shown_kind, &shown_of)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie(ctx, &value, LIFETIME.num_seconds())) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

async fn take(ctx: &AppContext, s: &AdminSession, headers: &HeaderMap) -> Option<Shown> {
    let name = cookie_name(ctx);
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    let json = ctx
        .vault
        .open_transient(&bytes, Transient::ShownOnce, &s.session_hash)
        .await
        .ok()?;
    let sealed: Sealed = serde_json::from_str(json.expose_secret()).ok()?;
    let now = crate::ops::admins::session_now(ctx);
    let until = tokenwarden_domain::clock::from_millis(sealed.until);
    (now <= until && ctx.ui.first_showing(&sealed.nonce, until, now)).then_some(sealed.shown)
}

/// The page's address: [`PATH`], which secret and whose (`?secret=api-key&of=<app id>`).
fn address(kind: Secret, of: &str) -> String {
    format!(
        "{PATH}?secret={}&of={}",
        kind.as_str(),
        tokenwarden_oauth::snowflake::urlencode(of)
    )
}

/// Which secret the address names (nothing if it names none this version knows).
#[derive(Deserialize)]
pub struct Which {
    secret: Option<String>,
    of: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "shown_gone.html")]
struct Gone {
    l: Layout,
    /// "The API key of app sales-invoice"; empty when the address names no secret.
    what: String,
    /// What to do to get a working one, and where.
    next: String,
    link: String,
    link_label: String,
}

/// What the gone page says about the secret the address names: what it was, and how to get a
/// new one (an API key or admin token: make another and revoke the lost one; a webhook
/// secret: the channel is made again).
async fn gone(ctx: &AppContext, s: &AdminSession, which: &Which) -> Gone {
    let of = which.of.as_deref().unwrap_or_default();
    match which.secret.as_deref().and_then(Secret::parse) {
        Some(Secret::AppKey) => {
            let app = match tokenwarden_domain::AppId::parse(of) {
                Some(id) => crate::ops::apps::get(ctx, id).await.ok(),
                None => None,
            };
            match app {
                Some(a) => Gone {
                    l: Layout::new(s, "apps", "Shown once"),
                    what: format!("The API key of app {}", a.name),
                    next: format!("To get a working key, rotate it: create a new API key on {}'s page, give it to the app, then revoke the lost one.", a.name),
                    link: format!("/apps/{}", a.id),
                    link_label: format!("Go to {}", a.name),
                },
                None => Gone {
                    l: Layout::new(s, "apps", "Shown once"),
                    what: "The API key of an app (deleted since)".into(),
                    next: "Its app no longer exists.".into(),
                    link: "/apps".into(),
                    link_label: "Go to Apps".into(),
                },
            }
        }
        Some(Secret::WebhookSecret) => match crate::ops::channels::get(ctx, of).await {
            Ok(c) => Gone {
                l: Layout::new(s, "notifications", "Shown once"),
                what: format!("The signing secret of webhook channel {}", c.name),
                next: "A signing secret cannot be shown again or changed: to get a new one, delete the channel and create it again, then give the new secret to the receiver.".into(),
                link: format!("/notifications/{}", c.id),
                link_label: format!("Go to channel {}", c.name),
            },
            Err(_) => Gone {
                l: Layout::new(s, "notifications", "Shown once"),
                what: "The signing secret of a webhook channel (deleted since)".into(),
                next: "Its channel no longer exists.".into(),
                link: "/notifications".into(),
                link_label: "Go to Notifications".into(),
            },
        },
        Some(Secret::AdminToken) => {
            let label = crate::ops::admins::get_admin_token(ctx, of)
                .await
                .map(|k| format!(" “{}”", k.label))
                .unwrap_or_default();
            Gone {
                l: Layout::new(s, "admins", "Shown once"),
                what: format!("The admin token{label}"),
                next: "To get a working one, rotate it: create another admin token on the Admins page, use it, then revoke the lost one.".into(),
                link: "/admins#tokens-h".into(),
                link_label: "Go to Admins".into(),
            }
        }
        None => Gone {
            l: Layout::new(s, "admins", "Shown once"),
            what: String::new(),
            next: "If it was lost: make a new API key on the app's page (and revoke the old one), delete the webhook channel and create it again, or create another admin token and revoke the old one.".into(),
            link: "/apps".into(),
            link_label: "Go to Apps".into(),
        },
    }
}

/// GET [`PATH`]: the secret, this once; afterwards (a reload, another tab, too late) a page
/// saying it was shown once, 410.
pub async fn show(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(which): Query<Which>,
    headers: HeaderMap,
) -> UiResult {
    let shown = take(&ctx, &s, &headers).await;
    let mut res = match shown {
        Some(shown) => {
            let nav = match shown.nav.as_str() {
                "apps" => "apps",
                "notifications" => "notifications",
                _ => "admins",
            };
            page_with(
                StatusCode::OK,
                &ShownOnce {
                    l: Layout::new(&s, nav, shown.heading.clone()),
                    heading: shown.heading,
                    what: shown.what,
                    secret: shown.secret,
                    back: shown.back,
                    back_label: shown.back_label,
                },
            )?
        }
        None => page_with(StatusCode::GONE, &gone(&ctx, &s, &which).await)?,
    };
    if let Ok(v) = HeaderValue::from_str(&cookie(&ctx, "", 0)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}
