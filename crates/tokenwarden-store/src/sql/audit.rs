//! The audit log: append-only, read newest first.

use super::{ms, parse_json, time_after, ts};
use crate::records::{AuditEvent, AuditFilter, PageRequest, TimeKey};
use crate::{Result, StoreError};
use sqlx::AnyPool;
use tokenwarden_domain::Timestamp;

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    actor: String,
    action: String,
    object_type: String,
    object_id: Option<String>,
    object_name: Option<String>,
    outcome: String,
    detail: String,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self> {
        Ok(AuditEvent {
            id: r.id,
            at: ts(r.at),
            actor: r.actor,
            action: r.action,
            object_type: r.object_type,
            object_id: r.object_id,
            object_name: r.object_name,
            outcome: r.outcome,
            detail: parse_json("audit_events.detail", &r.detail)?,
        })
    }
}

pub(super) async fn append(pool: &AnyPool, e: &AuditEvent) -> Result<()> {
    let mut conn = pool.acquire().await?;
    insert(&mut conn, e).await
}

/// The columns of an audit record, in the order [`bind_audit!`] binds them.
macro_rules! audit_columns {
    () => {
        "id, at, actor, action, object_type, object_id, object_name, outcome, detail"
    };
}

/// Binds an audit record's nine values (`$q.bind(..)`, in [`audit_columns!`]'s order).
macro_rules! bind_audit {
    ($q:expr, $e:expr) => {{
        let e: &AuditEvent = $e;
        $q.bind(&e.id)
            .bind(super::ms(e.at))
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.object_type)
            .bind(e.object_id.clone())
            .bind(e.object_name.clone())
            .bind(&e.outcome)
            .bind(e.detail.to_string())
    }};
}

/// Appends `e` on a connection (or in a transaction).
pub(super) async fn insert(conn: &mut sqlx::AnyConnection, e: &AuditEvent) -> Result<()> {
    bind_audit!(
        sqlx::query(concat!(
            "INSERT INTO audit_events (",
            audit_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )),
        e
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Newest first; a filter field left `None` matches everything; `limit` defaults to 100 and is
/// capped at 1000.
pub(super) async fn list(pool: &AnyPool, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
    let limit = if f.limit <= 0 { 100 } else { f.limit.min(1000) };
    sqlx::query_as::<_, AuditRow>(
        "SELECT id, at, actor, action, object_type, object_id, object_name, outcome, detail \
         FROM audit_events \
         WHERE ($1 = '' OR object_id = $1) AND ($2 = '' OR action = $2) \
           AND ($3 = '' OR actor = $3) \
         ORDER BY at DESC, id DESC LIMIT $4",
    )
    .bind(f.object_id.clone().unwrap_or_default())
    .bind(f.action.clone().unwrap_or_default())
    .bind(f.actor.clone().unwrap_or_default())
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Keyset page, newest first: rows before (at, id) matching the filter.
pub(super) async fn page(
    pool: &AnyPool,
    f: &AuditFilter,
    page: &PageRequest<TimeKey>,
) -> Result<Vec<AuditEvent>> {
    let (at, id, limit) = time_after(page, true);
    sqlx::query_as::<_, AuditRow>(
        "SELECT id, at, actor, action, object_type, object_id, object_name, outcome, detail \
         FROM audit_events \
         WHERE ($1 = '' OR object_id = $1) AND ($2 = '' OR action = $2) \
           AND ($3 = '' OR actor = $3) AND (at < $4 OR (at = $4 AND id < $5)) \
         ORDER BY at DESC, id DESC LIMIT $6",
    )
    .bind(f.object_id.clone().unwrap_or_default())
    .bind(f.action.clone().unwrap_or_default())
    .bind(f.actor.clone().unwrap_or_default())
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Deletes at most `limit` of the oldest rows with `at < before` (by the time index: the work
/// is what is due, not the table's size).
pub(super) async fn prune(pool: &AnyPool, before: Timestamp, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
    )
    .bind(ms(before))
    .bind(limit.max(0))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
