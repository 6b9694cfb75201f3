//! What the templates show, computed on the server from `ctx.clock` (tests move the clock).

use super::AdminSession;
use crate::AppContext;
use tokenwarden_domain::{Timestamp, TokenStatus};
use tokenwarden_store::{AppRecord, TokenRecord};

/// The frame around every signed-in page.
pub struct Layout {
    pub title: String,
    /// Which nav entry is current: tokens, apps, notifications, audit, admins.
    pub nav: &'static str,
    pub username: String,
    pub csrf: String,
}

impl Layout {
    pub fn new(s: &AdminSession, nav: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            nav,
            username: s.username.clone(),
            csrf: s.csrf.clone(),
        }
    }
}

/// The form that names a new API key or admin token: its label (`default` when left empty).
#[derive(serde::Deserialize)]
pub struct LabelForm {
    #[serde(default)]
    label: String,
}

impl LabelForm {
    /// The label typed, else `default`; a refusal is the sentence for the form.
    pub fn label(&self, default: &str) -> Result<tokenwarden_domain::KeyLabel, String> {
        let text = match self.label.trim() {
            "" => default,
            typed => typed,
        };
        tokenwarden_domain::KeyLabel::parse(text).map_err(|e| format!("Label: {e}"))
    }
}

/// A refresh token's remaining life, as text and a class: `ok`, `warn` (inside the first
/// reminder lead time), `crit` (needs action: dead, or under a day left), `muted` (unknown).
pub struct Countdown {
    pub class: &'static str,
    pub text: String,
    /// Epoch milliseconds of the expiry, for ui.js to tick the text live; 0 = none.
    pub expires_ms: i64,
    /// The amber threshold in milliseconds.
    pub lead_ms: i64,
    /// The service's "now" when the page was made (its clock may differ from the browser's, and
    /// `tokenwarden demo` can fast-forward it): ui.js counts from it.
    pub now_ms: i64,
    pub absolute: String,
}

pub fn fmt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// "3 d 4 h", "5 h 12 min", "40 s".
pub fn fmt_span(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    let (days, hours, mins) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else if mins > 0 {
        format!("{mins} min")
    } else {
        format!("{s} s")
    }
}

/// An expiry as a phrase: "expires in 40 min", "expired 5 d ago".
pub fn expiry(now: Timestamp, t: Timestamp) -> String {
    if t > now {
        format!("expires in {}", fmt_span(t - now))
    } else {
        format!("expired {} ago", fmt_span(now - t))
    }
}

pub fn max_lead(ctx: &AppContext) -> chrono::Duration {
    ctx.first_lead_time().duration()
}

pub fn countdown(ctx: &AppContext, status: TokenStatus, expires: Option<Timestamp>) -> Countdown {
    let now = ctx.clock.now();
    let lead = max_lead(ctx);
    let dead = status.is_dead();
    let Some(exp) = expires else {
        return Countdown {
            class: if dead { "crit" } else { "muted" },
            text: match status {
                TokenStatus::NotAuthorized => "not authorized yet".into(),
                _ if dead => "needs sign-in".into(),
                _ => "no expiry known".into(),
            },
            expires_ms: 0,
            lead_ms: lead.num_milliseconds(),
            now_ms: ctx.clock.now().timestamp_millis(),
            absolute: String::new(),
        };
    };
    let left = exp - now;
    let class = if dead || left < chrono::Duration::days(1) {
        "crit"
    } else if left <= lead {
        "warn"
    } else {
        "ok"
    };
    let text = if left <= chrono::Duration::zero() {
        format!("expired {} ago", fmt_span(-left))
    } else {
        format!("{} left", fmt_span(left))
    };
    Countdown {
        class,
        text,
        expires_ms: exp.timestamp_millis(),
        lead_ms: lead.num_milliseconds(),
        now_ms: ctx.clock.now().timestamp_millis(),
        absolute: fmt_time(Some(exp)),
    }
}

