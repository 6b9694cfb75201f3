//! Notifications (channels, test sends, delivery logs, reminder lead times) and the audit log.

use super::pager::{PageQuery, Pager};
use super::shown_once::{self, Shown};
use super::tokens::ResultPartial;
use super::view::{self, Layout};
use super::{AdminSession, UiResult, page, page_with, see_other};
use crate::AppContext;
use crate::ops;
use crate::ops::channels::{Channel, ChannelChanges, NewChannel, Target};
use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tokenwarden_domain::{ChannelKind, EventKind, Expiring, LeadTime};
use tokenwarden_store::{AuditFilter, ChannelRecord};

/// The email recipients typed: separated by commas, spaces, semicolons or lines.
fn recipients(typed: &str) -> Vec<String> {
    typed
        .split([',', ' ', ';', '\n'])
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn load(ctx: &AppContext, id: &str) -> UiResult<ChannelRecord> {
    Ok(ops::channels::get(ctx, id).await?)
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
    let channel = Channel::of(c);
    let target = match &channel.target {
        Target::Webhook { url } => url.clone(),
        Target::Email { to } => to.join(", "),
    };
    let events: Vec<&str> = channel.events.iter().map(|e| e.as_str()).collect();
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

/// A reminder on the notifications page: to come, or sent.
struct ReminderRow {
    /// The token's id (empty once deleted), its name and owner ("global" or the app's name).
    token_id: String,
    token: String,
    owner: String,
    /// "7d before expiry", or "at expiry".
    lead: String,
    /// When (absolute) and how far from now.
    at: String,
    when: String,
}

/// "14 days before expiry", "at expiry", "... of the client secret": which reminder of a
/// token it is (`None`: the expiry itself).
fn reminder_words(lead: Option<LeadTime>, what: Expiring) -> String {
    let of = match what {
        Expiring::RefreshToken => "",
        Expiring::ClientSecret => " of the client secret",
    };
    match lead {
        Some(l) => format!("{} before expiry{of}", view::lead_time(l)),
        None => format!("at expiry{of}"),
    }
}

/// How many reminders each list on the notifications page shows (the upcoming ones page on
/// at `/notifications/upcoming`).
const REMINDER_ROWS: i64 = 20;

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    l: Layout,
    upcoming: Vec<ReminderRow>,
    /// The link to the upcoming reminders after the first [`REMINDER_ROWS`].
    more_upcoming: Option<String>,
    sent: Vec<ReminderRow>,
    channels: Vec<ChannelRow>,
    lead_times: String,
    lead_labels: String,
    /// The new-channel form: the kind chosen and what was typed (kept when it is refused).
    new: NewChannelForm,
    /// The events it may subscribe to: (kind, words, ticked), as on the edit form.
    events: Vec<EventChoice>,
    /// App names the new channel's app field suggests first (it asks for more as it is typed).
    apps: Vec<String>,
    error: String,
    pager: Pager,
}

/// What the new-channel form holds: its kind is chosen first (`?kind=email`), and only that
/// kind's fields are shown and read.
#[derive(Default)]
pub struct NewChannelForm {
    webhook: bool,
    name: String,
    url: String,
    to: String,
    app: String,
    events: Vec<String>,
}

impl NewChannelForm {
    fn of_kind(kind: Option<&str>) -> Self {
        Self {
            webhook: kind.and_then(|k| ChannelKind::parse(k).ok()) != Some(ChannelKind::Email),
            ..Self::default()
        }
    }
}

/// One event a channel may subscribe to, on the new and the edit form alike.
pub struct EventChoice {
    kind: &'static str,
    label: &'static str,
    ticked: bool,
}

/// The events a channel's form offers, ticked as `ticked` says: every kind but the test send,
/// which reaches every channel whatever it subscribes to (offered only if a channel holds it
/// already, so that saving keeps it).
fn event_choices(ticked: &[String]) -> Vec<EventChoice> {
    EventKind::ALL
        .iter()
        .filter(|k| **k != EventKind::Test || ticked.iter().any(|t| t == k.as_str()))
        .map(|k| EventChoice {
            kind: k.as_str(),
            label: view::event_label(*k),
            ticked: ticked.iter().any(|t| t == k.as_str()),
        })
        .collect()
}

/// Names the owner of each token shown ("global", "app NAME"): one read per app shown.
#[derive(Default)]
struct Owners(std::collections::HashMap<tokenwarden_domain::AppId, String>);

impl Owners {
    async fn name(&mut self, ctx: &AppContext, id: Option<tokenwarden_domain::AppId>) -> String {
        let Some(id) = id else {
            return "global".to_owned();
        };
        if let Some(n) = self.0.get(&id) {
            return n.clone();
        }
        let n = match ctx.store.get_app(id).await {
            Ok(a) => format!("app {}", a.name),
            Err(_) => "an app".to_owned(),
        };
        self.0.insert(id, n.clone());
        n
    }
}

async fn upcoming_rows(
    ctx: &AppContext,
    owners: &mut Owners,
    found: &[ops::channels::UpcomingReminder],
) -> Vec<ReminderRow> {
    let now = ctx.clock.now();
    let mut rows = Vec::new();
    for r in found {
        rows.push(ReminderRow {
            token_id: r.token_id.to_string(),
            token: r.token_name.clone(),
            owner: owners.name(ctx, r.app_id).await,
            lead: reminder_words(r.lead, r.what),
            at: view::fmt_time(Some(r.at)),
            when: format!("in {}", view::fmt_span(r.at - now)),
        });
    }
    rows
}

/// The page with one page of channels (oldest first, `ops::lists`); a form's error shows on
/// the first.
async fn notifications_page(
    ctx: &AppContext,
    s: &AdminSession,
    at: &PageQuery,
    new: NewChannelForm,
    error: String,
) -> UiResult<NotificationsPage> {
    let found = ops::lists::channels(ctx, &at.params()).await?;
    let pager = Pager::new("/notifications", &[], at, found.next_cursor.as_deref());
    let mut channels = Vec::new();
    for c in &found.items {
        channels.push(row(ctx, c).await);
    }
    let leads = ctx.lead_times();
    let apps = ops::lists::apps_starting_with(ctx, "", ops::lists::SUGGEST_MAX).await?;
    let mut owners = Owners::default();
    let now = ctx.clock.now();
    let first = PageQuery {
        limit: Some(REMINDER_ROWS),
        ..PageQuery::default()
    };
    let coming = ops::lists::upcoming_reminders(ctx, &first.params()).await?;
    let more_upcoming = Pager::new(
        "/notifications/upcoming",
        &[],
        &first,
        coming.next_cursor.as_deref(),
    )
    .next;
    let upcoming = upcoming_rows(ctx, &mut owners, &coming.items).await;
    let mut sent = Vec::new();
    for r in ops::channels::sent_reminders(ctx, REMINDER_ROWS).await? {
        sent.push(ReminderRow {
            token_id: if r.token_name.is_some() {
                r.token_id.to_string()
            } else {
                String::new()
            },
            token: r
                .token_name
                .clone()
                .unwrap_or_else(|| "(deleted token)".to_owned()),
            owner: owners.name(ctx, r.app_id).await,
            lead: {
                let (what, lead) = Expiring::of_reminder_key(&r.lead);
                match LeadTime::parse(lead) {
                    Ok(l) => reminder_words(Some(l), what),
                    Err(_) if lead == "expired" => reminder_words(None, what),
                    Err(_) => r.lead.clone(),
                }
            },
            at: view::fmt_time(Some(r.sent_at)),
            when: format!("{} ago", view::fmt_span(now - r.sent_at)),
        });
    }
    Ok(NotificationsPage {
        l: Layout::new(s, "notifications", "Notifications"),
        upcoming,
        more_upcoming,
        sent,
        channels,
        lead_times: leads
            .iter()
            .map(|d| view::lead_time(*d))
            .collect::<Vec<_>>()
            .join(", "),
        lead_labels: leads
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        events: event_choices(&new.events),
        new,
        apps: apps.iter().map(|a| a.name.to_string()).collect(),
        error,
        pager,
    })
}

#[derive(Template)]
#[template(path = "upcoming.html")]
struct UpcomingPage {
    l: Layout,
    upcoming: Vec<ReminderRow>,
    pager: Pager,
}

/// Every reminder still to come, a page at a time, soonest first (`ops::lists`).
pub async fn upcoming(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(at): Query<PageQuery>,
) -> UiResult {
    let found = ops::lists::upcoming_reminders(&ctx, &at.params()).await?;
    let pager = Pager::new(
        "/notifications/upcoming",
        &[],
        &at,
        found.next_cursor.as_deref(),
    );
    let upcoming = upcoming_rows(&ctx, &mut Owners::default(), &found.items).await;
    page(&UpcomingPage {
        l: Layout::new(&s, "notifications", "Reminders coming up"),
        upcoming,
        pager,
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
    let result = match f
        .lead_times
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(LeadTime::parse)
        .collect::<Result<Vec<_>, String>>()
    {
        Ok(leads) => ops::channels::set_lead_times(&ctx, &s.actor(), leads).await,
        Err(e) => Err(ops::Error::Invalid(e)),
    };
    match result {
        Ok(()) => {}
        Err(ops::Error::Invalid(e)) => {
            let p = notifications_page(
                &ctx,
                &s,
                &PageQuery::default(),
                NewChannelForm::default(),
                e,
            )
            .await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(see_other("/notifications"))
}

#[derive(Deserialize)]
pub struct KindQuery {
    kind: Option<String>,
}

/// The notifications page; `?kind=email` shows the new-channel form for an email channel.
pub async fn list(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(at): Query<PageQuery>,
    Query(k): Query<KindQuery>,
) -> UiResult {
    let new = NewChannelForm::of_kind(k.kind.as_deref());
    let p = notifications_page(&ctx, &s, &at, new, String::new()).await?;
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
    let typed = NewChannelForm {
        webhook: ChannelKind::parse(&kind).ok() != Some(ChannelKind::Email),
        name: name.clone(),
        url: get("url"),
        to: get("to"),
        app: app.clone(),
        events: events.clone(),
    };
    let result = async {
        // Only the chosen kind's field is read: the other, if a browser sent it, is ignored.
        let target = match ops::channels::parse_kind(&kind) {
            Ok(ChannelKind::Webhook) => Target::Webhook { url: get("url") },
            Ok(ChannelKind::Email) => Target::Email {
                to: recipients(&get("to")),
            },
            Err(_) => return Err(ops::Error::Invalid("choose webhook or email".into())),
        };
        let new = NewChannel {
            name: name.clone(),
            target,
            events: ops::channels::parse_events(&events)?,
            app: Some(app.clone()),
            enabled: true,
        };
        ops::channels::create(&ctx, &s.actor(), new).await
    }
    .await;
    match result {
        Ok((rec, secret)) => match secret {
            Some(sec) => {
                shown_once::redirect(&ctx, &s, Shown::webhook_secret(&rec.id, &rec.name, &sec))
            }
            None => Ok(see_other("/notifications")),
        },
        Err(ops::Error::Invalid(error)) => {
            let error = super::tokens::sentence(&error);
            let p = notifications_page(&ctx, &s, &PageQuery::default(), typed, error).await?;
            page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
        Err(e) => Err(e.into()),
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
    let changes = ChannelChanges {
        enabled: Some(f.enabled == "true"),
        ..ChannelChanges::default()
    };
    ops::channels::update(&ctx, &s.actor(), &id, changes).await?;
    Ok(see_other("/notifications"))
}

pub async fn delete(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    ops::channels::delete(&ctx, &s.actor(), &id).await?;
    Ok(see_other("/notifications"))
}

/// Sends a test event now and shows what happened.
pub async fn test(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let crate::ops::delivery::TestSend { ok, message, .. } =
        ops::channels::test(&ctx, &s.actor(), &id).await?;
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
    pager: Pager,
}

/// A channel and one page of its delivery log, newest first (`ops::lists`).
pub async fn detail(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Query(at): Query<PageQuery>,
) -> UiResult {
    let c = load(&ctx, &id).await?;
    let found = ops::lists::deliveries(&ctx, &c.id, &at.params()).await?;
    let pager = Pager::new(
        &format!("/notifications/{}", c.id),
        &[],
        &at,
        found.next_cursor.as_deref(),
    );
    let deliveries = found
        .items
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
        pager,
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
    what: view::ActivityRow,
    object: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    rows: Vec<AuditRow>,
    /// The token and app typed (names), and the names their fields suggest first.
    token: String,
    app: String,
    tokens: Vec<String>,
    apps: Vec<String>,
    action: String,
    /// The actions the action field suggests: (code, words).
    actions: Vec<(&'static str, String)>,
    /// How long audit records are kept (the `audit_retention` setting), in words.
    retention: String,
    /// Why nothing is shown (a token or app that does not exist).
    notice: String,
    pager: Pager,
}

/// What the audit filter's token and app fields name: the audit records' object id, and the
/// names to show back in the fields. A field holds a name (the token the app reads by that
/// name when an app is given, else the global one) or an id (the token detail page's link).
async fn audit_object(
    ctx: &AppContext,
    token: &str,
    app: &str,
) -> UiResult<Result<(Option<String>, String, String), String>> {
    let mut app_name = app.to_owned();
    let app_id = if app.is_empty() {
        None
    } else if let Some(id) = tokenwarden_domain::AppId::parse(app) {
        match ctx.store.get_app(id).await {
            Ok(a) => {
                app_name = a.name.to_string();
                Some(a.id)
            }
            Err(tokenwarden_store::StoreError::NotFound(_)) => {
                return Ok(Err(format!("There is no app with id {app}.")));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        let missing = || format!("There is no app named {app}.");
        let Ok(name) = tokenwarden_domain::AppName::parse(app) else {
            return Ok(Err(missing()));
        };
        match ctx.store.get_app_by_name(&name).await {
            Ok(a) => Some(a.id),
            Err(tokenwarden_store::StoreError::NotFound(_)) => return Ok(Err(missing())),
            Err(e) => return Err(e.into()),
        }
    };
    if token.is_empty() {
        return Ok(Ok((app_id.map(|a| a.to_string()), String::new(), app_name)));
    }
    let found = if let Some(id) = tokenwarden_domain::TokenId::parse(token) {
        match ctx.store.get_token(id).await {
            Ok(t) => Some(t),
            Err(tokenwarden_store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        match tokenwarden_domain::TokenName::parse(token) {
            Ok(name) => ops::grant::resolve_token(ctx, app_id, &name)
                .await?
                .map(|(t, _)| t),
            Err(_) => None,
        }
    };
    let Some(t) = found else {
        return Ok(Err(if app.is_empty() {
            format!(
                "There is no global token named {token}; name its app too for an app-level one."
            )
        } else {
            format!(
                "There is no token named {token}: neither app {app_name}'s own nor a global one."
            )
        }));
    };
    if app.is_empty()
        && let Some(owner) = t.app_id
    {
        app_name = ctx
            .store
            .get_app(owner)
            .await
            .map(|a| a.name.to_string())
            .unwrap_or_default();
    }
    Ok(Ok((Some(t.id.to_string()), t.name.to_string(), app_name)))
}

/// One page of the audit log, newest first (`ops::lists`), narrowed by token, app (typed names,
/// suggested a few at a time) or action; the page links keep the filter.
pub async fn audit(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(q): Query<AuditQuery>,
    Query(at): Query<PageQuery>,
) -> UiResult {
    let token = q.token.unwrap_or_default().trim().to_owned();
    let app = q.app.unwrap_or_default().trim().to_owned();
    let action = q.action.unwrap_or_default().trim().to_owned();
    let (object_id, token_name, app_name, notice) = match audit_object(&ctx, &token, &app).await? {
        Ok((id, t, a)) => (id, t, a, String::new()),
        Err(notice) => (None, token.clone(), app.clone(), notice),
    };
    let filter = AuditFilter {
        object_id,
        action: (!action.is_empty()).then(|| action.clone()),
        actor: None,
        limit: ops::lists::MAX_LIMIT,
    };
    let events = if notice.is_empty() {
        ops::lists::audit(&ctx, &filter, &at.params()).await?
    } else {
        ops::lists::Page {
            items: Vec::new(),
            next_cursor: None,
        }
    };
    let pager = Pager::new(
        "/audit",
        &[
            ("token", token.as_str()),
            ("app", app.as_str()),
            ("action", action.as_str()),
        ],
        &at,
        events.next_cursor.as_deref(),
    );
    let mut rows = Vec::new();
    let mut names = view::ActorNames::default();
    for e in events.items {
        let object = match (&e.object_name, &e.object_id) {
            (Some(n), _) => format!("{} {n}", e.object_type),
            (None, Some(i)) => format!("{} {i}", e.object_type),
            (None, None) => e.object_type.clone(),
        };
        rows.push(AuditRow {
            what: view::activity_row(&ctx, &mut names, e).await,
            object,
        });
    }
    let max = ops::lists::SUGGEST_MAX;
    page(&AuditPage {
        l: Layout::new(&s, "audit", "Audit log"),
        rows,
        tokens: ops::lists::token_names_starting_with(&ctx, "", max).await?,
        apps: ops::lists::apps_starting_with(&ctx, "", max)
            .await?
            .into_iter()
            .map(|a| a.name.to_string())
            .collect(),
        token: token_name,
        app: app_name,
        action,
        actions: tokenwarden_domain::AuditAction::ALL
            .iter()
            .map(|a| (a.as_str(), view::action_label(a.as_str())))
            .collect(),
        retention: view::duration(ctx.settings.audit_retention),
        notice,
        pager,
    })
}

// --- editing a channel (issue 11 item 9) ---------------------------------------------------

#[derive(Template)]
#[template(path = "channel_edit.html")]
struct ChannelEditPage {
    l: Layout,
    id: String,
    /// The channel's name as stored (for the crumbs and heading).
    current: String,
    name: String,
    webhook: bool,
    url: String,
    to: String,
    events: Vec<EventChoice>,
    enabled: bool,
    /// The app it is about (its name; empty: every app and token), and the names the field
    /// suggests first.
    app: String,
    apps: Vec<String>,
    error: String,
}

#[derive(Default)]
struct EditValues {
    name: Option<String>,
    url: Option<String>,
    to: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    app: Option<String>,
}

async fn edit_page(
    ctx: &AppContext,
    s: &AdminSession,
    c: &ChannelRecord,
    v: EditValues,
    error: String,
) -> UiResult<ChannelEditPage> {
    let channel = Channel::of(c);
    let (webhook, url, to) = match &channel.target {
        Target::Webhook { url } => (true, url.clone(), String::new()),
        Target::Email { to } => (false, String::new(), to.join(", ")),
    };
    let ticked: Vec<String> = v.events.unwrap_or_else(|| {
        channel
            .events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect()
    });
    Ok(ChannelEditPage {
        l: Layout::new(s, "notifications", format!("Edit {}", c.name)),
        id: c.id.clone(),
        current: c.name.clone(),
        name: v.name.unwrap_or_else(|| c.name.clone()),
        webhook,
        url: v.url.unwrap_or(url),
        to: v.to.unwrap_or(to),
        events: event_choices(&ticked),
        enabled: v.enabled.unwrap_or(c.enabled),
        app: match v.app {
            Some(a) => a,
            None => row(ctx, c).await.app,
        },
        apps: ops::lists::apps_starting_with(ctx, "", ops::lists::SUGGEST_MAX)
            .await?
            .into_iter()
            .map(|a| a.name.to_string())
            .collect(),
        error,
    })
}

pub async fn edit_form(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let c = load(&ctx, &id).await?;
    let p = edit_page(&ctx, &s, &c, EditValues::default(), String::new()).await?;
    page(&p)
}

/// Saves a channel's name, webhook URL or recipients, events, whether it is enabled and its
/// scope (every app, or the app named).
pub async fn save(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let c = load(&ctx, &id).await?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
    };
    let events: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.clone())
        .collect();
    let webhook = matches!(Channel::of(&c).target, Target::Webhook { .. });
    let values = EditValues {
        name: get("name"),
        url: get("url"),
        to: get("to"),
        events: Some(events.clone()),
        enabled: Some(get("enabled").as_deref() == Some("true")),
        app: get("app"),
    };
    let result = async {
        let changes = ChannelChanges {
            name: values.name.clone(),
            url: if webhook { values.url.clone() } else { None },
            to: if webhook {
                None
            } else {
                values.to.as_deref().map(recipients)
            },
            events: Some(ops::channels::parse_events(&events)?),
            enabled: values.enabled,
            app: values.app.clone(),
            version: None,
        };
        ops::channels::update(&ctx, &s.actor(), &c.id, changes).await
    }
    .await;
    match result {
        Ok(c) => Ok(see_other(&format!("/notifications/{}", c.id))),
        Err(ops::Error::Invalid(error)) => {
            let p = edit_page(&ctx, &s, &c, values, super::tokens::sentence(&error)).await?;
            page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
        Err(e) => Err(e.into()),
    }
}
