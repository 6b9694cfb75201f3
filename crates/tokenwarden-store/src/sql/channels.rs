//! Notification channels, the durable jobs that deliver to them (and refresh tokens), and the
//! delivery log.

use super::{
    ms, opt_ms, opt_ts, parse_json, parse_opt_app_id, sealed, sealed_bytes, time_after, ts,
};
use crate::records::*;
use crate::{Result, StoreError};
use sqlx::AnyPool;
use tokenwarden_domain::Timestamp;

// --- channels -------------------------------------------------------------------------------

macro_rules! channel_columns {
    () => {
        "id, app_id, kind, name, config, secret, enabled, created_at, updated_at, version"
    };
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    id: String,
    app_id: Option<String>,
    kind: String,
    name: String,
    config: String,
    secret: Option<Vec<u8>>,
    /// 0 or 1: the portable schema has no BOOLEAN (sqlx `Any` cannot read one on SQLite).
    enabled: i64,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl TryFrom<ChannelRow> for ChannelRecord {
    type Error = StoreError;

    fn try_from(r: ChannelRow) -> Result<Self> {
        Ok(ChannelRecord {
            id: r.id,
            app_id: parse_opt_app_id("notification_channels.app_id", r.app_id)?,
            kind: r.kind,
            name: r.name,
            config: parse_json("notification_channels.config", &r.config)?,
            secret: sealed(r.secret),
            enabled: r.enabled != 0,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            version: r.version,
        })
    }
}

pub(super) async fn create(pool: &AnyPool, c: &ChannelRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO notification_channels (",
        channel_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&c.id)
    .bind(c.app_id.map(|a| a.to_string()))
    .bind(&c.kind)
    .bind(&c.name)
    .bind(c.config.to_string())
    .bind(sealed_bytes(&c.secret))
    .bind(i64::from(c.enabled))
    .bind(ms(c.created_at))
    .bind(ms(c.updated_at))
    .bind(c.version)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get(pool: &AnyPool, id: &str) -> Result<ChannelRecord> {
    sqlx::query_as::<_, ChannelRow>(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM notification_channels WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("notification channel"))?
    .try_into()
}

/// Keyset page by (created_at, id).
pub(super) async fn page(
    pool: &AnyPool,
    page: &PageRequest<TimeKey>,
) -> Result<Vec<ChannelRecord>> {
    let (at, id, limit) = time_after(page, false);
    sqlx::query_as::<_, ChannelRow>(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM notification_channels WHERE created_at > $1 OR (created_at = $1 AND id > $2) \
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

pub(super) async fn list(pool: &AnyPool) -> Result<Vec<ChannelRecord>> {
    sqlx::query_as::<_, ChannelRow>(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM notification_channels ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Writes the channel over the version it was read at (`c.version`) and answers it as stored
/// (version + 1); `VersionMismatch` when someone wrote in between, `NotFound` when it is gone.
pub(super) async fn update(pool: &AnyPool, c: &ChannelRecord) -> Result<ChannelRecord> {
    let done = sqlx::query(
        "UPDATE notification_channels SET app_id = $1, kind = $2, name = $3, config = $4, \
         secret = $5, enabled = $6, updated_at = $7, version = $8 WHERE id = $9 AND version = $10",
    )
    .bind(c.app_id.map(|a| a.to_string()))
    .bind(&c.kind)
    .bind(&c.name)
    .bind(c.config.to_string())
    .bind(sealed_bytes(&c.secret))
    .bind(i64::from(c.enabled))
    .bind(ms(c.updated_at))
    .bind(c.version + 1)
    .bind(&c.id)
    .bind(c.version)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        get(pool, &c.id).await?; // NotFound if it is gone
        return Err(StoreError::VersionMismatch("notification channel"));
    }
    get(pool, &c.id).await
}

pub(super) async fn delete(pool: &AnyPool, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("notification channel"));
    }
    Ok(())
}

// --- jobs -----------------------------------------------------------------------------------

macro_rules! job_columns {
    () => {
        "id, kind, dedupe_key, payload, run_at, attempts, lease_owner, lease_expires_at, \
         last_error, done_at, created_at"
    };
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    dedupe_key: Option<String>,
    payload: String,
    run_at: i64,
    attempts: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    done_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self> {
        Ok(JobRecord {
            id: r.id,
            kind: r.kind,
            dedupe_key: r.dedupe_key,
            payload: parse_json("jobs.payload", &r.payload)?,
            run_at: ts(r.run_at),
            attempts: r.attempts,
            lease_owner: r.lease_owner,
            lease_expires_at: opt_ts(r.lease_expires_at),
            last_error: r.last_error,
            done_at: opt_ts(r.done_at),
            created_at: ts(r.created_at),
        })
    }
}

pub(super) async fn enqueue_job(pool: &AnyPool, j: &JobRecord) -> Result<bool> {
    // A `dedupe_key` held by a job not yet done makes this insert a no-op.
    let done = sqlx::query(concat!(
        "INSERT INTO jobs (",
        job_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
    ))
    .bind(&j.id)
    .bind(&j.kind)
    .bind(j.dedupe_key.clone())
    .bind(j.payload.to_string())
    .bind(ms(j.run_at))
    .bind(j.attempts)
    .bind(j.lease_owner.clone())
    .bind(opt_ms(j.lease_expires_at))
    .bind(j.last_error.clone())
    .bind(opt_ms(j.done_at))
    .bind(ms(j.created_at))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn claim_jobs(
    pool: &AnyPool,
    kind: &str,
    owner: &str,
    now: Timestamp,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<JobRecord>> {
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE kind = $1 AND done_at IS NULL AND run_at <= $2 \
         AND (lease_expires_at IS NULL OR lease_expires_at <= $2) ORDER BY run_at, id LIMIT $3",
    )
    .bind(kind)
    .bind(ms(now))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::new();
    for id in candidates {
        // Compare-and-set: of several instances racing for a job, one wins it.
        let row = sqlx::query_as::<_, JobRow>(concat!(
            "UPDATE jobs SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id = $3 AND done_at IS NULL \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $4) RETURNING ",
            job_columns!()
        ))
        .bind(owner)
        .bind(ms(now + lease))
        .bind(&id)
        .bind(ms(now))
        .fetch_optional(pool)
        .await?;
        if let Some(row) = row {
            claimed.push(row.try_into()?);
        }
    }
    Ok(claimed)
}

pub(super) async fn complete_job(
    pool: &AnyPool,
    id: &str,
    owner: &str,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET done_at = $1, dedupe_key = NULL, lease_owner = NULL, \
         lease_expires_at = NULL, last_error = NULL \
         WHERE id = $2 AND lease_owner = $3 AND done_at IS NULL",
    )
    .bind(ms(now))
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn retry_job(
    pool: &AnyPool,
    id: &str,
    owner: &str,
    run_at: Timestamp,
    error: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, last_error = $2, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $3 AND lease_owner = $4 AND done_at IS NULL",
    )
    .bind(ms(run_at))
    .bind(error)
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn abandon_job(
    pool: &AnyPool,
    id: &str,
    owner: &str,
    now: Timestamp,
    error: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET done_at = $1, last_error = $2, dedupe_key = NULL, lease_owner = NULL, \
         lease_expires_at = NULL WHERE id = $3 AND lease_owner = $4 AND done_at IS NULL",
    )
    .bind(ms(now))
    .bind(error)
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn list_jobs(
    pool: &AnyPool,
    kind: &str,
    include_done: bool,
    limit: i64,
) -> Result<Vec<JobRecord>> {
    sqlx::query_as::<_, JobRow>(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE kind = $1 AND ($2 = 1 OR done_at IS NULL) \
         ORDER BY created_at DESC, id LIMIT $3"
    ))
    .bind(kind)
    .bind(i64::from(include_done))
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

// --- delivery log ---------------------------------------------------------------------------

macro_rules! delivery_columns {
    () => {
        "id, job_id, channel_id, event_id, event_kind, attempt, at, outcome, status_code, error"
    };
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    job_id: String,
    channel_id: String,
    event_id: String,
    event_kind: String,
    attempt: i64,
    at: i64,
    outcome: String,
    status_code: Option<i64>,
    error: Option<String>,
}

impl From<DeliveryRow> for DeliveryRecord {
    fn from(r: DeliveryRow) -> Self {
        DeliveryRecord {
            id: r.id,
            job_id: r.job_id,
            channel_id: r.channel_id,
            event_id: r.event_id,
            event_kind: r.event_kind,
            attempt: r.attempt,
            at: ts(r.at),
            outcome: r.outcome,
            status_code: r.status_code,
            error: r.error,
        }
    }
}

pub(super) async fn append_delivery(pool: &AnyPool, d: &DeliveryRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO deliveries (",
        delivery_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&d.id)
    .bind(&d.job_id)
    .bind(&d.channel_id)
    .bind(&d.event_id)
    .bind(&d.event_kind)
    .bind(d.attempt)
    .bind(ms(d.at))
    .bind(&d.outcome)
    .bind(d.status_code)
    .bind(d.error.clone())
    .execute(pool)
    .await?;
    Ok(())
}

/// Newest first; all channels when `channel_id` is `None`.
pub(super) async fn list_deliveries(
    pool: &AnyPool,
    channel_id: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>> {
    Ok(sqlx::query_as::<_, DeliveryRow>(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE ($1 = '' OR channel_id = $1) ORDER BY at DESC, id DESC LIMIT $2"
    ))
    .bind(channel_id.unwrap_or_default())
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Into::into)
    .collect())
}

/// Keyset page of one channel's log, newest first: rows before (at, id).
pub(super) async fn page_deliveries(
    pool: &AnyPool,
    channel_id: &str,
    page: &PageRequest<TimeKey>,
) -> Result<Vec<DeliveryRecord>> {
    let (at, id, limit) = time_after(page, true);
    Ok(sqlx::query_as::<_, DeliveryRow>(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE channel_id = $1 AND (at < $2 OR (at = $2 AND id < $3)) \
         ORDER BY at DESC, id DESC LIMIT $4"
    ))
    .bind(channel_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Into::into)
    .collect())
}
