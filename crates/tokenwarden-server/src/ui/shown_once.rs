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
use axum::extract::{Extension, State};
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
        }
    }

    /// A new webhook channel's signing secret.
    pub fn webhook_secret(channel_name: &str, secret: &SecretString) -> Self {
        Self {
            heading: format!("Webhook channel {channel_name} created"),
            what: "Its signing secret (Standard Webhooks): the receiver verifies each request's signature with it. It is shown only this once.".into(),
            secret: secret.expose_secret().to_owned(),
            back: "/notifications".into(),
            back_label: "Back to notifications".into(),
            nav: "notifications".into(),
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
    let mut res = Redirect::to(PATH).into_response();
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

#[derive(askama::Template)]
#[template(path = "shown_gone.html")]
struct Gone {
    l: Layout,
}

/// GET [`PATH`]: the secret, this once; afterwards (a reload, another tab, too late) a page
/// saying it was shown once, 410.
pub async fn show(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
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
        None => page_with(
            StatusCode::GONE,
            &Gone {
                l: Layout::new(&s, "admins", "Shown once"),
            },
        )?,
    };
    if let Ok(v) = HeaderValue::from_str(&cookie(&ctx, "", 0)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}
