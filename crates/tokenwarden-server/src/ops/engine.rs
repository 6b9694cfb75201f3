//! Background work, as idempotent passes over the database: statuses and reminders from each
//! refresh token's expiry, refreshing ahead of time, daily health checks, notification
//! delivery. `run_due_once(now)` does one pass; the server runs it every few seconds, tests call
//! it with any `now` (90 days pass in a test). Everything it does is recorded under leases or
//! unique keys, so several instances neither skip nor repeat work (R39, R40).

use crate::AppContext;
use crate::ops::audit::{Action, Outcome};
use crate::ops::grant::{self, RefreshError};
use crate::ops::lifecycle;
use tokenwarden_domain::{LeadTime, Timestamp, TokenStatus};
use tokenwarden_store::{DueToken, StoreError, TokenHealth, TokenRecord, TokenSchedule};

/// What one pass did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Token rows the pass read: the due ones only.
    pub examined: usize,
    pub refreshed: usize,
    pub refresh_failures: usize,
    pub reminders_sent: usize,
    pub expired: usize,
    pub delivered: usize,
    pub delivery_retries: usize,
    /// Audit records deleted for being older than the retention.
    pub audit_pruned: u64,
    /// Device sign-ins (RFC 8628) polled at the provider.
    pub device_polls: usize,
}

/// How long before an access token expires it is refreshed ahead of time: a quarter of its
/// lifetime, between 30 s and 15 min (a fixed 15-minute margin would refresh a 10-minute
/// Snowflake token on every read).
pub fn refresh_margin(lifetime: chrono::Duration) -> chrono::Duration {
    (lifetime / 4).clamp(chrono::Duration::seconds(30), chrono::Duration::minutes(15))
}

/// How often an idle token is refreshed anyway, to find a revoked grant before an app needs it.
pub const HEALTH_CHECK_EVERY: chrono::Duration = chrono::Duration::hours(24);

/// Due tokens read per page; the pass yields between pages.
pub const DUE_PAGE: i64 = 256;

/// How far apart the first `refresh_concurrency` tokens of a pass are started. Started
/// together, their refreshes would also come back together (a provider answers in about the
/// same time) and each next one starts as one finishes: the pass would work in waves of
/// `refresh_concurrency` answers processed at once, and an app's read arriving with a wave waits
/// behind it (issue 10: reads' p99 during a pass). Started this far apart, they come back as far
/// apart and stay so; the pass loses at most `refresh_concurrency` times this once.
pub const PASS_RAMP_SPACING: std::time::Duration = std::time::Duration::from_millis(3);

/// The `meta` key holding the reminder lead times the stored schedule was computed with.
const SCHEDULE_LEADS_KEY: &str = "engine.schedule_lead_times";

pub async fn run_due_once(ctx: &AppContext, now: Timestamp) -> PassReport {
    let mut report = PassReport::default();
    if let Err(e) = ctx.store.check_storage() {
        tracing::error!(error = %e, "background pass skipped");
        return report;
    }
    flush_reads(ctx).await;
    flush_denials(ctx, Some(now)).await;
    report.audit_pruned = prune_audit(ctx, now).await;
    ctx.reload_lead_times().await;
    if let Err(e) = reschedule_if_lead_times_changed(ctx).await {
        tracing::warn!(error = %e, "background pass skipped: database unavailable");
        return report;
    }
    // Only the tokens due now, page by page in the order (next_check_at, id): the cost of a
    // pass is what is due, never the size of the table. Each token's work runs as its own task,
    // at most `refresh_concurrency` at once (each refresh still under the token's lease).
    let concurrency = ctx.settings.refresh_concurrency.max(1);
    let mut after = None;
    // One set of tasks across pages: the next page is read while the last tokens of this one
    // are still being refreshed, so the concurrency does not drop at every page's end.
    let mut tasks = tokio::task::JoinSet::new();
    let mut started = 0usize;
    'pages: loop {
        let page = match ctx.store.due_tokens(now, after, DUE_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "background pass skipped: database unavailable");
                break;
            }
        };
        report.examined += page.len();
        let last_page = (page.len() as i64) < DUE_PAGE;
        after = page.last().map(|d| d.cursor);
        for due in page {
            while tasks.len() >= concurrency {
                add_task_report(&mut report, tasks.join_next().await);
            }
            // Stopping (SIGTERM): what is in flight finishes; the rest stays due for the next
            // start or another instance.
            if ctx.live.is_stopping() {
                break 'pages;
            }
            if (1..concurrency).contains(&started) {
                tokio::time::sleep(PASS_RAMP_SPACING).await;
            }
            started += 1;
            let ctx = ctx.clone();
            tasks.spawn(async move { check_due_token(&ctx, due, now).await });
        }
        if last_page {
            break;
        }
        tokio::task::yield_now().await;
    }
    while let Some(done) = tasks.join_next().await {
        add_task_report(&mut report, Some(done));
    }
    // Device sign-ins due for a poll: their own index range, never the tokens.
    if !ctx.live.is_stopping() {
        report.device_polls = crate::ops::grant::device::poll_due(ctx, now).await;
        crate::ops::delivery::deliver_due(ctx, now, &mut report).await;
    }
    report
}

