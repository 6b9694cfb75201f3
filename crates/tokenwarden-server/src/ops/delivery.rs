//! Delivering queued notifications: claim due `deliver` jobs under a lease, send each to its
//! channel (signed webhook or email), log the attempt, and retry with backoff or give up.

use crate::AppContext;
use crate::ops::audit::{Action, Outcome};
use crate::ops::engine::PassReport;
use crate::ops::lifecycle::Event;
use crate::ops::metrics::DeliveryResult;
use tokenwarden_domain::Timestamp;
use tokenwarden_notify::{DeliveryOutcome, WebhookTarget, Webhooks};
use tokenwarden_store::SealedColumn;
use tokenwarden_store::{ChannelRecord, DeliveryRecord, JobRecord};

/// The senders. Email is available only when SMTP is configured.
#[derive(Clone)]
pub struct Notifier {
    pub webhooks: Webhooks,
    /// Reloadable (SIGHUP): see [`crate::life::MailerSlot`].
    pub mailer: crate::life::MailerSlot,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("email", &self.mailer.is_some())
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            webhooks: Webhooks::new(std::time::Duration::from_secs(10)),
            mailer: crate::life::MailerSlot::default(),
        }
    }
}

const CLAIM_LEASE_SECONDS: i64 = 120;

pub async fn deliver_due(ctx: &AppContext, now: Timestamp, report: &mut PassReport) {
    let jobs = match ctx
        .store
        .claim_jobs(
            "deliver",
            &ctx.instance_id,
            now,
            chrono::Duration::seconds(CLAIM_LEASE_SECONDS),
            25,
        )
        .await
    {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim deliveries");
            return;
        }
    };
    // Deliveries run side by side, so one slow receiver does not hold up the others.
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let ctx = ctx.clone();
        set.spawn(async move { deliver_one(&ctx, job, now).await });
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok(true) => report.delivered += 1,
            Ok(false) => report.delivery_retries += 1,
            Err(e) => tracing::error!(error = %e, "a delivery task failed"),
        }
    }
}

fn to_notify(e: &Event) -> tokenwarden_notify::Event {
    tokenwarden_notify::Event {
        id: e.id.clone(),
        kind: e.kind.clone(),
        at: e.at,
        summary: e.summary.clone(),
        data: e.data.clone(),
    }
}

/// Sends one event to one channel now (also used by "test send").
pub async fn send(
    ctx: &AppContext,
    ch: &ChannelRecord,
    event: &Event,
    now: Timestamp,
) -> DeliveryOutcome {
    match ch.kind.as_str() {
        "webhook" => {
            let Some(url) = ch.config["url"].as_str() else {
                return DeliveryOutcome::Failed {
                    reason: "the channel has no url".into(),
                    status: None,
                };
            };
            let Some(sealed) = &ch.secret else {
                return DeliveryOutcome::Failed {
                    reason: "the channel has no signing secret".into(),
                    status: None,
                };
            };
            let secret = match ctx
                .vault
                .open_secret(sealed, SealedColumn::ChannelSecret, &ch.id)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    return DeliveryOutcome::Failed {
                        reason: format!("the signing secret cannot be decrypted: {e}"),
                        status: None,
                    };
                }
            };
            let target = WebhookTarget {
                url: url.to_owned(),
                secret,
            };
            ctx.notifier
                .webhooks
                .deliver(&target, &to_notify(event), now.timestamp())
                .await
        }
        "email" => {
            let Some(mailer) = ctx.notifier.mailer.get() else {
                return DeliveryOutcome::Retry {
                    reason: "email is not configured (set [smtp] in the config)".into(),
                    status: None,
                };
            };
            let to: Vec<String> = ch.config["to"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            mailer.send(&to, &to_notify(event)).await
        }
        other => DeliveryOutcome::Failed {
            reason: format!("unknown channel kind {other:?}"),
            status: None,
        },
    }
}

