//! The device authorization grant (RFC 8628): sign-in with a code on another device, for
//! providers that offer it (Microsoft, GitHub, Google, a generic server with
//! `device_authorization_url`).
//!
//! [`start`] asks the provider for a device code and a user code and stores the flow (the
//! device code sealed, [`SealedColumn::DeviceFlowCode`]); the person opens the verification
//! URI anywhere and types the user code. The flow is then polled by the **background pass**
//! ([`poll_due`], from `engine::run_due_once`) at the provider's interval, through the
//! `next_poll_at` index: only the flows due are read, never the tokens. Why the pass and not a
//! task in the instance that started it: a flow started by the CLI (`token device-start
//! --no-wait`) or by an instance that restarts must still finish, any instance may poll it (one
//! at a time, under the flow's lease), and a test drives it with `run_due_once` on a manual
//! clock. The cost: a poll happens up to one pass interval (5 s) after it is due, never before
//! (RFC 8628 only forbids polling faster). A CLI that waits polls the same way itself
//! ([`poll_flow`], same lease), so it needs no running service.
//!
//! A successful poll ends exactly as an authorization-code callback does
//! ([`super::authorize::signed_in`]: the tokens stored, the apps resumed, `token.authorize`
//! audited). `access_denied`, `expired_token` and other refusals end the flow (`denied`,
//! `expired`, `failed`), audited as a failed `token.authorize`; the device code is cleared from
//! the row when the flow ends. The timing rules (interval, `slow_down` + 5 s, expiry) live in
//! `tokenwarden_oauth::device::PollSchedule`.

use super::{client_secrets, resolve};
use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result};
use tokenwarden_domain::{DeviceFlowStatus, Timestamp, TokenId};
use tokenwarden_oauth::client::{ClientCredentials, Grant, TokenError};
use tokenwarden_oauth::device::{Next, PollAnswer, PollSchedule};
use tokenwarden_store::{DeviceFlowRecord, SealedColumn, TokenRecord};

/// Flows polled per background pass at most (the rest are due at the next pass).
pub const DUE_PAGE: i64 = 64;
const LEASE_SECONDS: i64 = 30;

/// Where a token's device sign-in stands, as every adapter shows it.
#[derive(Debug, Clone)]
pub struct DeviceFlow {
    pub status: DeviceFlowStatus,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub started_at: Timestamp,
    pub expires_at: Timestamp,
    /// Seconds between polls (grown by the provider's `slow_down`).
    pub interval_secs: i64,
    /// Why it ended, unless it ended authorized.
    pub error: Option<String>,
}

impl DeviceFlow {
    /// The flow as of `now`: a pending flow whose code has expired is `expired` even before a
    /// pass has looked at it (no instance running, or none since).
    pub fn of(f: &DeviceFlowRecord, now: Timestamp) -> Self {
        let expired = f.status == DeviceFlowStatus::Pending && now >= f.expires_at;
        Self {
            status: if expired {
                DeviceFlowStatus::Expired
            } else {
                f.status
            },
            user_code: f.user_code.clone(),
            verification_uri: f.verification_uri.clone(),
            verification_uri_complete: f.verification_uri_complete.clone(),
            started_at: f.created_at,
            expires_at: f.expires_at,
            interval_secs: f.interval_secs,
            error: if expired {
                Some(expired_message())
            } else {
                f.error.clone()
            },
        }
    }

    /// Whether polling has stopped.
    pub fn is_done(&self) -> bool {
        self.status != DeviceFlowStatus::Pending
    }
}

fn expired_message() -> String {
    "the code expired before anyone approved it: start the device sign-in again".into()
}

/// Checks that the token can use the device grant and returns its provider.
fn device_provider(
    ctx: &AppContext,
    t: &TokenRecord,
) -> Result<tokenwarden_oauth::ResolvedProvider> {
    if t.grant != tokenwarden_domain::Grant::DeviceCode {
        return Err(Error::Invalid(format!(
            "token {} uses the grant {}: a device sign-in is for tokens created with the grant device_code",
            t.name, t.grant
        )));
    }
    let provider = resolve(ctx, t)?;
    if provider.device_authorization_url.is_none() {
        return Err(Error::Invalid(format!(
            "provider {} has no device authorization endpoint{}",
            t.provider,
            if t.provider.as_str() == "oauth2" {
                ": set the setting device_authorization_url"
            } else {
                ""
            }
        )));
    }
    Ok(provider)
}