fn add_task_report(
    report: &mut PassReport,
    done: Option<Result<PassReport, tokio::task::JoinError>>,
) {
    match done {
        Some(Ok(r)) => {
            report.refreshed += r.refreshed;
            report.refresh_failures += r.refresh_failures;
            report.reminders_sent += r.reminders_sent;
            report.expired += r.expired;
        }
        Some(Err(e)) => tracing::error!(error = %e, "background work on a token panicked"),
        None => {}
    }
}

/// Does what is due for one token, then stores when it is next due (unless the token or its
/// bookkeeping was written meanwhile, by this work or anyone: then it stays due and the next
/// pass looks at the new state).
async fn check_due_token(ctx: &AppContext, due: DueToken, now: Timestamp) -> PassReport {
    let mut report = PassReport::default();
    let t = &due.token;
    let h = due.health.unwrap_or_else(|| TokenHealth::new(t.id));
    match token_pass(ctx, t, &h, due.check_seq, now, &mut report).await {
        Err(e) => {
            tracing::warn!(error = %e, token = %t.name, "background pass over a token failed");
            return report; // stays due
        }
        // Refreshed: its next check was stored with the refresh.
        Ok(Scheduled::WithRefresh) => return report,
        Ok(Scheduled::No) => {}
    }
    let next = schedule(ctx, t, &h, now);
    if let Err(e) = ctx.store.schedule_token(t.id, due.check_seq, &next).await {
        tracing::warn!(error = %e, token = %t.name, "could not schedule a token's next check");
    }
    report
}

/// The stored schedule depends on the reminder lead times: when they change (an admin in the
/// UI, or the configuration), every token is due once so its next check is computed again.
async fn reschedule_if_lead_times_changed(ctx: &AppContext) -> Result<(), StoreError> {
    let leads = ctx
        .lead_times()
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if ctx.store.get_meta(SCHEDULE_LEADS_KEY).await?.as_deref() != Some(leads.as_str()) {
        let n = ctx.store.reschedule_all_tokens().await?;
        ctx.store.set_meta(SCHEDULE_LEADS_KEY, &leads).await?;
        tracing::info!(
            tokens = n,
            lead_times = %leads,
            "reminder lead times changed: every token is checked again"
        );
    }
    Ok(())
}

/// When a token's access token is refreshed: ahead of its expiry if it is in use, and once a
/// day anyway (a health check). `None` if it is not refreshed at all (no expiry known).
struct RefreshTiming {
    lifetime: chrono::Duration,
    /// Refresh ahead from then on, if in use.
    ahead_at: Timestamp,
    /// The daily health check is due from then on.
    health_at: Timestamp,
    read_recently: bool,
}

