//! Admins who sign in to the web UI, and their sessions.

use super::{ms, name_after, opt_ms, opt_ts, ts};
use crate::records::*;
use crate::{Result, StoreError};
use sqlx::AnyPool;
use tokenwarden_domain::Timestamp;

// --- admins ---------------------------------------------------------------------------------

macro_rules! admin_columns {
    () => {
        "id, username, password_hash, created_at, last_login_at"
    };
}

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: String,
    username: String,
    password_hash: String,
    created_at: i64,
    last_login_at: Option<i64>,
}

impl From<AdminRow> for AdminRecord {
    fn from(r: AdminRow) -> Self {
        AdminRecord {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            created_at: ts(r.created_at),
            last_login_at: opt_ts(r.last_login_at),
        }
    }
}

pub(super) async fn create(pool: &AnyPool, a: &AdminRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO admins (",
        admin_columns!(),
        ") VALUES ($1, $2, $3, $4, $5)"
    ))
    .bind(&a.id)
    .bind(&a.username)
    .bind(&a.password_hash)
    .bind(ms(a.created_at))
    .bind(opt_ms(a.last_login_at))
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds `a` only while there is no admin at all; returns whether it was added.
pub(super) async fn create_first(pool: &AnyPool, a: &AdminRecord) -> Result<bool> {
    let mut tx = pool.begin().await?;
    // The unique key makes concurrent setups (even on several PostgreSQL instances)
    // serialise here: the second waits for the first and then finds the marker taken.
    let marked = sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('first_admin', $1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(&a.id)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() != 1 {
        return Ok(false);
    }
    let done = sqlx::query(concat!(
        "INSERT INTO admins (",
        admin_columns!(),
        ") SELECT $1, $2, $3, $4, NULL WHERE NOT EXISTS (SELECT 1 FROM admins)"
    ))
    .bind(&a.id)
    .bind(&a.username)
    .bind(&a.password_hash)
    .bind(ms(a.created_at))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn count(pool: &AnyPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admins")
        .fetch_one(pool)
        .await?)
}

pub(super) async fn get(pool: &AnyPool, id: &str) -> Result<AdminRecord> {
    sqlx::query_as::<_, AdminRow>(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admins WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .map(Into::into)
    .ok_or(StoreError::NotFound("admin"))
}

pub(super) async fn get_by_username(pool: &AnyPool, username: &str) -> Result<AdminRecord> {
    sqlx::query_as::<_, AdminRow>(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admins WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(pool)
    .await?
    .map(Into::into)
    .ok_or(StoreError::NotFound("admin"))
}

pub(super) async fn record_login(pool: &AnyPool, id: &str, at: Timestamp) -> Result<()> {
    let done = sqlx::query("UPDATE admins SET last_login_at = $1 WHERE id = $2")
        .bind(ms(at))
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    Ok(())
}

/// Keyset page of admins by username (unique).
pub(super) async fn page(pool: &AnyPool, page: &PageRequest<NameKey>) -> Result<Vec<AdminRecord>> {
    let (after, _, limit) = name_after(page);
    Ok(sqlx::query_as::<_, AdminRow>(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admins WHERE username > $1 ORDER BY username LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Into::into)
    .collect())
}

/// New password hash; every other session of the admin ends with it (one transaction).
pub(super) async fn set_password(
    pool: &AnyPool,
    id: &str,
    password_hash: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE admins SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    sqlx::query("DELETE FROM sessions WHERE admin_id = $1 AND id <> $2")
        .bind(id)
        .bind(keep_session.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes an admin unless they are the last. Every removal first writes the same `meta` row,
/// so removals serialise there (a row lock on PostgreSQL, the write lock on SQLite) and each
/// counts the admins the ones before it left.
pub(super) async fn delete(pool: &AnyPool, id: &str) -> Result<AdminRemoval> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('admins_removal', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admins WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if exists == 0 {
        return Err(StoreError::NotFound("admin"));
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admins")
        .fetch_one(&mut *tx)
        .await?;
    if count <= 1 {
        return Ok(AdminRemoval::LastAdmin);
    }
    sqlx::query("DELETE FROM sessions WHERE admin_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM admins WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(AdminRemoval::Removed)
}

// --- sessions -------------------------------------------------------------------------------

macro_rules! session_columns {
    () => {
        "id, admin_id, csrf_token, created_at, expires_at, last_seen_at"
    };
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    admin_id: String,
    csrf_token: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        SessionRecord {
            id: r.id,
            admin_id: r.admin_id,
            csrf_token: r.csrf_token,
            created_at: ts(r.created_at),
            expires_at: ts(r.expires_at),
            last_seen_at: ts(r.last_seen_at),
        }
    }
}

pub(super) async fn create_session(pool: &AnyPool, se: &SessionRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO sessions (",
        session_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&se.id)
    .bind(&se.admin_id)
    .bind(&se.csrf_token)
    .bind(ms(se.created_at))
    .bind(ms(se.expires_at))
    .bind(ms(se.last_seen_at))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get_session(pool: &AnyPool, id: &str) -> Result<SessionRecord> {
    sqlx::query_as::<_, SessionRow>(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .map(Into::into)
    .ok_or(StoreError::NotFound("session"))
}

pub(super) async fn touch_session(pool: &AnyPool, id: &str, at: Timestamp) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
        .bind(ms(at))
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn delete_session(pool: &AnyPool, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn purge_sessions(pool: &AnyPool, now: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(ms(now))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
