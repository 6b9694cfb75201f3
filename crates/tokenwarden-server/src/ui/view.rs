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

/// "3 days 4 hours", "5 hours 12 minutes", "40 seconds": how far away an instant is (a
/// countdown, "expires in …", "… ago"), the largest unit and the next one. The UI's one
/// duration format: [`duration`] is its exact form; `assets/ui.js` (`span`) ticks countdowns
/// in the same words.
pub fn fmt_span(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    let (days, hours, mins) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    if days > 0 {
        words(&[(days, "day"), (hours, "hour")])
    } else if hours > 0 {
        words(&[(hours, "hour"), (mins, "minute")])
    } else if mins > 0 {
        words(&[(mins, "minute")])
    } else {
        words(&[(s, "second")])
    }
}

/// "90 days", "1 hour", "1 day 12 hours": a length of time in full (a setting, a lead time, a
/// retention), every unit that is not zero.
pub fn duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    let parts = [
        (s / 86_400, "day"),
        ((s % 86_400) / 3_600, "hour"),
        ((s % 3_600) / 60, "minute"),
        (s % 60, "second"),
    ];
    if s == 0 {
        return words(&[(0, "second")]);
    }
    words(&parts)
}

/// A reminder lead time as the UI shows it ("14 days"), the same words as every duration.
pub fn lead_time(l: tokenwarden_domain::LeadTime) -> String {
    duration(l.duration())
}

/// "3 days 4 hours": the units that are not zero (the first one even if it is), singular or
/// plural.
fn words(parts: &[(i64, &str)]) -> String {
    let mut out = String::new();
    for (i, (n, unit)) in parts.iter().enumerate() {
        if *n == 0 && !(i == 0 && parts.iter().all(|(m, _)| *m == 0)) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }));
    }
    out
}

/// An expiry as a phrase: "expires in 40 minutes", "expired 5 days ago".
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
                _ if dead => "needs re-authorization".into(),
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
        TokenStatus::NeedsReauthorization => ("Needs re-authorization", "crit"),
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
    /// Offer "Re-authorize" (see [`needs_signin`]).
    pub needs_signin: bool,
}

/// Whether a token wants re-authorizing now or soon: it died (needs re-authorization, expired) or its
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

/// An audit record as the UI shows it (the token page's activity, the audit log): what was
/// done as words, who did it by name, and its detail as labelled fields, never raw JSON.
pub struct ActivityRow {
    pub at: String,
    pub actor: String,
    /// "Access token refreshed"; `code` is the action as stored (`token.refresh`), which the
    /// audit filter takes.
    pub action: String,
    pub code: String,
    pub outcome: String,
    /// (label, value): "Changed: settings, client secret".
    pub detail: Vec<(String, String)>,
}

/// Names the apps that appear as actors (`app:<id>`): one read per app, remembered for the page.
#[derive(Default)]
pub struct ActorNames(std::collections::HashMap<String, String>);

impl ActorNames {
    /// "admin alice", "app sales-invoice", "tokenwarden" (the background pass), "the CLI".
    pub async fn name(&mut self, ctx: &AppContext, actor: &str) -> String {
        if let Some(n) = self.0.get(actor) {
            return n.clone();
        }
        let n = match actor.split_once(':') {
            Some(("app", id)) => match tokenwarden_domain::AppId::parse(id) {
                Some(aid) => match ctx.store.get_app(aid).await {
                    Ok(a) => format!("app {}", a.name),
                    Err(_) => format!("app {id}"),
                },
                None => format!("app {id}"),
            },
            Some((kind, who)) => format!("{} {who}", kind.replace('_', " ")),
            None => match actor {
                "system" => "tokenwarden".to_owned(),
                "cli" => "the CLI".to_owned(),
                other => other.to_owned(),
            },
        };
        self.0.insert(actor.to_owned(), n.clone());
        n
    }
}

