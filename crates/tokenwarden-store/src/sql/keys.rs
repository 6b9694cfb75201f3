//! Data keys (wrapped by the master key, which never enters the database) and the sealed values
//! they encrypt, walked column by column for re-encryption.

use super::{ms, ts};
use crate::records::{Sealed, SealedColumn, SealedRef, StoredDataKey};
use crate::{Result, StoreError};
use sqlx::AnyPool;

// --- data keys ------------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct DataKeyRow {
    key_id: String,
    wrapped: Vec<u8>,
    /// 0 or 1 (no BOOLEAN in the portable schema).
    active: i64,
    created_at: i64,
}

impl From<DataKeyRow> for StoredDataKey {
    fn from(r: DataKeyRow) -> Self {
        StoredDataKey {
            key_id: r.key_id,
            wrapped: r.wrapped,
            active: r.active != 0,
            created_at: ts(r.created_at),
        }
    }
}

pub(super) async fn list(pool: &AnyPool) -> Result<Vec<StoredDataKey>> {
    Ok(sqlx::query_as::<_, DataKeyRow>(
        "SELECT key_id, wrapped, active, created_at FROM encryption_keys \
         ORDER BY created_at, key_id",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Into::into)
    .collect())
}

/// Adds a data key; if `active`, it becomes the only active one (in one transaction).
pub(super) async fn insert(pool: &AnyPool, key: &StoredDataKey) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO encryption_keys (key_id, wrapped, active, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.key_id)
    .bind(key.wrapped.clone())
    .bind(i64::from(key.active))
    .bind(ms(key.created_at))
    .execute(&mut *tx)
    .await?;
    if key.active {
        sqlx::query("UPDATE encryption_keys SET active = 0 WHERE key_id <> $1")
            .bind(&key.key_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes a data key; refused while it is active or any sealed value still uses it.
pub(super) async fn delete(pool: &AnyPool, key_id: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM encryption_keys WHERE key_id = $1 AND active = 0")
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT key_id FROM encryption_keys WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?;
        return Err(match exists {
            None => StoreError::NotFound("encryption key"),
            Some(_) => StoreError::Conflict(format!("key {key_id} is the active key")),
        });
    }
    // A sealed value starts with 0x01, the key id's length, then the key id.
    let mut prefix = vec![1u8, key_id.len() as u8];
    prefix.extend_from_slice(key_id.as_bytes());
    let mut in_use = 0usize;
    for column in SealedColumn::ALL {
        let (table, column) = (column.table(), column.column());
        let sql = format!("SELECT {column} FROM {table} WHERE {column} IS NOT NULL");
        // Audited: table and column names come from SealedColumn only.
        let values: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        in_use += values.iter().filter(|v| v.starts_with(&prefix)).count();
    }
    if in_use > 0 {
        tx.rollback().await?;
        return Err(StoreError::Conflict(format!(
            "{in_use} sealed values still use key {key_id}; run `tokenwarden keys rotate` first"
        )));
    }
    tx.commit().await?;
    Ok(())
}

// --- sealed values --------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct SealedValueRow {
    id: String,
    sealed: Vec<u8>,
}

/// Every sealed value in the database, column by column.
pub(super) async fn sealed_values(pool: &AnyPool) -> Result<Vec<SealedRef>> {
    let mut out = Vec::new();
    for column in SealedColumn::ALL {
        let (table, name) = (column.table(), column.column());
        let sql = format!("SELECT id, {name} AS sealed FROM {table} WHERE {name} IS NOT NULL");
        // Audited: table and column names come from SealedColumn only.
        let rows = sqlx::query_as::<_, SealedValueRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?;
        out.extend(rows.into_iter().map(|r| SealedRef {
            column,
            row_id: r.id,
            sealed: Sealed(r.sealed),
        }));
    }
    Ok(out)
}

/// Replaces one sealed value if it is still `r.sealed` (compare-and-swap).
pub(super) async fn replace_sealed(pool: &AnyPool, r: &SealedRef, new: &Sealed) -> Result<bool> {
    let (table, column) = (r.column.table(), r.column.column());
    let sql = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3");
    // Audited: table and column names come from SealedColumn only.
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(new.0.clone())
        .bind(&r.row_id)
        .bind(r.sealed.0.clone())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
