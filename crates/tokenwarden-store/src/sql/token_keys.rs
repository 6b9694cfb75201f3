//! A token's signing keys (`token_keys`, issue 12): one row per token, written
//! compare-and-set on its version.

use super::{ms, parse_id, sealed, sealed_bytes, ts};
use crate::records::{Sealed, TokenKeys};
use crate::{Result, StoreError};
use sqlx::AnyPool;
use tokenwarden_domain::{Timestamp, TokenId};

#[derive(sqlx::FromRow)]
struct KeysRow {
    id: String,
    signing_key: Vec<u8>,
    signing_key_next: Option<Vec<u8>>,
    slot: Option<String>,
    version: i64,
    updated_at: i64,
}

impl TryFrom<KeysRow> for TokenKeys {
    type Error = StoreError;

    fn try_from(r: KeysRow) -> Result<Self> {
        Ok(TokenKeys {
            token_id: parse_id("token_keys.id", &r.id, TokenId::parse)?,
            signing_key: Sealed(r.signing_key),
            signing_key_next: sealed(r.signing_key_next),
            slot: r.slot,
            version: r.version,
            updated_at: ts(r.updated_at),
        })
    }
}

pub(super) async fn get(pool: &AnyPool, id: TokenId) -> Result<Option<TokenKeys>> {
    sqlx::query_as::<_, KeysRow>(
        "SELECT id, signing_key, signing_key_next, slot, version, updated_at \
         FROM token_keys WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await?
    .map(TokenKeys::try_from)
    .transpose()
}

pub(super) async fn put(
    pool: &AnyPool,
    keys: &TokenKeys,
    expected_version: Option<i64>,
    now: Timestamp,
) -> Result<TokenKeys> {
    let mut stored = keys.clone();
    stored.updated_at = now;
    match expected_version {
        None => {
            stored.version = 1;
            sqlx::query(
                "INSERT INTO token_keys (id, signing_key, signing_key_next, slot, version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(keys.token_id.to_string())
            .bind(keys.signing_key.0.clone())
            .bind(sealed_bytes(&keys.signing_key_next))
            .bind(keys.slot.clone())
            .bind(stored.version)
            .bind(ms(now))
            .execute(pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict("this token already has a signing key".into())
                }
                other => other,
            })?;
        }
        Some(v) => {
            stored.version = v + 1;
            let done = sqlx::query(
                "UPDATE token_keys SET signing_key = $1, signing_key_next = $2, slot = $3, \
                 version = $4, updated_at = $5 WHERE id = $6 AND version = $7",
            )
            .bind(keys.signing_key.0.clone())
            .bind(sealed_bytes(&keys.signing_key_next))
            .bind(keys.slot.clone())
            .bind(stored.version)
            .bind(ms(now))
            .bind(keys.token_id.to_string())
            .bind(v)
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(match get(pool, keys.token_id).await? {
                    Some(_) => StoreError::VersionMismatch("token keys"),
                    None => StoreError::NotFound("token keys"),
                });
            }
        }
    }
    Ok(stored)
}