fn refresh_timing(
    ctx: &AppContext,
    t: &TokenRecord,
    h: &TokenHealth,
    now: Timestamp,
) -> Option<RefreshTiming> {
    let access_exp = t.material.access_expires_at?;
    let since = h
        .last_success_at
        .or(t.material.issued_at)
        .unwrap_or(access_exp);
    let lifetime = (access_exp - since).max(chrono::Duration::seconds(60));
    let last_read = ctx.reads.last_read(t.id).max(h.last_read_at);
    let read_recently =
        last_read.is_some_and(|r| now - r <= (lifetime * 2).max(chrono::Duration::minutes(15)));
    let health_at = h
        .last_success_at
        .or(t.material.issued_at)
        .map_or(now, |s| s + HEALTH_CHECK_EVERY);
    Some(RefreshTiming {
        lifetime,
        ahead_at: access_exp - refresh_margin(lifetime),
        health_at,
        read_recently,
    })
}

fn is_usable(t: &TokenRecord) -> bool {
    matches!(t.status, TokenStatus::Healthy | TokenStatus::ExpiringSoon)
}

/// When [`token_pass`] next has something to do for `t`, having done what was due at `now`:
/// the next reminder lead time, the status change to expiring soon, the refresh token's expiry,
/// the daily check and (if in use) the refresh ahead, both not before the backoff. Keep it in
/// step with `token_pass`.
fn schedule(ctx: &AppContext, t: &TokenRecord, h: &TokenHealth, now: Timestamp) -> TokenSchedule {
    let mut next: Option<Timestamp> = None;
    let mut at = |x: Timestamp| next = Some(next.map_or(x, |n| n.min(x)));
    if !is_usable(t) {
        // Nothing happens to it until it is written again (a sign-in, an edit).
        return TokenSchedule {
            next_check_at: None,
            ahead_at: None,
        };
    }
    for (_, exp) in expiries(t) {
        at(exp);
        let leads = ctx.lead_times();
        for lead in leads.iter().copied().chain([ctx.first_lead_time()]) {
            let remind_at = exp - lead.duration();
            if remind_at > now {
                at(remind_at);
            }
        }
    }
    let mut ahead_at = None;
    if grant::renewable(t)
        && let Some(timing) = refresh_timing(ctx, t, h, now)
    {
        let not_before = |x: Timestamp| h.next_attempt_at.map_or(x, |n| x.max(n));
        at(not_before(timing.health_at));
        let ahead = not_before(timing.ahead_at);
        if timing.read_recently {
            at(ahead);
        }
        ahead_at = Some(ahead);
    }
    TokenSchedule {
        next_check_at: next,
        ahead_at,
    }
}

/// Whether [`token_pass`] stored the token's next check itself.
enum Scheduled {
    No,
    WithRefresh,
}

async fn token_pass(
    ctx: &AppContext,
    t: &TokenRecord,
    h: &TokenHealth,
    check_seq: i64,
    now: Timestamp,
    report: &mut PassReport,
) -> Result<Scheduled, StoreError> {
    let usable = is_usable(t);
    // 1. What expires on the token (its refresh token, its client secret): reminders, then
    // "expired".
    if usable {
        for (what, exp) in expiries(t) {
            if now >= exp {
                expire(ctx, t, exp, what, now, report).await?;
                return Ok(Scheduled::No);
            }
        }
        for (what, exp) in expiries(t) {
            remind(ctx, t, exp, what, now, report).await?;
        }
        if t.status == TokenStatus::Healthy
            && let (TokenStatus::ExpiringSoon, reason) =
                grant::refresh::expiry_status(t, now, ctx.first_lead_time())
        {
            set_status(ctx, t, TokenStatus::ExpiringSoon, reason).await?;
        }
    }
    if !usable || !grant::renewable(t) {
        return Ok(Scheduled::No);
    }
    // 2. Refresh ahead of time (tokens read recently), or as a daily health check (idle ones).
    if h.next_attempt_at.is_some_and(|n| n > now) {
        return Ok(Scheduled::No);
    }
    let Some(timing) = refresh_timing(ctx, t, h, now) else {
        return Ok(Scheduled::No);
    };
    let ahead = timing.read_recently && now >= timing.ahead_at;
    let health_check = now >= timing.health_at;
    if ahead || health_check {
        let wanted = if ahead {
            now + refresh_margin(timing.lifetime)
        } else {
            now + chrono::Duration::days(3650)
        };
        let next = |t: &TokenRecord, h: &TokenHealth| schedule(ctx, t, h, now);
        let after = grant::refresh::AfterRefresh {
            check_seq,
            schedule: &next,
        };
        match grant::refresh::refresh_then(ctx, t.id, wanted, Some(after)).await {
            Ok(r) => {
                report.refreshed += 1;
                if r.wrote {
                    return Ok(Scheduled::WithRefresh);
                }
            }
            Err(RefreshError::Busy) => {}
            Err(e) => {
                report.refresh_failures += 1;
                tracing::info!(token = %t.name, error = %e, "background refresh failed");
            }
        }
    }
    Ok(Scheduled::No)
}

