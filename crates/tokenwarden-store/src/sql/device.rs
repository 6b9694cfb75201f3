//! Device sign-ins (RFC 8628, `device_flows`): one row per token, polled by the background
//! pass through the `next_poll_at` index.

use super::{ms, opt_ms, opt_ts, parse, parse_id, sealed, sealed_bytes, ts};
use crate::Result;
use crate::records::*;
use sqlx::AnyPool;
use tokenwarden_domain::{DeviceFlowStatus, Timestamp, TokenId};

macro_rules! flow_columns {
    () => {
        "id, token_id, device_code, user_code, verification_uri, verification_uri_complete, \
         interval_secs, status, error, started_by, created_at, expires_at, next_poll_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct FlowRow {
    id: String,
    token_id: String,
    device_code: Option<Vec<u8>>,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    interval_secs: i64,
    status: String,
    error: Option<String>,
    started_by: String,
    created_at: i64,
    expires_at: i64,
    next_poll_at: Option<i64>,
    updated_at: i64,
}

impl TryFrom<FlowRow> for DeviceFlowRecord {
    type Error = crate::StoreError;

    fn try_from(r: FlowRow) -> Result<Self> {
        Ok(DeviceFlowRecord {
            id: r.id,
            token_id: parse_id("device_flows.token_id", &r.token_id, TokenId::parse)?,
            device_code: sealed(r.device_code),
            user_code: r.user_code,
            verification_uri: r.verification_uri,
            verification_uri_complete: r.verification_uri_complete,
            interval_secs: r.interval_secs,
            status: parse("device_flows.status", DeviceFlowStatus::parse(&r.status))?,
            error: r.error,
            started_by: r.started_by,
            created_at: ts(r.created_at),
            expires_at: ts(r.expires_at),
            next_poll_at: opt_ts(r.next_poll_at),
            updated_at: ts(r.updated_at),
        })
    }
}

pub(super) async fn start(pool: &AnyPool, f: &DeviceFlowRecord) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM device_flows WHERE token_id = $1")
        .bind(f.token_id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(concat!(
        "INSERT INTO device_flows (",
        flow_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&f.id)
    .bind(f.token_id.to_string())
    .bind(sealed_bytes(&f.device_code))
    .bind(&f.user_code)
    .bind(&f.verification_uri)
    .bind(f.verification_uri_complete.clone())
    .bind(f.interval_secs)
    .bind(f.status.as_str())
    .bind(f.error.clone())
    .bind(&f.started_by)
    .bind(ms(f.created_at))
    .bind(ms(f.expires_at))
    .bind(opt_ms(f.next_poll_at))
    .bind(ms(f.updated_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(pool: &AnyPool, token_id: TokenId) -> Result<Option<DeviceFlowRecord>> {
    sqlx::query_as::<_, FlowRow>(concat!(
        "SELECT ",
        flow_columns!(),
        " FROM device_flows WHERE token_id = $1"
    ))
    .bind(token_id.to_string())
    .fetch_optional(pool)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

pub(super) async fn due(
    pool: &AnyPool,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<DeviceFlowRecord>> {
    sqlx::query_as::<_, FlowRow>(concat!(
        "SELECT ",
        flow_columns!(),
        " FROM device_flows WHERE next_poll_at <= $1 ORDER BY next_poll_at, id LIMIT $2"
    ))
    .bind(ms(now))
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

pub(super) async fn update(pool: &AnyPool, f: &DeviceFlowRecord) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE device_flows SET device_code = $1, interval_secs = $2, status = $3, error = $4, \
         next_poll_at = $5, updated_at = $6 WHERE id = $7 AND status = $8",
    )
    .bind(sealed_bytes(&f.device_code))
    .bind(f.interval_secs)
    .bind(f.status.as_str())
    .bind(f.error.clone())
    .bind(opt_ms(f.next_poll_at))
    .bind(ms(f.updated_at))
    .bind(&f.id)
    .bind(DeviceFlowStatus::Pending.as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
