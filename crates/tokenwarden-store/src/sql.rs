use crate::records::*;
use crate::{Result, SEALED_COLUMNS, Store, StoreError, migrate};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::BTreeMap;
use std::time::Duration;
use tokenwarden_domain::clock::{from_millis, to_millis};
use tokenwarden_domain::{
    ApiKeyId, AppId, AppName, AppState, KeyLabel, ProviderId, StopReason, Timestamp, TokenId,
    TokenName, TokenStatus,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            // Never echo a URL that may carry a password.
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(format!("{scheme}:...")))
        }
    }
}

/// The one implementation of [`Store`], on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

impl SqlStore {
    /// Connects (creating a SQLite file if needed) without migrating.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .max_connections(8)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        Ok(Self { pool, backend })
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str, now: Timestamp) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate(now).await?;
        Ok(store)
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self, now: Timestamp) -> Result<usize> {
        migrate::run(&self.pool, self.backend, to_millis(now)).await
    }

    /// Runs a read-only diagnostic query returning one text value (e.g. `PRAGMA journal_mode`).
    pub async fn diagnostic(&self, sql: &'static str) -> Result<String> {
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        if let Ok(s) = row.try_get::<String, _>(0) {
            return Ok(s);
        }
        Ok(row.try_get::<i64, _>(0)?.to_string())
    }
}

// --- row mapping ---------------------------------------------------------------------------

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn ts(row: &AnyRow, col: &str) -> Result<Timestamp> {
    Ok(from_millis(row.try_get::<i64, _>(col)?))
}

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_millis))
}

fn opt_sealed(row: &AnyRow, col: &str) -> Result<Option<Sealed>> {
    Ok(row.try_get::<Option<Vec<u8>>, _>(col)?.map(Sealed))
}

fn app_id(row: &AnyRow, col: &str) -> Result<AppId> {
    let s: String = row.try_get(col)?;
    AppId::parse(&s).ok_or_else(|| corrupt(col, format!("{s:?} is not a UUID")))
}

fn opt_app_id(row: &AnyRow, col: &str) -> Result<Option<AppId>> {
    match row.try_get::<Option<String>, _>(col)? {
        None => Ok(None),
        Some(s) => AppId::parse(&s)
            .map(Some)
            .ok_or_else(|| corrupt(col, "bad id")),
    }
}

fn opt_sealed_bytes(s: &Option<Sealed>) -> Option<Vec<u8>> {
    s.as_ref().map(|s| s.0.clone())
}

fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(to_millis)
}

macro_rules! app_columns {
    () => {
        "id, name, state, stop_reason, version, created_at, updated_at"
    };
}