/// What expires on a token, each with its own reminders and its own "expired".
pub use tokenwarden_domain::Expiring;

/// The expiries of a token, the refresh token's first.
fn expiries(t: &TokenRecord) -> impl Iterator<Item = (Expiring, Timestamp)> {
    Expiring::ALL
        .iter()
        .filter_map(|w| t.expires_at(*w).map(|e| (*w, e)))
}

async fn remind(
    ctx: &AppContext,
    t: &TokenRecord,
    exp: Timestamp,
    what: Expiring,
    now: Timestamp,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    let leads = &ctx.lead_times();
    // Every lead time already reached is recorded; only the nearest one is announced, so a
    // service that was down for a week sends one reminder, not three.
    let mut reached: Vec<LeadTime> = leads
        .iter()
        .copied()
        .filter(|l| now >= exp - l.duration())
        .collect();
    reached.sort();
    let mut newly = Vec::new();
    for lead in &reached {
        if ctx
            .store
            .record_reminder(t.id, exp, &what.reminder_key(&lead.to_string()), now)
            .await?
        {
            newly.push(*lead);
        }
    }
    if let Some(nearest) = reached.first()
        && newly.contains(nearest)
    {
        let left = exp - now;
        let apps = lifecycle::dependants(ctx, t).await?;
        let mut data = lifecycle::token_data(t, None);
        data["lead"] = serde_json::Value::String(nearest.to_string());
        data["expiring"] = serde_json::Value::String(what.as_str().to_owned());
        data["apps"] =
            serde_json::json!(apps.iter().map(|a| a.name.to_string()).collect::<Vec<_>>());
        let days = left.num_hours() as f64 / 24.0;
        let summary = format!(
            "The {} of {} expires on {} (in {:.1} days); {} before then or {} will stop.",
            what.what(),
            t.name,
            exp.format("%Y-%m-%d %H:%M UTC"),
            days,
            match what {
                Expiring::RefreshToken => "re-authorize it",
                Expiring::ClientSecret =>
                    "create a new secret at the provider and store it here (with its new expiry)",
            },
            if apps.is_empty() {
                "apps using it".to_owned()
            } else {
                apps.iter()
                    .map(|a| a.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        lifecycle::emit(
            ctx,
            lifecycle::new_event(
                ctx,
                crate::ops::lifecycle::EventKind::TokenExpiring,
                summary,
                data,
                apps.iter().map(|a| a.id.to_string()).collect(),
            ),
        )
        .await;
        report.reminders_sent += 1;
    }
    Ok(())
}

async fn expire(
    ctx: &AppContext,
    t: &TokenRecord,
    exp: Timestamp,
    what: Expiring,
    now: Timestamp,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    if !ctx
        .store
        .record_reminder(t.id, exp, &what.reminder_key("expired"), now)
        .await?
    {
        return Ok(()); // another instance handles it
    }
    let reason = format!(
        "the {} expired at {}",
        what.what(),
        exp.format("%Y-%m-%d %H:%M UTC")
    );
    if let Some(stored) = set_status(ctx, t, TokenStatus::Expired, Some(reason.clone())).await? {
        lifecycle::token_died(
            ctx,
            &stored,
            crate::ops::lifecycle::EventKind::TokenExpired,
            &reason,
        )
        .await;
        report.expired += 1;
    }
    Ok(())
}

/// Writes a new status under the version check; `None` if the row changed meanwhile (its news
/// wins and the next pass looks again).
async fn set_status(
    ctx: &AppContext,
    t: &TokenRecord,
    status: TokenStatus,
    reason: Option<String>,
) -> Result<Option<TokenRecord>, StoreError> {
    let mut next = t.clone();
    next.status = status;
    next.status_reason = reason;
    match ctx.store.update_token(&next, ctx.clock.now()).await {
        Ok(stored) => {
            ctx.cache.forget_token(stored.id);
            crate::ops::audit::record(
                ctx,
                "system",
                Action::TokenStatus,
                crate::ops::audit::Object::new("token", stored.id, &stored.name),
                Outcome::Ok,
                serde_json::json!({"from": t.status, "to": stored.status, "reason": stored.status_reason}),
            )
            .await;
            Ok(Some(stored))
        }
        Err(StoreError::VersionMismatch(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the in-memory read counters to the database and to the audit log, aggregated.
/// Writes the denial counts of the minutes that are over (all with `now` = `None`): one audit
/// row per minute, route, credential kind and reason, with the count.
pub async fn flush_denials(ctx: &AppContext, now: Option<Timestamp>) {
    for ((minute, route, credential, reason), (count, last)) in ctx.denials.drain(now) {
        crate::ops::audit::record(
            ctx,
            "anonymous",
            Action::AuthDenied,
            crate::ops::audit::Object {
                kind: "route",
                id: None,
                name: Some(route),
            },
            Outcome::Denied,
            serde_json::json!({
                "reason": reason,
                "credential": credential,
                "count": count,
                "minute": tokenwarden_domain::Rfc3339(tokenwarden_domain::clock::from_millis(minute * 60_000)),
                "last_at": tokenwarden_domain::Rfc3339(last),
            }),
        )
        .await;
    }
}

/// Audit records deleted per batch, and batches per pass at most: the work of one pass is
/// bounded by what is due, never the size of the table; a backlog goes over several passes.
const PRUNE_BATCH: i64 = 1_000;
const PRUNE_BATCHES_PER_PASS: usize = 20;

/// Deletes audit records older than the retention (`audit_retention`), in bounded batches.
pub async fn prune_audit(ctx: &AppContext, now: Timestamp) -> u64 {
    let before = now - ctx.settings.audit_retention;
    let mut pruned = 0;
    for _ in 0..PRUNE_BATCHES_PER_PASS {
        match ctx.store.prune_audit(before, PRUNE_BATCH).await {
            Ok(n) => {
                pruned += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prune the audit log");
                break;
            }
        }
    }
    pruned
}

pub async fn flush_reads(ctx: &AppContext) {
    // The audit rows name the token like every other row (looked up once per token here, in
    // the background, never on the read path).
    let mut names: std::collections::HashMap<tokenwarden_domain::TokenId, Option<String>> =
        std::collections::HashMap::new();
    for ((token_id, actor), (count, last)) in ctx.reads.drain() {
        if let Err(e) = ctx.store.add_token_reads(token_id, count, last).await {
            tracing::warn!(error = %e, "could not flush read counts");
            continue;
        }
        let name = match names.get(&token_id) {
            Some(n) => n.clone(),
            None => {
                let n = ctx
                    .store
                    .get_token(token_id)
                    .await
                    .ok()
                    .map(|t| t.name.to_string());
                names.insert(token_id, n.clone());
                n
            }
        };
        crate::ops::audit::record(
            ctx,
            &actor,
            Action::TokenRead,
            crate::ops::audit::Object {
                kind: "token",
                id: Some(token_id.to_string()),
                name,
            },
            Outcome::Ok,
            serde_json::json!({"reads": count, "last_read_at": tokenwarden_domain::Rfc3339(last)}),
        )
        .await;
    }
}
