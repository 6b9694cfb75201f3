//! Named, owner-checked leases with a fencing counter that grows on every change of owner.
//! Writes made under a lease check it in the same statement (see `tokens::update`).

use super::{ms, ts};
use crate::Result;
use crate::records::Lease;
use sqlx::AnyPool;
use tokenwarden_domain::Timestamp;

/// What the lease queries return; the name is the caller's.
#[derive(sqlx::FromRow)]
struct LeaseRow {
    owner: String,
    fencing: i64,
    expires_at: i64,
}

impl LeaseRow {
    fn into_lease(self, name: &str) -> Lease {
        Lease {
            name: name.to_owned(),
            owner: self.owner,
            fencing: self.fencing,
            expires_at: ts(self.expires_at),
        }
    }
}

/// Takes the lease for `ttl` if it is free, expired, or already `owner`'s: one upsert, so of
/// several racing owners exactly one gets it.
pub(super) async fn acquire(
    pool: &AnyPool,
    name: &str,
    owner: &str,
    ttl: chrono::Duration,
    now: Timestamp,
) -> Result<Option<Lease>> {
    let row = sqlx::query_as::<_, LeaseRow>(
        "INSERT INTO leases (name, owner, expires_at, fencing) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (name) DO UPDATE SET \
           fencing = CASE WHEN leases.owner = excluded.owner AND leases.expires_at > $4 \
                          THEN leases.fencing ELSE leases.fencing + 1 END, \
           owner = excluded.owner, expires_at = excluded.expires_at \
         WHERE leases.expires_at <= $4 OR leases.owner = excluded.owner \
         RETURNING owner, fencing, expires_at",
    )
    .bind(name)
    .bind(owner)
    .bind(ms(now + ttl))
    .bind(ms(now))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.into_lease(name)))
}

pub(super) async fn renew(
    pool: &AnyPool,
    lease: &Lease,
    ttl: chrono::Duration,
    now: Timestamp,
) -> Result<Option<Lease>> {
    let row = sqlx::query_as::<_, LeaseRow>(
        "UPDATE leases SET expires_at = $1 \
         WHERE name = $2 AND owner = $3 AND fencing = $4 AND expires_at > $5 \
         RETURNING owner, fencing, expires_at",
    )
    .bind(ms(now + ttl))
    .bind(&lease.name)
    .bind(&lease.owner)
    .bind(lease.fencing)
    .bind(ms(now))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.into_lease(&lease.name)))
}

pub(super) async fn release(pool: &AnyPool, lease: &Lease) -> Result<bool> {
    let mut conn = pool.acquire().await?;
    release_in(&mut conn, lease).await
}

/// Releases every lease `owner` holds (expires them, keeping their fencing counters).
pub(super) async fn release_all_of(pool: &AnyPool, owner: &str) -> Result<u64> {
    // An instance's leases are owned by `owner` itself or by one attempt of it,
    // `owner:<attempt>` (ops::grant::refresh gives each refresh attempt its own owner).
    let attempt_prefix = format!("{owner}:");
    let done = sqlx::query(
        "UPDATE leases SET expires_at = 0 \
         WHERE (owner = $1 OR substr(owner, 1, CAST($2 AS INTEGER)) = $3) AND expires_at > 0",
    )
    .bind(owner)
    .bind(attempt_prefix.chars().count() as i64)
    .bind(&attempt_prefix)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Releases `lease` on a connection (or in a transaction).
pub(super) async fn release_in(conn: &mut sqlx::AnyConnection, lease: &Lease) -> Result<bool> {
    // Expire rather than delete, so the fencing counter keeps growing.
    let done = sqlx::query(
        "UPDATE leases SET expires_at = 0 WHERE name = $1 AND owner = $2 AND fencing = $3",
    )
    .bind(&lease.name)
    .bind(&lease.owner)
    .bind(lease.fencing)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