pub async fn activity_row(
    ctx: &AppContext,
    names: &mut ActorNames,
    e: tokenwarden_store::AuditEvent,
) -> ActivityRow {
    ActivityRow {
        // To the second: records often come a few seconds apart.
        at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        actor: names.name(ctx, &e.actor).await,
        action: action_label(&e.action),
        detail: detail_fields(&e.detail),
        code: e.action,
        outcome: e.outcome,
    }
}

/// What a notification event is about, in words (the channel forms' event choices).
pub fn event_label(k: tokenwarden_domain::EventKind) -> &'static str {
    use tokenwarden_domain::EventKind as E;
    match k {
        E::TokenAuthorized => "Token authorized or re-authorized",
        E::TokenRefreshFailed => "Refresh failed (tokenwarden retries)",
        E::TokenNeedsReauthorization => "Token needs re-authorization",
        E::TokenNeedsCredentials => "Token needs new client credentials",
        E::TokenExpiring => "Refresh token expiring (the reminders)",
        E::TokenExpired => "Refresh token expired",
        E::TokenRestored => "Token works again",
        E::AppStopped => "App stopped",
        E::AppStarted => "App started",
        E::Test => "Test send",
    }
}

/// What an audit action says, in words; an action this version does not know stays as stored.
pub fn action_label(action: &str) -> String {
    use tokenwarden_domain::AuditAction as A;
    let Ok(a) = A::parse(action) else {
        return action.to_owned();
    };
    match a {
        A::TokenCreate => "Token created",
        A::TokenUpdate => "Token changed",
        A::TokenDelete => "Token deleted",
        A::TokenClientSecrets => "Client id and secrets filled in",
        A::TokenAuthorizeStart => "Authorization started",
        A::TokenDeviceStart => "Sign-in with a code started",
        A::TokenAuthorize => "Authorized at the provider",
        A::TokenRefresh => "Access token refreshed",
        A::TokenRefreshFailed => "Refresh failed",
        A::TokenNeedsReauthorization => "Needs re-authorization",
        A::TokenNeedsCredentials => "Needs new client credentials",
        A::TokenKeyRotate => "Signing key rotation",
        A::TokenExpired => "Refresh token expired",
        A::TokenStatus => "Status changed",
        A::TokenTest => "Connection tested",
        A::TokenRead => "Read by an app",
        A::AppCreate => "App created",
        A::AppUpdate => "App changed",
        A::AppDelete => "App deleted",
        // By an admin, or by tokenwarden as its tokens die and work again: "Who" says which.
        A::AppStart | A::AppStarted => "App started",
        A::AppStop | A::AppStopped => "App stopped",
        A::AppKeyCreate => "API key created",
        A::AppKeyRevoke => "API key revoked",
        A::ChannelCreate => "Channel created",
        A::ChannelUpdate => "Channel changed",
        A::ChannelDelete => "Channel deleted",
        A::ChannelTest => "Test notification sent",
        A::SettingsLeadTimes => "Reminder lead times changed",
        A::AdminCreate => "Admin created",
        A::AdminPassword => "Password changed",
        A::AdminRemove => "Admin removed",
        A::AdminTokenCreate => "Admin token created",
        A::AdminTokenRevoke => "Admin token revoked",
        A::KeysRotate => "Encryption keys rotated",
        A::KeysDrop => "Encryption key dropped",
        A::ConfigExport => "Configuration exported",
        A::AuthLogin => "Signed in",
        A::AuthLogout => "Signed out",
        A::AuthDenied => "Credential refused",
        A::AuthForbidden => "Refused: not an admin credential",
        A::AuthCsrfRefused => "Request refused (CSRF check)",
    }
    .to_owned()
}

/// An audit record's detail as labelled fields: "Changed: settings, client secret",
/// "Name: old → new", instants as the UI shows them. Audit details hold no secret; a text under
/// a key that names one is still never shown.
pub fn detail_fields(detail: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = detail.as_object() else {
        return match detail {
            serde_json::Value::Null => Vec::new(),
            other => vec![("Detail".to_owned(), value_text("", other))],
        };
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (key_label(k), value_text(k, v)))
        .collect()
}