pub fn status_label(s: TokenStatus) -> (&'static str, &'static str) {
    match s {
        TokenStatus::Healthy => ("Healthy", "ok"),
        TokenStatus::ExpiringSoon => ("Expiring soon", "warn"),
        TokenStatus::NeedsReauthorization => ("Needs sign-in", "crit"),
        TokenStatus::Expired => ("Expired", "crit"),
        TokenStatus::NotAuthorized => ("Not authorized yet", "muted"),
        TokenStatus::NeedsCredentials => ("Needs new credentials", "crit"),
    }
}

/// One token in a list.
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub reason: String,
    pub access: String,
    pub refresh: Countdown,
    /// Apps that use it, (id, name).
    pub apps: Vec<(String, String)>,
    /// Offer "Sign in again" (see [`needs_signin`]).
    pub needs_signin: bool,
}

/// Whether a token wants a new sign-in now or soon: it died (needs sign-in, expired) or its
/// refresh token is inside the first reminder lead time. A token never signed in is not
/// "again": its form's button says "Get OAuth 2.0 Access Token".
pub fn needs_signin(status: TokenStatus, refresh: &Countdown) -> bool {
    match status {
        TokenStatus::NeedsReauthorization | TokenStatus::Expired | TokenStatus::ExpiringSoon => {
            true
        }
        TokenStatus::NotAuthorized | TokenStatus::NeedsCredentials => false,
        TokenStatus::Healthy => matches!(refresh.class, "warn" | "crit"),
    }
}

/// The apps that use the tokens shown, by name: one indexed read per distinct name on the
/// page (`Store::apps_using_token`), never every app.
pub async fn apps_of(
    ctx: &AppContext,
    tokens: &[TokenRecord],
) -> Result<Vec<AppRecord>, tokenwarden_store::StoreError> {
    let mut names: Vec<&tokenwarden_domain::TokenName> = tokens.iter().map(|t| &t.name).collect();
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in names {
        for a in ctx.store.apps_using_token(name).await? {
            if seen.insert(a.id) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// `apps` hold (at least) the apps using the token by name ([`apps_of`]); those using it in
/// its scope are listed.
pub fn token_row(ctx: &AppContext, t: &TokenRecord, apps: &[AppRecord]) -> TokenRow {
    let now = ctx.clock.now();
    let (status, status_class) = status_label(t.status);
    let users = apps
        .iter()
        .filter(|a| a.tokens.contains(&t.name))
        .filter(|a| t.app_id.is_none_or(|owner| owner == a.id))
        .map(|a| (a.id.to_string(), a.name.to_string()))
        .collect();
    TokenRow {
        id: t.id.to_string(),
        name: t.name.to_string(),
        provider: ctx
            .catalog
            .get(t.provider.as_str())
            .map_or_else(|| t.provider.to_string(), |p| p.display_name.clone()),
        status,
        status_class,
        reason: t.status_reason.clone().unwrap_or_default(),
        access: t
            .material
            .access_expires_at
            .map_or_else(|| "—".to_owned(), |e| expiry(now, e)),
        needs_signin: false,
        refresh: soonest_countdown(ctx, t),
        apps: users,
    }
    .with_signin(t)
}

/// The countdown of what expires first on a token: its refresh token, or its client secret
/// (then the text says so); a token without a refresh token says why it needs none.
pub fn soonest_countdown(ctx: &AppContext, t: &TokenRecord) -> Countdown {
    match (t.material.refresh_expires_at, t.client_secret_expires_at) {
        (r, Some(secret)) if r.is_none_or(|r| secret < r) => {
            let mut c = countdown(ctx, t.status, Some(secret));
            c.text = format!("client secret: {}", c.text);
            c
        }
        (None, None) if !t.grant.renews_with_refresh_token() && !t.status.is_dead() => {
            let mut c = countdown(ctx, t.status, None);
            if t.status != TokenStatus::NotAuthorized {
                c.text = "none needed".into();
            }
            c
        }
        (r, _) => countdown(ctx, t.status, r),
    }
}

impl TokenRow {
    fn with_signin(mut self, t: &TokenRecord) -> Self {
        self.needs_signin = t.grant.needs_sign_in() && needs_signin(t.status, &self.refresh);
        self
    }
}
