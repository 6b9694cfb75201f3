//! Notification channels (webhooks signed the Standard Webhooks way, email lists): create,
//! change, delete, test; and the reminder lead times every instance follows.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result, retrying};
use secrecy::SecretString;
use tokenwarden_domain::{AppName, ChannelKind, EventKind, Expiring, LeadTime};
use tokenwarden_store::{ChannelRecord, ExpiryBound, SealedColumn, StoreError};

/// Where the UI keeps the lead times an admin set (for every instance).
pub const LEAD_TIMES_KEY: &str = "reminder_lead_times";

/// Where a channel delivers: the kind and its own settings together, so a webhook without a
/// URL or an email channel with a URL cannot be written down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook { url: String },
    Email { to: Vec<String> },
}

impl Target {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Target::Webhook { .. } => ChannelKind::Webhook,
            Target::Email { .. } => ChannelKind::Email,
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            Target::Webhook { url } => tokenwarden_notify::check_webhook_url(url)
                .map_err(|e| Error::Invalid(e.to_string())),
            Target::Email { to } => {
                crate::ops::delivery::check_recipients(to).map_err(Error::Invalid)
            }
        }
    }
}

/// A channel as stored, read back into types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub target: Target,
    /// Event kinds it hears; empty = all.
    pub events: Vec<EventKind>,
}

impl Channel {
    /// Reads a stored channel's kind and configuration.
    pub fn of(rec: &ChannelRecord) -> Channel {
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let target = match ChannelKind::parse(&rec.kind) {
            Ok(ChannelKind::Email) => Target::Email {
                to: strings(&rec.config["to"]),
            },
            _ => Target::Webhook {
                url: rec.config["url"].as_str().unwrap_or_default().to_owned(),
            },
        };
        let events = strings(&rec.config["events"])
            .iter()
            .filter_map(|e| EventKind::parse(e).ok())
            .collect();
        Channel { target, events }
    }

    fn config(&self) -> serde_json::Value {
        let events: Vec<&str> = self.events.iter().map(|e| e.as_str()).collect();
        match &self.target {
            Target::Webhook { url } => serde_json::json!({"url": url, "events": events}),
            Target::Email { to } => serde_json::json!({"to": to, "events": events}),
        }
    }
}

/// A new channel.
#[derive(Debug)]
pub struct NewChannel {
    pub name: String,
    pub target: Target,
    /// Event kinds to send; empty = all.
    pub events: Vec<EventKind>,
    /// Only events about this app and the tokens it uses (a per-app channel).
    pub app: Option<String>,
    pub enabled: bool,
}

/// A change to a channel; `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct ChannelChanges {
    pub name: Option<String>,
    /// A webhook channel's URL.
    pub url: Option<String>,
    /// An email channel's recipients.
    pub to: Option<Vec<String>>,
    pub events: Option<Vec<EventKind>>,
    pub enabled: Option<bool>,
    /// Its scope: `Some("")` every app and token (global), `Some(name)` only events about that
    /// app and the tokens it uses.
    pub app: Option<String>,
    /// Apply only if the channel is still at this version; without it, the change applies to
    /// the current state (re-read and retried if another edit lands meanwhile).
    pub version: Option<i64>,
}

/// Parses event kinds by their text (`token.expiring`); the error lists the known ones.
pub fn parse_events<S: AsRef<str>>(texts: &[S]) -> Result<Vec<EventKind>> {
    texts
        .iter()
        .map(|t| {
            EventKind::parse(t.as_ref()).map_err(|_| {
                Error::Invalid(format!(
                    "unknown event kind {:?}; known: {}",
                    t.as_ref(),
                    EventKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        })
        .collect()
}

/// Parses a channel kind; the error says which exist.
pub fn parse_kind(text: &str) -> Result<ChannelKind> {
    ChannelKind::parse(text)
        .map_err(|_| Error::Invalid(format!("kind must be webhook or email, not {text:?}")))
}

/// The longest channel name, in characters.
pub const NAME_MAX: usize = 100;

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    // Characters, as the message says (and the API documents), not bytes.
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "name must be 1-{NAME_MAX} characters without control characters"
        )));
    }
    Ok(name.to_owned())
}

/// A channel's scope from the app name given: none or empty, every app (global); else that
/// app, which must exist.
async fn scope(ctx: &AppContext, app: Option<&str>) -> Result<Option<tokenwarden_domain::AppId>> {
    let Some(a) = app.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let missing = || Error::Invalid(format!("there is no app named {a}"));
    let n = AppName::parse(a).map_err(|_| missing())?;
    match ctx.store.get_app_by_name(&n).await {
        Ok(app) => Ok(Some(app.id)),
        Err(StoreError::NotFound(_)) => Err(missing()),
        Err(other) => Err(other.into()),
    }
}