/// Starts a device sign-in for the token: asks the provider for the codes, stores the flow
/// (replacing any earlier one of this token) and answers what the person needs: the user
/// code, the verification URI and until when.
pub async fn start(ctx: &AppContext, t: &TokenRecord, actor: &str) -> Result<DeviceFlow> {
    let provider = device_provider(ctx, t)?;
    let client_id = t
        .client_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Invalid("this token has no client_id yet: set it first".into()))?;
    let creds = ClientCredentials {
        client_id,
        secrets: client_secrets(ctx, t).await?,
    };
    let auth = match ctx.oauth.device_authorization(&provider, &creds).await {
        Ok(auth) => auth,
        Err(e) => {
            audit::record(
                ctx,
                actor,
                Action::TokenDeviceStart,
                Object::new("token", t.id, &t.name),
                Outcome::Failed,
                serde_json::json!({"error": e.to_string()}),
            )
            .await;
            return Err(match e {
                TokenError::Transient(m) => Error::ProviderUnavailable {
                    message: format!("the provider's device authorization endpoint: {m}"),
                    retry_after: 5,
                },
                refused => Error::Invalid(format!(
                    "the provider refused to start a device sign-in: {refused}"
                )),
            });
        }
    };
    let now = ctx.clock.now();
    let schedule = PollSchedule::new(now.timestamp(), &auth);
    let id = uuid::Uuid::new_v4().to_string();
    let record = DeviceFlowRecord {
        device_code: Some(
            ctx.vault
                .seal(&auth.device_code, SealedColumn::DeviceFlowCode, &id),
        ),
        id,
        token_id: t.id,
        user_code: auth.user_code,
        verification_uri: auth.verification_uri,
        verification_uri_complete: auth.verification_uri_complete,
        interval_secs: i64::try_from(schedule.interval).unwrap_or(i64::MAX),
        status: DeviceFlowStatus::Pending,
        error: None,
        started_by: actor.to_owned(),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(schedule.expires_at - now.timestamp()),
        next_poll_at: next_at(now, schedule.first_poll(now.timestamp())),
        updated_at: now,
    };
    ctx.store.start_device_flow(&record).await?;
    audit::record(
        ctx,
        actor,
        Action::TokenDeviceStart,
        Object::new("token", t.id, &t.name),
        Outcome::Ok,
        serde_json::json!({"provider": t.provider, "expires_at": tokenwarden_domain::Rfc3339(record.expires_at)}),
    )
    .await;
    Ok(DeviceFlow::of(&record, now))
}

fn next_at(now: Timestamp, next: Next) -> Option<Timestamp> {
    match next {
        Next::PollAt(at) => Some(now + chrono::Duration::seconds(at - now.timestamp())),
        Next::Stop => None,
    }
}

/// The token's device sign-in as of now, if one was started.
pub async fn status(ctx: &AppContext, token: TokenId) -> Result<Option<DeviceFlow>> {
    let now = ctx.clock.now();
    Ok(ctx
        .store
        .get_device_flow(token)
        .await?
        .map(|f| DeviceFlow::of(&f, now)))
}