fn app_from_row(row: &AnyRow, tokens: Vec<TokenName>) -> Result<AppRecord> {
    let stop_reason = match row.try_get::<Option<String>, _>("stop_reason")? {
        None => None,
        Some(j) => Some(
            serde_json::from_str::<StopReason>(&j).map_err(|e| corrupt("apps.stop_reason", e))?,
        ),
    };
    Ok(AppRecord {
        id: app_id(row, "id")?,
        name: AppName::parse(&row.try_get::<String, _>("name")?)
            .map_err(|e| corrupt("apps.name", e))?,
        state: AppState::parse(&row.try_get::<String, _>("state")?)
            .map_err(|e| corrupt("apps.state", e))?,
        stop_reason,
        tokens,
        version: row.try_get("version")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

macro_rules! token_columns {
    () => {
        "id, name, provider, app_id, settings, client_id, client_secret, client_secret_2, \
         access_token, refresh_token, token_type, scopes, access_expires_at, refresh_expires_at, \
         issued_at, status, status_reason, version, created_at, updated_at"
    };
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
    let id: String = row.try_get("id")?;
    let settings: BTreeMap<String, String> =
        serde_json::from_str(&row.try_get::<String, _>("settings")?)
            .map_err(|e| corrupt("tokens.settings", e))?;
    Ok(TokenRecord {
        id: TokenId::parse(&id).ok_or_else(|| corrupt("tokens.id", "bad id"))?,
        name: TokenName::parse(&row.try_get::<String, _>("name")?)
            .map_err(|e| corrupt("tokens.name", e))?,
        provider: ProviderId::parse(&row.try_get::<String, _>("provider")?)
            .map_err(|e| corrupt("tokens.provider", e))?,
        app_id: opt_app_id(row, "app_id")?,
        settings,
        client_id: row.try_get("client_id")?,
        client_secret: opt_sealed(row, "client_secret")?,
        client_secret_2: opt_sealed(row, "client_secret_2")?,
        material: TokenMaterial {
            access_token: opt_sealed(row, "access_token")?,
            refresh_token: opt_sealed(row, "refresh_token")?,
            token_type: row.try_get("token_type")?,
            scopes: row.try_get("scopes")?,
            access_expires_at: opt_ts(row, "access_expires_at")?,
            refresh_expires_at: opt_ts(row, "refresh_expires_at")?,
            issued_at: opt_ts(row, "issued_at")?,
        },
        status: TokenStatus::parse(&row.try_get::<String, _>("status")?)
            .map_err(|e| corrupt("tokens.status", e))?,
        status_reason: row.try_get("status_reason")?,
        version: row.try_get("version")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

macro_rules! key_columns {
    () => {
        "id, kind, app_id, label, secret_hash, created_at, revoked_at"
    };
}

fn key_from_row(row: &AnyRow) -> Result<ApiKeyRecord> {
    let id: String = row.try_get("id")?;
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "app" => ApiKeyKind::App,
        "admin" => ApiKeyKind::Admin,
        other => return Err(corrupt("api_keys.kind", other)),
    };
    Ok(ApiKeyRecord {
        id: ApiKeyId::parse(&id).ok_or_else(|| corrupt("api_keys.id", "bad id"))?,
        kind,
        app_id: opt_app_id(row, "app_id")?,
        label: KeyLabel::parse(&row.try_get::<String, _>("label")?)
            .map_err(|e| corrupt("api_keys.label", e))?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: ts(row, "created_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: ts(row, "at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object_type: row.try_get("object_type")?,
        object_id: row.try_get("object_id")?,
        object_name: row.try_get("object_name")?,
        outcome: row.try_get("outcome")?,
        detail: serde_json::from_str(&row.try_get::<String, _>("detail")?)
            .map_err(|e| corrupt("audit_events.detail", e))?,
    })
}

macro_rules! state_columns {
    () => {
        "id, state_hash, token_id, started_by, session_hash, verifier, redirect_uri, created_at, expires_at, used_at"
    };
}

fn state_from_row(row: &AnyRow) -> Result<OAuthStateRecord> {
    let token_id: String = row.try_get("token_id")?;
    Ok(OAuthStateRecord {
        id: row.try_get("id")?,
        state_hash: row.try_get("state_hash")?,
        token_id: TokenId::parse(&token_id)
            .ok_or_else(|| corrupt("oauth_states.token_id", "bad id"))?,
        started_by: row.try_get("started_by")?,
        session_hash: row.try_get("session_hash")?,
        verifier: opt_sealed(row, "verifier")?,
        redirect_uri: row.try_get("redirect_uri")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        used_at: opt_ts(row, "used_at")?,
    })
}

macro_rules! health_columns {
    () => {
        "token_id, last_attempt_at, last_success_at, failures, next_attempt_at, last_error, last_read_at, reads_total"
    };
}

fn health_from_row(row: &AnyRow) -> Result<TokenHealth> {
    let id: String = row.try_get("token_id")?;
    Ok(TokenHealth {
        token_id: TokenId::parse(&id).ok_or_else(|| corrupt("token_health.token_id", "bad id"))?,
        last_attempt_at: opt_ts(row, "last_attempt_at")?,
        last_success_at: opt_ts(row, "last_success_at")?,
        failures: row.try_get("failures")?,
        next_attempt_at: opt_ts(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        last_read_at: opt_ts(row, "last_read_at")?,
        reads_total: row.try_get("reads_total")?,
    })
}

macro_rules! channel_columns {
    () => {
        "id, app_id, kind, name, config, secret, enabled, created_at, updated_at"
    };
}

fn channel_from_row(row: &AnyRow) -> Result<ChannelRecord> {
    Ok(ChannelRecord {
        id: row.try_get("id")?,
        app_id: opt_app_id(row, "app_id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        config: serde_json::from_str(&row.try_get::<String, _>("config")?)
            .map_err(|e| corrupt("notification_channels.config", e))?,
        secret: opt_sealed(row, "secret")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

macro_rules! job_columns {
    () => {
        "id, kind, dedupe_key, payload, run_at, attempts, lease_owner, lease_expires_at, last_error, done_at, created_at"
    };
}

fn job_from_row(row: &AnyRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        dedupe_key: row.try_get("dedupe_key")?,
        payload: serde_json::from_str(&row.try_get::<String, _>("payload")?)
            .map_err(|e| corrupt("jobs.payload", e))?,
        run_at: ts(row, "run_at")?,
        attempts: row.try_get("attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: opt_ts(row, "lease_expires_at")?,
        last_error: row.try_get("last_error")?,
        done_at: opt_ts(row, "done_at")?,
        created_at: ts(row, "created_at")?,
    })
}

macro_rules! delivery_columns {
    () => {
        "id, job_id, channel_id, event_id, event_kind, attempt, at, outcome, status_code, error"
    };
}

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        channel_id: row.try_get("channel_id")?,
        event_id: row.try_get("event_id")?,
        event_kind: row.try_get("event_kind")?,
        attempt: row.try_get("attempt")?,
        at: ts(row, "at")?,
        outcome: row.try_get("outcome")?,
        status_code: row.try_get("status_code")?,
        error: row.try_get("error")?,
    })
}

fn lease_from_row(row: &AnyRow, name: &str) -> Result<Lease> {
    Ok(Lease {
        name: name.to_owned(),
        owner: row.try_get("owner")?,
        fencing: row.try_get("fencing")?,
        expires_at: ts(row, "expires_at")?,
    })
}

macro_rules! admin_columns {
    () => {
        "id, username, password_hash, created_at, last_login_at"
    };
}

macro_rules! session_columns {
    () => {
        "id, admin_id, csrf_token, created_at, expires_at, last_seen_at"
    };
}

fn admin_from_row(row: &AnyRow) -> Result<AdminRecord> {
    Ok(AdminRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        created_at: ts(row, "created_at")?,
        last_login_at: opt_ts(row, "last_login_at")?,
    })
}

fn settings_json(t: &TokenRecord) -> String {
    serde_json::to_string(&t.settings).unwrap_or_else(|_| "{}".into())
}

fn scope_key(app: Option<AppId>) -> String {
    app.map(|a| a.to_string()).unwrap_or_default()
}

impl SqlStore {
    async fn app_tokens(&self, id: AppId) -> Result<Vec<TokenName>> {
        sqlx::query("SELECT token_name FROM app_tokens WHERE app_id = $1 ORDER BY token_name")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                TokenName::parse(&r.try_get::<String, _>(0)?)
                    .map_err(|e| corrupt("app_tokens.token_name", e))
            })
            .collect()
    }

    async fn apps_from_rows(&self, rows: Vec<AnyRow>) -> Result<Vec<AppRecord>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = app_id(&row, "id")?;
            out.push(app_from_row(&row, self.app_tokens(id).await?)?);
        }
        Ok(out)
    }

    /// The UPDATE shared by [`Store::update_token`] and [`Store::update_token_under_lease`]: one
    /// statement, so the version (and lease) check and the write are atomic on both backends.
    async fn update_token_where(
        &self,
        t: &TokenRecord,
        now: Timestamp,
        lease: Option<&Lease>,
    ) -> Result<TokenRecord> {
        let lease_cond = if lease.is_some() {
            " AND EXISTS (SELECT 1 FROM leases WHERE name = $22 AND owner = $23 AND fencing = $24 \
             AND expires_at > $20)"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE tokens SET name = $1, provider = $2, scope_key = $3, settings = $4, \
             client_id = $5, client_secret = $6, client_secret_2 = $7, access_token = $8, \
             refresh_token = $9, token_type = $10, scopes = $11, access_expires_at = $12, \
             refresh_expires_at = $13, issued_at = $14, status = $15, status_reason = $16, \
             version = $17, app_id = $18, updated_at = $20 \
             WHERE id = $19 AND version = $21{lease_cond}"
        );
        // Audited: built only from the constant lease condition above.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(t.name.as_str())
            .bind(t.provider.as_str())
            .bind(scope_key(t.app_id))
            .bind(settings_json(t))
            .bind(t.client_id.clone())
            .bind(opt_sealed_bytes(&t.client_secret))
            .bind(opt_sealed_bytes(&t.client_secret_2))
            .bind(opt_sealed_bytes(&t.material.access_token))
            .bind(opt_sealed_bytes(&t.material.refresh_token))
            .bind(t.material.token_type.clone())
            .bind(t.material.scopes.clone())
            .bind(opt_ms(t.material.access_expires_at))
            .bind(opt_ms(t.material.refresh_expires_at))
            .bind(opt_ms(t.material.issued_at))
            .bind(t.status.as_str())
            .bind(t.status_reason.clone())
            .bind(t.version + 1)
            .bind(t.app_id.map(|a| a.to_string()))
            .bind(t.id.to_string())
            .bind(to_millis(now))
            .bind(t.version);
        if let Some(l) = lease {
            q = q.bind(l.name.clone()).bind(l.owner.clone()).bind(l.fencing);
        }
        let done = q
            .execute(&self.pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "a token named {} already exists {}",
                    t.name,
                    if t.app_id.is_some() {
                        "for this app"
                    } else {
                        "among global tokens"
                    }
                )),
                other => other,
            })?;
        if done.rows_affected() == 1 {
            return self.get_token(t.id).await;
        }
        // Tell apart: gone, changed by someone else, or lease lost.
        let current = self.get_token(t.id).await?;
        if current.version != t.version {
            return Err(StoreError::VersionMismatch("token"));
        }
        match lease {
            Some(l) => Err(StoreError::LeaseLost(l.name.clone())),
            None => Err(StoreError::VersionMismatch("token")),
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_meta(&self, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_data_keys(&self) -> Result<Vec<StoredDataKey>> {
        sqlx::query("SELECT key_id, wrapped, active, created_at FROM encryption_keys ORDER BY created_at, key_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredDataKey {
                    key_id: r.try_get("key_id")?,
                    wrapped: r.try_get("wrapped")?,
                    active: r.try_get::<i64, _>("active")? != 0,
                    created_at: ts(r, "created_at")?,
                })
            })
            .collect()
    }

    async fn insert_data_key(&self, key: &StoredDataKey) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO encryption_keys (key_id, wrapped, active, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.key_id)
            .bind(key.wrapped.clone())
            .bind(i64::from(key.active))
            .bind(to_millis(key.created_at))
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

    async fn delete_data_key(&self, key_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM encryption_keys WHERE key_id = $1 AND active = 0")
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM encryption_keys WHERE key_id = $1")
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
        let mut in_use = 0i64;
        for (table, column) in SEALED_COLUMNS {
            let sql = format!("SELECT {column} FROM {table} WHERE {column} IS NOT NULL");
            // Audited: table and column names come from SEALED_COLUMNS only.
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?
            {
                let v: Vec<u8> = row.try_get(0)?;
                if v.starts_with(&prefix) {
                    in_use += 1;
                }
            }
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

    async fn sealed_values(&self) -> Result<Vec<SealedRef>> {
        let mut out = Vec::new();
        for (table, column) in SEALED_COLUMNS {
            let sql = format!("SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL");
            // Audited: table and column names come from SEALED_COLUMNS only.
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await?
            {
                out.push(SealedRef {
                    table,
                    column,
                    row_id: row.try_get(0)?,
                    sealed: Sealed(row.try_get(1)?),
                });
            }
        }
        Ok(out)
    }

    async fn replace_sealed(&self, r: &SealedRef, new: &Sealed) -> Result<bool> {
        if !SEALED_COLUMNS.contains(&(r.table, r.column)) {
            return Err(StoreError::Corrupt(format!(
                "{}.{} is not a sealed column",
                r.table, r.column
            )));
        }
        let sql = format!(
            "UPDATE {} SET {} = $1 WHERE id = $2 AND {} = $3",
            r.table, r.column, r.column
        );
        // Audited: the pair was checked against SEALED_COLUMNS above.
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new.0.clone())
            .bind(&r.row_id)
            .bind(r.sealed.0.clone())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_app(&self, app: &AppRecord, first_key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO apps (id, name, state, stop_reason, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app.id.to_string())
        .bind(app.name.as_str())
        .bind(app.state.as_str())
        .bind(
            app.stop_reason
                .as_ref()
                .map(|r| serde_json::to_string(r).unwrap_or_default()),
        )
        .bind(app.version)
        .bind(to_millis(app.created_at))
        .bind(to_millis(app.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("an app named {} already exists", app.name))
            }
            other => other,
        })?;
        insert_bindings(&mut tx, app).await?;
        insert_key(&mut tx, first_key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_app(&self, id: AppId) -> Result<AppRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("app"))?;
        app_from_row(&row, self.app_tokens(id).await?)
    }

    async fn get_app_by_name(&self, name: &AppName) -> Result<AppRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("app"))?;
        let id = app_id(&row, "id")?;
        app_from_row(&row, self.app_tokens(id).await?)
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        self.apps_from_rows(rows).await
    }

    async fn update_app(&self, app: &AppRecord, now: Timestamp) -> Result<AppRecord> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE apps SET name = $1, state = $2, stop_reason = $3, version = $4, updated_at = $5 \
             WHERE id = $6 AND version = $7",
        )
        .bind(app.name.as_str())
        .bind(app.state.as_str())
        .bind(app.stop_reason.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()))
        .bind(app.version + 1)
        .bind(to_millis(now))
        .bind(app.id.to_string())
        .bind(app.version)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("an app named {} already exists", app.name)),
            other => other,
        })?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            self.get_app(app.id).await?;
            return Err(StoreError::VersionMismatch("app"));
        }
        sqlx::query("DELETE FROM app_tokens WHERE app_id = $1")
            .bind(app.id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_bindings(&mut tx, app).await?;
        tx.commit().await?;
        self.get_app(app.id).await
    }

    async fn delete_app(&self, id: AppId) -> Result<()> {
        let done = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("app"));
        }
        Ok(())
    }

    async fn apps_using_token(&self, name: &TokenName) -> Result<Vec<AppRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE id IN \
             (SELECT app_id FROM app_tokens WHERE token_name = $1) ORDER BY name"
        ))
        .bind(name.as_str())
        .fetch_all(&self.pool)
        .await?;
        self.apps_from_rows(rows).await
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<()> {
        sqlx::query(concat!("INSERT INTO tokens (", token_columns!(), ", scope_key) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"))
        .bind(t.id.to_string())
        .bind(t.name.as_str())
        .bind(t.provider.as_str())
        .bind(t.app_id.map(|a| a.to_string()))
        .bind(settings_json(t))
        .bind(t.client_id.clone())
        .bind(opt_sealed_bytes(&t.client_secret))
        .bind(opt_sealed_bytes(&t.client_secret_2))
        .bind(opt_sealed_bytes(&t.material.access_token))
        .bind(opt_sealed_bytes(&t.material.refresh_token))
        .bind(t.material.token_type.clone())
        .bind(t.material.scopes.clone())
        .bind(opt_ms(t.material.access_expires_at))
        .bind(opt_ms(t.material.refresh_expires_at))
        .bind(opt_ms(t.material.issued_at))
        .bind(t.status.as_str())
        .bind(t.status_reason.clone())
        .bind(t.version)
        .bind(to_millis(t.created_at))
        .bind(to_millis(t.updated_at))
        .bind(scope_key(t.app_id))
        .execute(&self.pool)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(match t.app_id {
                None => format!("a global token named {} already exists", t.name),
                Some(_) => format!("this app already has a token named {}", t.name),
            }),
            other => other,
        })?;
        Ok(())
    }

    async fn get_token(&self, id: TokenId) -> Result<TokenRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        token_from_row(&row)
    }

    async fn find_token(&self, app: Option<AppId>, name: &TokenName) -> Result<TokenRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE scope_key = $1 AND name = $2"
        ))
        .bind(scope_key(app))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        token_from_row(&row)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens ORDER BY provider, name, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }

    async fn update_token(&self, t: &TokenRecord, now: Timestamp) -> Result<TokenRecord> {
        self.update_token_where(t, now, None).await
    }

    async fn update_token_under_lease(
        &self,
        t: &TokenRecord,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<TokenRecord> {
        self.update_token_where(t, now, Some(lease)).await
    }

    async fn delete_token(&self, id: TokenId) -> Result<()> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("token"));
        }
        Ok(())
    }

    async fn create_oauth_state(&self, st: &OAuthStateRecord) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO oauth_states (",
            state_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&st.id)
        .bind(&st.state_hash)
        .bind(st.token_id.to_string())
        .bind(&st.started_by)
        .bind(st.session_hash.clone())
        .bind(opt_sealed_bytes(&st.verifier))
        .bind(&st.redirect_uri)
        .bind(to_millis(st.created_at))
        .bind(to_millis(st.expires_at))
        .bind(opt_ms(st.used_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consume_oauth_state(&self, state_hash: &str, now: Timestamp) -> Result<StateOutcome> {
        let row = sqlx::query(concat!(
            "UPDATE oauth_states SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING ",
            state_columns!()
        ))
        .bind(to_millis(now))
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(StateOutcome::Consumed(state_from_row(&row)?));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            state_columns!(),
            " FROM oauth_states WHERE state_hash = $1"
        ))
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row.map(|r| state_from_row(&r)).transpose()? {
            None => StateOutcome::Unknown,
            Some(s) if s.used_at.is_some() => StateOutcome::AlreadyUsed,
            Some(_) => StateOutcome::Expired,
        })
    }

    async fn purge_oauth_states(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(to_millis(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn get_token_health(&self, id: TokenId) -> Result<Option<TokenHealth>> {
        sqlx::query(concat!(
            "SELECT ",
            health_columns!(),
            " FROM token_health WHERE token_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| health_from_row(&r))
        .transpose()
    }

    async fn list_token_health(&self) -> Result<Vec<TokenHealth>> {
        sqlx::query(concat!("SELECT ", health_columns!(), " FROM token_health"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(health_from_row)
            .collect()
    }

    async fn put_token_health(&self, h: &TokenHealth) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO token_health (",
            health_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (token_id) DO UPDATE SET last_attempt_at = excluded.last_attempt_at, \
             last_success_at = excluded.last_success_at, failures = excluded.failures, \
             next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, \
             last_read_at = excluded.last_read_at, reads_total = excluded.reads_total"
        ))
        .bind(h.token_id.to_string())
        .bind(opt_ms(h.last_attempt_at))
        .bind(opt_ms(h.last_success_at))
        .bind(h.failures)
        .bind(opt_ms(h.next_attempt_at))
        .bind(h.last_error.clone())
        .bind(opt_ms(h.last_read_at))
        .bind(h.reads_total)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_token_reads(
        &self,
        id: TokenId,
        reads: i64,
        last_read_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_health (token_id, failures, last_read_at, reads_total) VALUES ($1, 0, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET reads_total = token_health.reads_total + excluded.reads_total, \
             last_read_at = CASE WHEN token_health.last_read_at IS NULL OR token_health.last_read_at < excluded.last_read_at \
                            THEN excluded.last_read_at ELSE token_health.last_read_at END",
        )
        .bind(id.to_string())
        .bind(to_millis(last_read_at))
        .bind(reads)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_reminder(
        &self,
        token_id: TokenId,
        refresh_expires_at: Timestamp,
        lead: &str,
        sent_at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO reminders_sent (token_id, refresh_expires_at, lead, sent_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token_id, refresh_expires_at, lead) DO NOTHING",
        )
        .bind(token_id.to_string())
        .bind(to_millis(refresh_expires_at))
        .bind(lead)
        .bind(to_millis(sent_at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_reminders(
        &self,
        token_id: TokenId,
    ) -> Result<Vec<(Timestamp, String, Timestamp)>> {
        sqlx::query("SELECT refresh_expires_at, lead, sent_at FROM reminders_sent WHERE token_id = $1 ORDER BY sent_at, lead")
            .bind(token_id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((ts(r, "refresh_expires_at")?, r.try_get("lead")?, ts(r, "sent_at")?)))
            .collect()
    }

    async fn create_channel(&self, c: &ChannelRecord) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO notification_channels (",
            channel_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&c.id)
        .bind(c.app_id.map(|a| a.to_string()))
        .bind(&c.kind)
        .bind(&c.name)
        .bind(c.config.to_string())
        .bind(opt_sealed_bytes(&c.secret))
        .bind(i64::from(c.enabled))
        .bind(to_millis(c.created_at))
        .bind(to_millis(c.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_channel(&self, id: &str) -> Result<ChannelRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM notification_channels WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("notification channel"))?;
        channel_from_row(&row)
    }

    async fn list_channels(&self) -> Result<Vec<ChannelRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM notification_channels ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(channel_from_row)
        .collect()
    }

    async fn update_channel(&self, c: &ChannelRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE notification_channels SET app_id = $1, kind = $2, name = $3, config = $4, secret = $5, \
             enabled = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(c.app_id.map(|a| a.to_string()))
        .bind(&c.kind)
        .bind(&c.name)
        .bind(c.config.to_string())
        .bind(opt_sealed_bytes(&c.secret))
        .bind(i64::from(c.enabled))
        .bind(to_millis(c.updated_at))
        .bind(&c.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("notification channel"));
        }
        Ok(())
    }

    async fn delete_channel(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("notification channel"));
        }
        Ok(())
    }

    async fn enqueue_job(&self, j: &JobRecord) -> Result<bool> {
        let done = sqlx::query(concat!(
            "INSERT INTO jobs (",
            job_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(&j.id)
        .bind(&j.kind)
        .bind(j.dedupe_key.clone())
        .bind(j.payload.to_string())
        .bind(to_millis(j.run_at))
        .bind(j.attempts)
        .bind(j.lease_owner.clone())
        .bind(opt_ms(j.lease_expires_at))
        .bind(j.last_error.clone())
        .bind(opt_ms(j.done_at))
        .bind(to_millis(j.created_at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_jobs(
        &self,
        kind: &str,
        owner: &str,
        now: Timestamp,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        let candidates: Vec<String> = sqlx::query(
            "SELECT id FROM jobs WHERE kind = $1 AND done_at IS NULL AND run_at <= $2 \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $2) ORDER BY run_at, id LIMIT $3",
        )
        .bind(kind)
        .bind(to_millis(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in candidates {
            // Compare-and-set: of several instances racing for a job, one wins it.
            let row = sqlx::query(concat!(
                "UPDATE jobs SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
                 WHERE id = $3 AND done_at IS NULL AND (lease_expires_at IS NULL OR lease_expires_at <= $4) RETURNING ",
                job_columns!()
            ))
            .bind(owner)
            .bind(to_millis(now + lease))
            .bind(&id)
            .bind(to_millis(now))
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                claimed.push(job_from_row(&row)?);
            }
        }
        Ok(claimed)
    }

    async fn complete_job(&self, id: &str, owner: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET done_at = $1, dedupe_key = NULL, lease_owner = NULL, lease_expires_at = NULL, last_error = NULL \
             WHERE id = $2 AND lease_owner = $3 AND done_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_at: Timestamp,
        error: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET run_at = $1, last_error = $2, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $3 AND lease_owner = $4 AND done_at IS NULL",
        )
        .bind(to_millis(run_at))
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn abandon_job(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        error: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET done_at = $1, last_error = $2, dedupe_key = NULL, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $3 AND lease_owner = $4 AND done_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_jobs(
        &self,
        kind: &str,
        include_done: bool,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        sqlx::query(concat!(
            "SELECT ", job_columns!(), " FROM jobs WHERE kind = $1 AND ($2 = 1 OR done_at IS NULL) ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(kind)
        .bind(i64::from(include_done))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    async fn append_delivery(&self, d: &DeliveryRecord) -> Result<()> {
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
        .bind(to_millis(d.at))
        .bind(&d.outcome)
        .bind(d.status_code)
        .bind(d.error.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        channel_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE ($1 = '' OR channel_id = $1) ORDER BY at DESC, id DESC LIMIT $2"
        ))
        .bind(channel_id.unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_api_key(&self, id: ApiKeyId) -> Result<ApiKeyRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("API key"))?;
        key_from_row(&row)
    }

    async fn list_api_keys(&self, app: Option<AppId>) -> Result<Vec<ApiKeyRecord>> {
        let rows = match app {
            Some(a) => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys WHERE app_id = $1 ORDER BY created_at, id"
                ))
                .bind(a.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM api_keys WHERE kind = 'admin' ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_millis(at))
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            self.get_api_key(id).await?; // NotFound if it never existed; else already revoked
        }
        Ok(())
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, actor, action, object_type, object_id, object_name, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.id)
        .bind(to_millis(e.at))
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.object_type)
        .bind(e.object_id.clone())
        .bind(e.object_name.clone())
        .bind(&e.outcome)
        .bind(e.detail.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let limit = if f.limit <= 0 { 100 } else { f.limit.min(1000) };
        sqlx::query(
            "SELECT id, at, actor, action, object_type, object_id, object_name, outcome, detail \
             FROM audit_events \
             WHERE ($1 = '' OR object_id = $1) AND ($2 = '' OR action = $2) AND ($3 = '' OR actor = $3) \
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(f.object_id.clone().unwrap_or_default())
        .bind(f.action.clone().unwrap_or_default())
        .bind(f.actor.clone().unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
    }

    async fn create_admin(&self, a: &AdminRecord) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO admins (",
            admin_columns!(),
            ") VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&a.id)
        .bind(&a.username)
        .bind(&a.password_hash)
        .bind(to_millis(a.created_at))
        .bind(opt_ms(a.last_login_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_first_admin(&self, a: &AdminRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
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
        .bind(to_millis(a.created_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn count_admins(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM admins")
            .fetch_one(&self.pool)
            .await?
            .try_get::<i64, _>(0)?)
    }

    async fn get_admin(&self, id: &str) -> Result<AdminRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            admin_columns!(),
            " FROM admins WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("admin"))?;
        admin_from_row(&row)
    }

    async fn get_admin_by_username(&self, username: &str) -> Result<AdminRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            admin_columns!(),
            " FROM admins WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("admin"))?;
        admin_from_row(&row)
    }

    async fn record_admin_login(&self, id: &str, at: Timestamp) -> Result<()> {
        let done = sqlx::query("UPDATE admins SET last_login_at = $1 WHERE id = $2")
            .bind(to_millis(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("admin"));
        }
        Ok(())
    }

    async fn create_session(&self, se: &SessionRecord) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&se.id)
        .bind(&se.admin_id)
        .bind(&se.csrf_token)
        .bind(to_millis(se.created_at))
        .bind(to_millis(se.expires_at))
        .bind(to_millis(se.last_seen_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<SessionRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("session"))?;
        Ok(SessionRecord {
            id: row.try_get("id")?,
            admin_id: row.try_get("admin_id")?,
            csrf_token: row.try_get("csrf_token")?,
            created_at: ts(&row, "created_at")?,
            expires_at: ts(&row, "expires_at")?,
            last_seen_at: ts(&row, "last_seen_at")?,
        })
    }

    async fn touch_session(&self, id: &str, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(to_millis(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_sessions(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_millis(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: chrono::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let row = sqlx::query(
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
        .bind(to_millis(now + ttl))
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| lease_from_row(&r, name)).transpose()
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: chrono::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let row = sqlx::query(
            "UPDATE leases SET expires_at = $1 \
             WHERE name = $2 AND owner = $3 AND fencing = $4 AND expires_at > $5 \
             RETURNING owner, fencing, expires_at",
        )
        .bind(to_millis(now + ttl))
        .bind(&lease.name)
        .bind(&lease.owner)
        .bind(lease.fencing)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| lease_from_row(&r, &lease.name)).transpose()
    }

    async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        // Expire rather than delete, so the fencing counter keeps growing.
        let done = sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND owner = $2 AND fencing = $3",
        )
        .bind(&lease.name)
        .bind(&lease.owner)
        .bind(lease.fencing)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Writes which tokens an app uses.
async fn insert_bindings(tx: &mut sqlx::Transaction<'_, sqlx::Any>, app: &AppRecord) -> Result<()> {
    for name in &app.tokens {
        sqlx::query("INSERT INTO app_tokens (app_id, token_name) VALUES ($1, $2)")
            .bind(app.id.to_string())
            .bind(name.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_key(tx: &mut sqlx::Transaction<'_, sqlx::Any>, key: &ApiKeyRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO api_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(key.id.to_string())
    .bind(key.kind.as_str())
    .bind(key.app_id.map(|a| a.to_string()))
    .bind(key.label.as_str())
    .bind(key.secret_hash.clone())
    .bind(to_millis(key.created_at))
    .bind(opt_ms(key.revoked_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