/// The channel with this id.
pub async fn get(ctx: &AppContext, id: &str) -> Result<ChannelRecord> {
    ctx.store
        .get_channel(id)
        .await
        .map_err(Error::not_found_as(format!("notification channel {id:?}")))
}

/// Creates a channel; a webhook gets a new signing secret, returned this once (stored sealed).
pub async fn create(
    ctx: &AppContext,
    actor: &str,
    new: NewChannel,
) -> Result<(ChannelRecord, Option<SecretString>)> {
    let name = check_name(&new.name)?;
    new.target.check()?;
    let app_id = scope(ctx, new.app.as_deref()).await?;
    let id = format!("ch_{}", uuid::Uuid::new_v4().simple());
    let secret = match new.target {
        Target::Webhook { .. } => Some(tokenwarden_notify::new_webhook_secret()),
        Target::Email { .. } => None,
    };
    let channel = Channel {
        target: new.target,
        events: new.events,
    };
    let now = ctx.clock.now();
    let rec = ChannelRecord {
        id: id.clone(),
        app_id,
        kind: channel.target.kind().as_str().to_owned(),
        name,
        config: channel.config(),
        secret: secret
            .as_ref()
            .map(|s| ctx.vault.seal(s, SealedColumn::ChannelSecret, &id)),
        enabled: new.enabled,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    ctx.store.create_channel(&rec).await?;
    audit::record(
        ctx,
        actor,
        Action::ChannelCreate,
        Object::new("channel", &id, &rec.name),
        Outcome::Ok,
        serde_json::json!({"kind": rec.kind}),
    )
    .await;
    Ok((rec, secret))
}

/// Changes a channel: its name, its webhook URL or email recipients, the events it hears,
/// whether it is enabled, its scope (every app, or one app). Written over the version read: a concurrent edit is never lost
/// (without a `version` from the caller, this change is applied again to the newer state).
pub async fn update(
    ctx: &AppContext,
    actor: &str,
    id: &str,
    changes: ChannelChanges,
) -> Result<ChannelRecord> {
    let changes = &changes;
    let (c, changed) = retrying(changes.version, move || async move {
        let mut c = get(ctx, id).await?;
        if let Some(v) = changes.version
            && v != c.version
        {
            return Err(StoreError::VersionMismatch("notification channel").into());
        }
        let mut channel = Channel::of(&c);
        let mut changed = Vec::new();
        if let Some(n) = &changes.name {
            c.name = check_name(n)?;
            changed.push("name");
        }
        if let Some(events) = &changes.events {
            channel.events = events.clone();
            changed.push("events");
        }
        if let Some(url) = &changes.url {
            let Target::Webhook { url: u } = &mut channel.target else {
                return Err(Error::Invalid("only a webhook channel has a url".into()));
            };
            *u = url.clone();
            changed.push("url");
        }
        if let Some(to) = &changes.to {
            let Target::Email { to: t } = &mut channel.target else {
                return Err(Error::Invalid(
                    "only an email channel has recipients".into(),
                ));
            };
            *t = to.clone();
            changed.push("to");
        }
        channel.target.check()?;
        if let Some(e) = changes.enabled {
            c.enabled = e;
            changed.push("enabled");
        }
        if let Some(app) = &changes.app {
            let app_id = scope(ctx, Some(app)).await?;
            if app_id != c.app_id {
                c.app_id = app_id;
                changed.push("app");
            }
        }
        c.config = channel.config();
        c.updated_at = ctx.clock.now();
        Ok((ctx.store.update_channel(&c).await?, changed))
    })
    .await?;
    audit::record(
        ctx,
        actor,
        Action::ChannelUpdate,
        Object::new("channel", &c.id, &c.name),
        Outcome::Ok,
        serde_json::json!({"changed": changed, "enabled": c.enabled}),
    )
    .await;
    Ok(c)
}

/// Deletes a channel.
pub async fn delete(ctx: &AppContext, actor: &str, id: &str) -> Result<ChannelRecord> {
    let c = get(ctx, id).await?;
    ctx.store.delete_channel(&c.id).await?;
    audit::record(
        ctx,
        actor,
        Action::ChannelDelete,
        Object::new("channel", &c.id, &c.name),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(c)
}

/// Sends a test event to a channel now (not through the queue) and says what happened.
pub async fn test(
    ctx: &AppContext,
    actor: &str,
    id: &str,
) -> Result<crate::ops::delivery::TestSend> {
    let c = get(ctx, id).await?;
    Ok(crate::ops::delivery::test_send(ctx, &c, actor).await)
}

/// Sets the reminder lead times for every instance (kept in the database; each instance
/// picks them up on its next background pass, this one at once). 1 to 10 of them.
pub async fn set_lead_times(ctx: &AppContext, actor: &str, leads: Vec<LeadTime>) -> Result<()> {
    if leads.is_empty() || leads.len() > 10 {
        return Err(Error::Invalid(
            "give 1 to 10 lead times, e.g. 14d, 7d, 3d, 1d".into(),
        ));
    }
    let mut leads = leads;
    leads.sort_by(|a, b| b.cmp(a));
    leads.dedup();
    let labels: Vec<String> = leads.iter().map(ToString::to_string).collect();
    let json = serde_json::to_string(&labels).map_err(Error::internal)?;
    ctx.store.set_meta(LEAD_TIMES_KEY, &json).await?;
    ctx.reload_lead_times().await;
    audit::record(
        ctx,
        actor,
        Action::SettingsLeadTimes,
        Object::new("settings", "reminder_lead_times", "reminder lead times"),
        Outcome::Ok,
        serde_json::json!({"lead_times": labels}),
    )
    .await;
    Ok(())
}

/// A reminder still to come: about `token_name`'s refresh token or client secret (`what`),
/// `lead` before it expires (`None`: the expiry itself, announced when it happens), at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpcomingReminder {
    pub token_id: tokenwarden_domain::TokenId,
    pub token_name: String,
    pub app_id: Option<tokenwarden_domain::AppId>,
    pub what: Expiring,
    pub lead: Option<LeadTime>,
    pub at: tokenwarden_domain::Timestamp,
    /// When `what` expires.
    pub expires_at: tokenwarden_domain::Timestamp,
}

/// Where a page of reminders coming up starts: after the reminder at this time about this
/// expiry of this token (the order is time, then the refresh token's before the client
/// secret's, then token id).
pub type ReminderKey = (
    tokenwarden_domain::Timestamp,
    Expiring,
    tokenwarden_domain::TokenId,
);

/// The order of the expiries at the same time: `Expiring::ALL`'s.
fn rank(what: Expiring) -> usize {
    what as usize
}

/// The reminders still to come, by (time, expiry, token id), after `after` (the previous
/// page's last reminder), at most `limit`. The times follow the background pass's rule
/// (`engine::schedule`): for the refresh token and the client secret each, every lead time
/// before it expires, then the expiry itself.
///
/// The reminders of one expiry and lead time `d` come in the order of that expiry's index,
/// shifted by `d`; so this reads one keyset page of the index per expiry and lead time
/// (starting at the cursor's time plus `d`) and merges them: 2 x (lead times + 1) x `limit`
/// rows at most, whatever the number of tokens, and a token whose lead time is long is not
/// hidden behind the tokens expiring before it.
pub async fn upcoming_reminders(
    ctx: &AppContext,
    after: Option<ReminderKey>,
    limit: usize,
) -> Result<Vec<UpcomingReminder>> {
    let now = ctx.clock.now();
    let mut leads: Vec<Option<LeadTime>> = ctx.lead_times().into_iter().map(Some).collect();
    leads.dedup();
    leads.push(None);
    let rows = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut upcoming = Vec::new();
    for what in Expiring::ALL.iter().copied() {
        for lead in &leads {
            let d = lead.map_or_else(chrono::Duration::zero, |l| l.duration());
            // A reminder at `exp - d` is still to come when `exp > now + d`, and after the
            // cursor when `(exp - d, what, id) > (at, its what, its id)`.
            let floor = now + d;
            let bound = match after {
                Some((at, w, id)) if at + d > floor => match rank(what).cmp(&rank(w)) {
                    std::cmp::Ordering::Less => ExpiryBound::After(at + d),
                    std::cmp::Ordering::Equal => ExpiryBound::AfterToken(at + d, id),
                    std::cmp::Ordering::Greater => ExpiryBound::From(at + d),
                },
                _ => ExpiryBound::After(floor),
            };
            for t in ctx.store.tokens_expiring_after(what, bound, rows).await? {
                let Some(exp) = t.expires_at(what) else {
                    continue;
                };
                upcoming.push(UpcomingReminder {
                    token_id: t.id,
                    token_name: t.name.to_string(),
                    app_id: t.app_id,
                    what,
                    lead: *lead,
                    at: exp - d,
                    expires_at: exp,
                });
            }
        }
    }
    // (time, expiry, token id) is unique: one expiry's reminders are at different times.
    upcoming.sort_by_cached_key(|r| (r.at, rank(r.what), r.token_id.to_string()));
    upcoming.truncate(limit);
    Ok(upcoming)
}

/// The reminders sent most recently, newest first (at most `limit`, 1-100), naming the token.
pub async fn sent_reminders(
    ctx: &AppContext,
    limit: i64,
) -> Result<Vec<tokenwarden_store::SentReminder>> {
    Ok(ctx.store.recent_reminders(limit.clamp(1, 100)).await?)
}
