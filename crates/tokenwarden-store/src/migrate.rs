//! Schema migrations: sqlx's migrator over the SQL files of `migrations/sqlite` or
//! `migrations/postgres`, embedded at build time by `sqlx::migrate!`. Each file is applied once,
//! in its own transaction, and recorded in `_sqlx_migrations` with its checksum: a file changed
//! after it was applied is refused, as is a database with a migration this binary does not know.
//!
//! Several instances may start at once on one PostgreSQL database: sqlx's migration lock (a
//! session-level advisory lock per database) is held around the whole of [`run`], so one
//! applies and the others then find nothing left to do. On SQLite that lock is a no-op (the
//! embedded database has one tokenwarden process).
//!
//! Databases made before sqlx's migrator recorded their versions in `schema_migrations`; the
//! first run adopts them (see [`adopt_legacy`]).

use crate::sql::Backend;
use crate::{Result, StoreError};
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// sqlx's record of applied migrations (its default name).
const TABLE: &str = "_sqlx_migrations";
/// The record kept by tokenwarden's own migrator before sqlx's.
const LEGACY_TABLE: &str = "schema_migrations";

/// The newest schema version this binary knows for `backend` (its last migration's number):
/// a backup of a newer schema is refused on restore.
pub fn latest_version(backend: Backend) -> i64 {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies pending migrations and logs one line per migration applied; returns how many this
/// call applied (0 when another instance got there first).
///
/// This is `Migrator::run` spelled out with the same [`Migrate`] steps (lock, dirty check,
/// refusing unknown or altered applied migrations, applying each pending file in its own
/// transaction), for three reasons: `Migrator::run` over an `AnyConnection` does not compile in
/// a future that must be `Send` (rustc's "implementation of `Acquire` is not general enough";
/// sqlx's way round it, `run_direct`, is `#[doc(hidden)]`); it does not say which migrations it
/// applied, and the log line per migration is part of start-up output; and the adoption of
/// former databases must happen under the same lock.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<usize> {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let mut conn = pool.acquire().await?;
    conn.lock().await.map_err(migration_error)?;
    match run_locked(&mut conn, migrator, backend).await {
        Ok(ran) => {
            conn.unlock().await.map_err(migration_error)?;
            Ok(ran)
        }
        Err(e) => {
            // Closing the session releases the lock whatever state the connection is in,
            // rather than returning a locked connection to the pool.
            let _ = conn.close().await;
            Err(e)
        }
    }
}

async fn run_locked(
    conn: &mut AnyConnection,
    migrator: &Migrator,
    backend: Backend,
) -> Result<usize> {
    conn.ensure_migrations_table(TABLE)
        .await
        .map_err(migration_error)?;
    adopt_legacy(conn, migrator, backend).await?;
    if let Some(version) = conn.dirty_version(TABLE).await.map_err(migration_error)? {
        return Err(migration_error(MigrateError::Dirty(version)));
    }
    let applied = conn
        .list_applied_migrations(TABLE)
        .await
        .map_err(migration_error)?;
    if let Some(unknown) = applied.iter().find(|a| !migrator.version_exists(a.version)) {
        return Err(migration_error(MigrateError::VersionMissing(
            unknown.version,
        )));
    }
    let mut ran = 0;
    for m in migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        match applied.iter().find(|a| a.version == m.version) {
            Some(a) if a.checksum != m.checksum => {
                return Err(migration_error(MigrateError::VersionMismatch(m.version)));
            }
            Some(_) => {}
            None => {
                conn.apply(TABLE, m).await.map_err(migration_error)?;
                tracing::info!(
                    version = m.version,
                    name = &*m.description,
                    "applied database migration"
                );
                ran += 1;
            }
        }
    }
    Ok(ran)
}

async fn applied_versions(conn: &mut AnyConnection) -> Result<Vec<i64>> {
    Ok(conn
        .list_applied_migrations(TABLE)
        .await
        .map_err(migration_error)?
        .into_iter()
        .map(|m| m.version)
        .collect())
}

/// Adopts a database migrated by tokenwarden's former migrator: records each version listed in
/// `schema_migrations` in `_sqlx_migrations` as applied (with this binary's checksum of that
/// file, whose content never changed), then drops `schema_migrations`, all in one transaction.
/// A version this binary does not know is refused, as the former migrator did.
async fn adopt_legacy(
    conn: &mut AnyConnection,
    migrator: &Migrator,
    backend: Backend,
) -> Result<()> {
    let exists_sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
    };
    let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(&mut *conn).await?;
    if exists == 0 {
        return Ok(());
    }
    let recorded = applied_versions(conn).await?;
    let mut tx = conn.begin().await?;
    let legacy: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    for version in legacy.into_iter().filter(|v| !recorded.contains(v)) {
        let m = migrator
            .iter()
            .find(|m| m.version == version && !m.migration_type.is_down_migration())
            .ok_or_else(|| StoreError::Migration {
                version,
                message: format!(
                    "the database has schema version {version}, newer than this binary knows; \
                     run a newer tokenwarden"
                ),
            })?;
        tx.skip(TABLE, m).await.map_err(migration_error)?;
        tracing::info!(
            version,
            name = &*m.description,
            "adopted database migration applied by the former migrator"
        );
    }
    sqlx::query("DROP TABLE schema_migrations")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        table = LEGACY_TABLE,
        "migration history moved to _sqlx_migrations"
    );
    Ok(())
}

fn migration_error(e: MigrateError) -> StoreError {
    let failed = |version, message: &str| StoreError::Migration {
        version,
        message: message.to_owned(),
    };
    match e {
        MigrateError::Execute(e) => e.into(),
        MigrateError::ExecuteMigration(e, version) => match StoreError::from(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(m),
            other => StoreError::Migration {
                version,
                message: other.to_string(),
            },
        },
        MigrateError::VersionMissing(v) => failed(
            v,
            "the database has this migration applied but this binary does not know it; \
             run a newer tokenwarden",
        ),
        MigrateError::VersionMismatch(v) => failed(
            v,
            "the applied migration differs from this binary's (checksum mismatch)",
        ),
        MigrateError::Dirty(v) => failed(
            v,
            "an earlier attempt failed part-way; repair the database by hand",
        ),
        other => StoreError::Database(other.to_string()),
    }
}