/// `refresh_token_expires_at` -> "Refresh token expires at".
fn key_label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn value_text(key: &str, v: &serde_json::Value) -> String {
    use serde_json::Value;
    let secret = key.contains("secret") || key.contains("password");
    match v {
        Value::String(_) if secret => "(not shown)".to_owned(),
        // A token's status, as the pages name it.
        Value::String(text) if matches!(key, "from" | "to" | "status") => TokenStatus::parse(text)
            .map_or_else(|_| text.clone(), |st| status_label(st).0.to_owned()),
        Value::String(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => fmt_time(Some(t.with_timezone(&chrono::Utc))),
            Err(_) => text.clone(),
        },
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        // A renaming: [before, after].
        Value::Array(a) if a.len() == 2 && (key == "name" || key.ends_with("renamed")) => {
            format!("{} → {}", value_text(key, &a[0]), value_text(key, &a[1]))
        }
        Value::Array(a) if a.is_empty() => "none".to_owned(),
        Value::Array(a) => a
            .iter()
            .map(|x| match (key, x) {
                ("changed", Value::String(s)) => s.replace('_', " "),
                _ => value_text(key, x),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(_) => detail_fields(v)
            .into_iter()
            .map(|(k, x)| format!("{}: {x}", k.to_lowercase()))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn one_duration_format_in_words() {
        assert_eq!(duration(Duration::days(90)), "90 days");
        assert_eq!(duration(Duration::hours(1)), "1 hour");
        assert_eq!(duration(Duration::hours(36)), "1 day 12 hours");
        assert_eq!(duration(Duration::minutes(90)), "1 hour 30 minutes");
        assert_eq!(duration(Duration::seconds(0)), "0 seconds");
        assert_eq!(fmt_span(Duration::days(30)), "30 days");
        assert_eq!(fmt_span(Duration::hours(24 * 3 + 4)), "3 days 4 hours");
        assert_eq!(
            fmt_span(Duration::minutes(5 * 60 + 12)),
            "5 hours 12 minutes"
        );
        assert_eq!(fmt_span(Duration::seconds(-40)), "40 seconds");
        assert_eq!(fmt_span(Duration::seconds(61)), "1 minute");
        let l = tokenwarden_domain::LeadTime::parse("14d").unwrap();
        assert_eq!(lead_time(l), "14 days");
    }

    #[test]
    fn activity_detail_is_labelled_fields_never_json_nor_a_secret() {
        let d = serde_json::json!({
            "changed": ["settings", "client_secret"],
            "name": ["old-name", "new-name"],
            "rotated": true,
            "refresh_token_expires_at": "2026-03-01T10:00:00.000Z",
            "client_secret": "hunter2-should-never-be-here",
            "reason": null,
            "from": "expiring_soon",
        });
        let f = detail_fields(&d);
        let text = format!("{f:?}");
        assert!(
            f.contains(&("Changed".into(), "settings, client secret".into())),
            "{text}"
        );
        assert!(
            f.contains(&("Name".into(), "old-name → new-name".into())),
            "{text}"
        );
        assert!(f.contains(&("Rotated".into(), "yes".into())), "{text}");
        assert!(
            f.contains(&(
                "Refresh token expires at".into(),
                "2026-03-01 10:00 UTC".into()
            )),
            "{text}"
        );
        assert!(!text.contains("hunter2") && !text.contains('{'), "{text}");
        assert!(
            f.contains(&("From".into(), "Expiring soon".into())),
            "{text}"
        );
        assert_eq!(f.len(), 6, "{text}");
        assert_eq!(action_label("token.refresh"), "Access token refreshed");
        assert_eq!(action_label("token.future_thing"), "token.future_thing");
    }
}
