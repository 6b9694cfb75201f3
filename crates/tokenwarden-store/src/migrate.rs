//! A small migration runner: numbered SQL files compiled into the binary, one folder per backend,
//! each applied once in its own transaction and recorded in `schema_migrations`.

use crate::sql::Backend;
use crate::{Result, StoreError};
use sqlx::{AnyPool, Row};

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "oauth_states",
        sql: include_str!("../migrations/sqlite/0002_oauth_states.sql"),
    },
    Migration {
        version: 3,
        name: "health_and_deliveries",
        sql: include_str!("../migrations/sqlite/0003_health_and_deliveries.sql"),
    },
    Migration {
        version: 4,
        name: "admins_sessions",
        sql: include_str!("../migrations/sqlite/0004_admins_sessions.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "oauth_states",
        sql: include_str!("../migrations/postgres/0002_oauth_states.sql"),
    },
    Migration {
        version: 3,
        name: "health_and_deliveries",
        sql: include_str!("../migrations/postgres/0003_health_and_deliveries.sql"),
    },
    Migration {
        version: 4,
        name: "admins_sessions",
        sql: include_str!("../migrations/postgres/0004_admins_sessions.sql"),
    },
];

/// Applies pending migrations; returns how many ran. Safe to run from several instances at once.
pub(crate) async fn run(pool: &AnyPool, backend: Backend, now_ms: i64) -> Result<usize> {
    let migrations = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let mut conn = pool.acquire().await?;
    if backend == Backend::Postgres {
        // Serialise concurrent starts of several instances.
        sqlx::query("SELECT pg_advisory_lock(7420841)")
            .execute(&mut *conn)
            .await?;
    }
    let result = async {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let newest_known = migrations.last().map_or(0, |m| m.version);
        if let Some(v) = applied.iter().copied().find(|v| *v > newest_known) {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {v}, newer than this binary knows ({newest_known}); \
                 run a newer tokenwarden"
            )));
        }
        let mut ran = 0;
        for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migration { version: m.version, source })?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied database migration");
            ran += 1;
        }
        Ok(ran)
    }
    .await;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7420841)")
            .execute(&mut *conn)
            .await?;
    }
    result
}