/// The background pass's part: polls the flows due at `now` (one page, a few at once).
/// Answers how many were polled.
pub async fn poll_due(ctx: &AppContext, now: Timestamp) -> usize {
    let due = match ctx.store.due_device_flows(now, DUE_PAGE).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "device sign-ins not polled: database unavailable");
            return 0;
        }
    };
    let polled = due.len();
    let concurrency = ctx.settings.refresh_concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for flow in due {
        while tasks.len() >= concurrency {
            tasks.join_next().await;
        }
        let ctx = ctx.clone();
        tasks.spawn(async move {
            if let Err(e) = poll_flow(&ctx, flow.token_id).await {
                tracing::warn!(token = %flow.token_id, error = %e, "device sign-in poll failed");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    polled
}

/// Polls the token's device sign-in once if it is due (under the flow's lease: one poller at a
/// time across instances and the CLI) and answers where it stands afterwards.
pub async fn poll_flow(ctx: &AppContext, token: TokenId) -> Result<Option<DeviceFlow>> {
    let Some(flow) = ctx.store.get_device_flow(token).await? else {
        return Ok(None);
    };
    let now = ctx.clock.now();
    if flow.status != DeviceFlowStatus::Pending || flow.next_poll_at.is_some_and(|at| at > now) {
        return Ok(Some(DeviceFlow::of(&flow, now)));
    }
    let owner = format!("{}:{}", ctx.instance_id, uuid::Uuid::new_v4().simple());
    let Some(lease) = ctx
        .store
        .acquire_lease(
            &format!("device:{}", flow.id),
            &owner,
            chrono::Duration::seconds(LEASE_SECONDS),
            now,
        )
        .await?
    else {
        return Ok(Some(DeviceFlow::of(&flow, now))); // another poller has it
    };
    let result = poll_holding(ctx, token, &flow.id).await;
    let _ = ctx.store.release_lease(&lease).await;
    result
}

async fn poll_holding(
    ctx: &AppContext,
    token: TokenId,
    flow_id: &str,
) -> Result<Option<DeviceFlow>> {
    // Re-read under the lease: another poller may have polled or ended it meanwhile.
    let Some(mut flow) = ctx.store.get_device_flow(token).await? else {
        return Ok(None);
    };
    let now = ctx.clock.now();
    if flow.id != flow_id
        || flow.status != DeviceFlowStatus::Pending
        || flow.next_poll_at.is_some_and(|at| at > now)
    {
        return Ok(Some(DeviceFlow::of(&flow, now)));
    }
    let t = ctx
        .store
        .get_token(token)
        .await
        .map_err(Error::not_found_as(format!("token {token}")))?;
    let mut schedule = PollSchedule {
        interval: u64::try_from(flow.interval_secs).unwrap_or(1),
        expires_at: flow.expires_at.timestamp(),
    };
    if schedule.expired(now.timestamp()) {
        end(
            ctx,
            &t,
            &mut flow,
            DeviceFlowStatus::Expired,
            expired_message(),
        )
        .await?;
        return Ok(Some(DeviceFlow::of(&flow, now)));
    }
    let Some(sealed) = &flow.device_code else {
        end(
            ctx,
            &t,
            &mut flow,
            DeviceFlowStatus::Failed,
            "the device code is missing".into(),
        )
        .await?;
        return Ok(Some(DeviceFlow::of(&flow, now)));
    };
    let device_code = ctx
        .vault
        .open_secret(sealed, SealedColumn::DeviceFlowCode, &flow.id)
        .await
        .map_err(Error::internal)?;
    let answer = match device_provider(ctx, &t) {
        Ok(provider) => {
            let creds = ClientCredentials {
                client_id: t.client_id.as_deref().unwrap_or_default(),
                secrets: client_secrets(ctx, &t).await?,
            };
            let grant = Grant::DeviceCode {
                device_code: &device_code,
            };
            let answer = PollAnswer::from_result(ctx.oauth.token(&provider, &creds, &grant).await);
            if let PollAnswer::Tokens(resp) = &answer {
                let now = ctx.clock.now();
                match super::authorize::signed_in(ctx, &t, &provider, resp, &flow.started_by).await
                {
                    Ok(_) => {
                        flow.status = DeviceFlowStatus::Authorized;
                        flow.error = None;
                        close(&mut flow, now);
                        ctx.store.update_device_flow(&flow).await?;
                    }
                    Err(e) => {
                        let message = format!("the token could not be stored: {}", Error::from(e));
                        end(ctx, &t, &mut flow, DeviceFlowStatus::Failed, message).await?;
                    }
                }
                return Ok(Some(DeviceFlow::of(&flow, now)));
            }
            answer
        }
        Err(e) => PollAnswer::Failed(e.to_string()),
    };
    let now = ctx.clock.now();
    match &answer {
        PollAnswer::Denied(m) => {
            end(ctx, &t, &mut flow, DeviceFlowStatus::Denied, m.clone()).await?
        }
        PollAnswer::Expired(m) => {
            end(ctx, &t, &mut flow, DeviceFlowStatus::Expired, m.clone()).await?;
        }
        PollAnswer::Failed(m) => {
            end(ctx, &t, &mut flow, DeviceFlowStatus::Failed, m.clone()).await?
        }
        PollAnswer::Pending | PollAnswer::SlowDown | PollAnswer::Transient(_) => {
            if let PollAnswer::Transient(m) = &answer {
                tracing::info!(token = %t.id, error = %m, "device sign-in poll: provider unavailable, polling again");
            }
            match next_at(now, schedule.after(&answer, now.timestamp())) {
                Some(at) => {
                    flow.interval_secs = i64::try_from(schedule.interval).unwrap_or(i64::MAX);
                    flow.next_poll_at = Some(at);
                    flow.updated_at = now;
                    ctx.store.update_device_flow(&flow).await?;
                }
                None => {
                    end(
                        ctx,
                        &t,
                        &mut flow,
                        DeviceFlowStatus::Expired,
                        expired_message(),
                    )
                    .await?;
                }
            }
        }
        PollAnswer::Tokens(_) => {} // handled above
    }
    Ok(Some(DeviceFlow::of(&flow, now)))
}

/// The flow stops being polled: its device code is cleared from the row.
fn close(flow: &mut DeviceFlowRecord, now: Timestamp) {
    flow.device_code = None;
    flow.next_poll_at = None;
    flow.updated_at = now;
}

/// Ends a flow that did not authorize, with its reason, audited as a failed sign-in.
async fn end(
    ctx: &AppContext,
    t: &TokenRecord,
    flow: &mut DeviceFlowRecord,
    status: DeviceFlowStatus,
    message: String,
) -> Result<()> {
    let now = ctx.clock.now();
    flow.status = status;
    flow.error = Some(message.clone());
    close(flow, now);
    if ctx.store.update_device_flow(flow).await? {
        audit::record(
            ctx,
            &flow.started_by,
            Action::TokenAuthorize,
            Object::new("token", t.id, &t.name),
            Outcome::Failed,
            serde_json::json!({"grant": "device_code", "status": status, "error": message}),
        )
        .await;
    }
    Ok(())
}