/// Returns true when delivered (or given up for good), false when it will be retried.
async fn deliver_one(ctx: &AppContext, job: JobRecord, now: Timestamp) -> bool {
    let owner = ctx.instance_id.as_str();
    let channel_id = job.payload["channel_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let event: Event = match serde_json::from_value(job.payload["event"].clone()) {
        Ok(e) => e,
        Err(e) => {
            let _ = ctx
                .store
                .abandon_job(&job.id, owner, now, &format!("unreadable event: {e}"))
                .await;
            return true;
        }
    };
    let channel = match ctx.store.get_channel(&channel_id).await {
        Ok(c) if c.enabled => c,
        Ok(_) | Err(_) => {
            let _ = ctx
                .store
                .abandon_job(&job.id, owner, now, "the channel was deleted or disabled")
                .await;
            return true;
        }
    };
    let outcome = send(ctx, &channel, &event, now).await;
    let (label, status, error) = match &outcome {
        DeliveryOutcome::Delivered { status } => ("delivered", Some(i64::from(*status)), None),
        DeliveryOutcome::Retry { reason, status } => {
            ("retry", status.map(i64::from), Some(reason.clone()))
        }
        DeliveryOutcome::Failed { reason, status } => {
            ("failed", status.map(i64::from), Some(reason.clone()))
        }
    };
    let attempt = u32::try_from(job.attempts).unwrap_or(u32::MAX);
    let gives_up = matches!(outcome, DeliveryOutcome::Retry { .. })
        && attempt >= tokenwarden_notify::MAX_ATTEMPTS;
    let log = DeliveryRecord {
        id: uuid::Uuid::new_v4().to_string(),
        job_id: job.id.clone(),
        channel_id: channel.id.clone(),
        event_id: event.id.clone(),
        event_kind: event.kind.clone(),
        attempt: job.attempts,
        at: now,
        outcome: if gives_up {
            "failed".into()
        } else {
            label.into()
        },
        status_code: status,
        error: error.clone(),
    };
    ctx.metrics.delivery(match &outcome {
        DeliveryOutcome::Delivered { .. } => DeliveryResult::Delivered,
        DeliveryOutcome::Retry { .. } if !gives_up => DeliveryResult::Retry,
        DeliveryOutcome::Retry { .. } | DeliveryOutcome::Failed { .. } => DeliveryResult::Failed,
    });
    if let Err(e) = ctx.store.append_delivery(&log).await {
        tracing::warn!(error = %e, "could not write the delivery log");
    }
    match outcome {
        DeliveryOutcome::Delivered { .. } => {
            let _ = ctx.store.complete_job(&job.id, owner, now).await;
            true
        }
        DeliveryOutcome::Retry { reason, .. } if !gives_up => {
            let jitter = f64::from(tokenwarden_crypto::random_bytes::<1>()[0]) / 256.0;
            let at = now + tokenwarden_notify::retry_delay(attempt, jitter);
            let _ = ctx.store.retry_job(&job.id, owner, at, &reason).await;
            false
        }
        DeliveryOutcome::Retry { reason, .. } | DeliveryOutcome::Failed { reason, .. } => {
            tracing::warn!(channel = %channel.name, event = %event.kind, reason = %reason, "notification given up");
            let _ = ctx.store.abandon_job(&job.id, owner, now, &reason).await;
            true
        }
    }
}

/// What a test send did.
pub struct TestSend {
    pub ok: bool,
    /// `delivered`, `retry` or `failed`.
    pub outcome: &'static str,
    pub status: Option<u16>,
    pub message: String,
}

/// Sends a test event to a channel now (the test-send button); audited.
pub async fn test_send(ctx: &AppContext, ch: &ChannelRecord, actor: &str) -> TestSend {
    let event = crate::ops::lifecycle::new_event(
        ctx,
        crate::ops::lifecycle::EventKind::Test,
        format!("Test notification from tokenwarden to channel {}.", ch.name),
        serde_json::json!({"channel": ch.name}),
        vec![],
    );
    let now = ctx.clock.now();
    let result = match send(ctx, ch, &event, now).await {
        DeliveryOutcome::Delivered { status } => TestSend {
            ok: true,
            outcome: "delivered",
            status: Some(status),
            message: format!("delivered (HTTP {status})"),
        },
        DeliveryOutcome::Retry { reason, status } => TestSend {
            ok: false,
            outcome: "retry",
            status,
            message: format!("not delivered, would be retried: {reason}"),
        },
        DeliveryOutcome::Failed { reason, status } => TestSend {
            ok: false,
            outcome: "failed",
            status,
            message: format!("failed: {reason}"),
        },
    };
    // In the channel's delivery log too, beside the real deliveries (no job: it was sent now).
    let log = DeliveryRecord {
        id: uuid::Uuid::new_v4().to_string(),
        job_id: "test-send".into(),
        channel_id: ch.id.clone(),
        event_id: event.id.clone(),
        event_kind: event.kind.clone(),
        attempt: 1,
        at: now,
        outcome: result.outcome.into(),
        status_code: result.status.map(i64::from),
        error: (!result.ok).then(|| result.message.clone()),
    };
    if let Err(e) = ctx.store.append_delivery(&log).await {
        tracing::warn!(error = %e, "could not write the delivery log");
    }
    crate::ops::audit::record(
        ctx,
        actor,
        Action::ChannelTest,
        crate::ops::audit::Object::new("channel", &ch.id, &ch.name),
        if result.ok {
            Outcome::Ok
        } else {
            Outcome::Failed
        },
        serde_json::json!({"message": result.message}),
    )
    .await;
    result
}

/// Email recipients of a channel: at least one, each a plain address.
pub fn check_recipients(to: &[String]) -> Result<(), String> {
    if to.is_empty() {
        return Err("an email channel needs at least one address".into());
    }
    for a in to {
        let ok = a.len() <= 254
            && a.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty()
                    && d.contains('.')
                    && !a.contains(char::is_whitespace)
                    && !a.contains(['<', '>', ','])
            });
        if !ok {
            return Err(format!("{a:?} is not an email address"));
        }
    }
    Ok(())
}
