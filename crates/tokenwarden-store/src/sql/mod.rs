//! [`SqlStore`]: the one implementation of [`Store`], over sqlx's `Any` driver.
//!
//! One file per aggregate, each with its row structs (`#[derive(FromRow)]`, converted into the
//! records with `TryFrom`) and its queries as free functions over the pool:
//! [`tokens`] (tokens, authorization attempts, refresh bookkeeping, reminders), [`apps`] (apps,
//! their token bindings, API keys), [`channels`] (notification channels, jobs, the delivery
//! log), [`admins`] (admins and UI sessions), [`leases`], [`audit`] and [`keys`] (data keys and
//! sealed values). The `impl Store` below only routes each call to its aggregate; the metadata
//! table, four one-line queries, lives here.

mod admins;
mod apps;
#[macro_use]
mod audit; // before `tokens`: its macros are used there
mod channels;
mod device;
mod keys;
mod leases;
mod token_keys;
mod tokens;

use crate::records::*;
use crate::{Result, Store, StoreError, migrate};
use async_trait::async_trait;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use std::time::Duration;
use tokenwarden_domain::clock::{from_millis, to_millis};
use tokenwarden_domain::{ApiKeyId, AppId, AppName, Timestamp, TokenId, TokenName};

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
    /// SQLite: the database file as opened, to notice it deleted or replaced.
    file: Option<FileIdentity>,
}

/// A file's path and identity (device and inode) when it was opened.
#[derive(Debug, Clone)]
struct FileIdentity {
    path: std::path::PathBuf,
    id: (u64, u64),
}

impl FileIdentity {
    #[cfg(unix)]
    fn of(path: &std::path::Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    fn of(path: &std::path::Path) -> Option<(u64, u64)> {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

/// The file a `sqlite:` URL names; `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates the SQLite file readable by its owner only (0600), before SQLite creates it with
/// the process's umask; its `-wal` and `-shm` files take the database file's mode.
fn create_private(path: &std::path::Path) {
    if path.exists() {
        return;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    // If this fails, SQLite creates the file (or reports why it cannot) just below.
    let _ = opts.open(path);
}

/// What SQLite runs on every new connection.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                              PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";

/// One connection made directly (with SQLite's pragmas), within 10 s: the driver's own reason
/// when it fails, which a pool reduces to "timed out".
async fn direct_attempt(url: &str, backend: Backend) -> Option<sqlx::Error> {
    let url = match backend {
        Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
        _ => url.to_owned(),
    };
    let attempt = async {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await?;
        if backend == Backend::Sqlite {
            sqlx::raw_sql(SQLITE_PRAGMAS).execute(&mut conn).await?;
        }
        sqlx::Connection::close(conn).await
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Err(e)) => Some(e),
        _ => None,
    }
}

impl SqlStore {
    /// Connects (creating a SQLite file if needed) without migrating.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let file = match backend {
            Backend::Sqlite => sqlite_path(url),
            Backend::Postgres => None,
        };
        if let Some(path) = &file {
            create_private(path);
        }
        if backend == Backend::Sqlite
            && let Some(e) = direct_attempt(url, backend).await
        {
            // Before the pool: its retries would log the same cause again and again and end
            // in "timed out" (a file that is not a database, a locked or unreadable file).
            return Err(e.into());
        }
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
                            sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => match options.max_connections(16).connect(url).await {
                Ok(pool) => pool,
                // The pool retries until its timeout and then says only that it timed out: one
                // direct attempt says why (connection refused, authentication, no database).
                Err(sqlx::Error::PoolTimedOut) => {
                    return Err(direct_attempt(url, backend)
                        .await
                        .unwrap_or(sqlx::Error::PoolTimedOut)
                        .into());
                }
                Err(e) => return Err(e.into()),
            },
        };
        let file =
            file.and_then(|path| FileIdentity::of(&path).map(|id| FileIdentity { path, id }));
        Ok(Self {
            pool,
            backend,
            file,
        })
    }

    /// Connects and applies pending migrations.
    ///
    /// `now` is not used any more (sqlx's migrator stamps `_sqlx_migrations.installed_on` with
    /// the database's clock); it is kept so that callers need not change.
    pub async fn open(url: &str, now: Timestamp) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate(now).await?;
        Ok(store)
    }

    /// Applies pending migrations (sqlx's migrator, recorded in `_sqlx_migrations`; a database
    /// recorded by the former migrator in `schema_migrations` is adopted first); returns how
    /// many this call applied. Safe to run from several instances at once on PostgreSQL (sqlx's
    /// advisory lock). `now` is unused, as for [`SqlStore::open`].
    pub async fn migrate(&self, _now: Timestamp) -> Result<usize> {
        migrate::run(&self.pool, self.backend).await
    }

    /// The schema version of the database: the newest migration applied (0 before any).
    pub async fn schema_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(sqlx::Row::try_get::<i64, _>(&row, 0)?)
    }

    /// SQLite only: writes a consistent copy of the whole database to the new file `path`
    /// (`VACUUM INTO`: one read transaction, so writers carry on and the copy is the state at
    /// one instant, with no WAL beside it). Refused on PostgreSQL.
    pub async fn vacuum_into(&self, path: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "VACUUM INTO is SQLite's; back PostgreSQL up with pg_dump".into(),
            ));
        }
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Conflict("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// PostgreSQL: how many tables the connection's current schema holds (a restore target
    /// must hold none). SQLite: how many tables the file holds.
    pub async fn table_count(&self) -> Result<i64> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            }
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        };
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        Ok(sqlx::Row::try_get::<i64, _>(&row, 0)?)
    }

    /// Runs a read-only diagnostic query returning one text or integer value (e.g.
    /// `PRAGMA journal_mode`).
    pub async fn diagnostic(&self, sql: &'static str) -> Result<String> {
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        if let Ok(s) = sqlx::Row::try_get::<String, _>(&row, 0) {
            return Ok(s);
        }
        Ok(sqlx::Row::try_get::<i64, _>(&row, 0)?.to_string())
    }
}

// --- conversions shared by the aggregates ---------------------------------------------------

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// A stored value that must parse (`what` names the column in the error).
fn parse<T, E: std::fmt::Display>(what: &str, parsed: Result<T, E>) -> Result<T> {
    parsed.map_err(|e| corrupt(what, e))
}

fn parse_id<T>(what: &str, value: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| corrupt(what, format!("{value:?} is not a UUID")))
}

fn parse_opt_app_id(what: &str, value: Option<String>) -> Result<Option<AppId>> {
    value.map(|v| parse_id(what, &v, AppId::parse)).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T> {
    parse(what, serde_json::from_str(value))
}

/// A page's bounds as bound parameters: the key to start after (the empty name and id sort
/// before every row, so a first page needs no second query) and the limit (at least 0).
fn name_after(page: &PageRequest<NameKey>) -> (&str, &str, i64) {
    match &page.after {
        Some(k) => (k.name.as_str(), k.id.as_str(), page.limit.max(0)),
        None => ("", "", page.limit.max(0)),
    }
}

/// Like [`name_after`] for lists ordered by time. `descending`: newest first, so the first page
/// starts before the end of time.
fn time_after(page: &PageRequest<TimeKey>, descending: bool) -> (i64, &str, i64) {
    match &page.after {
        Some(k) => (k.at, k.id.as_str(), page.limit.max(0)),
        None if descending => (i64::MAX, "", page.limit.max(0)),
        None => (i64::MIN, "", page.limit.max(0)),
    }
}

fn ts(ms: i64) -> Timestamp {
    from_millis(ms)
}

fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(from_millis)
}

fn ms(t: Timestamp) -> i64 {
    to_millis(t)
}

fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(to_millis)
}

fn sealed(bytes: Option<Vec<u8>>) -> Option<Sealed> {
    bytes.map(Sealed)
}

fn sealed_bytes(s: &Option<Sealed>) -> Option<Vec<u8>> {
    s.as_ref().map(|s| s.0.clone())
}

// --- metadata -------------------------------------------------------------------------------

mod meta {
    use crate::Result;
    use sqlx::AnyPool;

    pub(super) async fn get(pool: &AnyPool, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?)
    }

    pub(super) async fn set(pool: &AnyPool, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub(super) async fn set_if_absent(pool: &AnyPool, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete(pool: &AnyPool, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

// --- the trait: each call routed to its aggregate --------------------------------------------

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn check_storage(&self) -> Result<()> {
        match &self.file {
            Some(f) if FileIdentity::of(&f.path) != Some(f.id) => {
                Err(StoreError::Unavailable(format!(
                    "the database file {} was deleted or replaced while in use",
                    f.path.display()
                )))
            }
            _ => Ok(()),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    // --- metadata
    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        meta::get(&self.pool, key).await
    }
    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        meta::set(&self.pool, key, value).await
    }
    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        meta::set_if_absent(&self.pool, key, value).await
    }
    async fn delete_meta(&self, key: &str) -> Result<bool> {
        meta::delete(&self.pool, key).await
    }

    // --- encryption keys
    async fn list_data_keys(&self) -> Result<Vec<StoredDataKey>> {
        keys::list(&self.pool).await
    }
    async fn insert_data_key(&self, key: &StoredDataKey) -> Result<()> {
        keys::insert(&self.pool, key).await
    }
    async fn delete_data_key(&self, key_id: &str) -> Result<()> {
        keys::delete(&self.pool, key_id).await
    }
    async fn sealed_values(&self) -> Result<Vec<SealedRef>> {
        keys::sealed_values(&self.pool).await
    }
    async fn replace_sealed(&self, r: &SealedRef, new: &Sealed) -> Result<bool> {
        keys::replace_sealed(&self.pool, r, new).await
    }

    // --- apps
    async fn create_app(&self, app: &AppRecord, first_key: &ApiKeyRecord) -> Result<()> {
        apps::create(&self.pool, app, first_key).await
    }
    async fn get_app(&self, id: AppId) -> Result<AppRecord> {
        apps::get(&self.pool, id).await
    }
    async fn get_app_by_name(&self, name: &AppName) -> Result<AppRecord> {
        apps::get_by_name(&self.pool, name).await
    }
    async fn app_reading(&self, id: AppId, token: &TokenName) -> Result<AppReading> {
        apps::reading(&self.pool, id, token).await
    }
    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        apps::list(&self.pool).await
    }
    async fn page_apps(&self, page: &PageRequest<NameKey>) -> Result<Vec<AppRecord>> {
        apps::page(&self.pool, page).await
    }
    async fn update_app(&self, app: &AppRecord, now: Timestamp) -> Result<AppRecord> {
        apps::update(&self.pool, app, now).await
    }
    async fn delete_app(&self, id: AppId) -> Result<()> {
        apps::delete(&self.pool, id).await
    }
    async fn apps_using_token(&self, name: &TokenName) -> Result<Vec<AppRecord>> {
        apps::using_token(&self.pool, name).await
    }

    // --- tokens
    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        tokens::create(&self.pool, token).await
    }
    async fn get_token(&self, id: TokenId) -> Result<TokenRecord> {
        tokens::get(&self.pool, id).await
    }
    async fn find_token(&self, app: Option<AppId>, name: &TokenName) -> Result<TokenRecord> {
        tokens::find(&self.pool, app, name).await
    }
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        tokens::list(&self.pool).await
    }
    async fn page_tokens(
        &self,
        filter: &TokenFilter,
        page: &PageRequest<NameKey>,
    ) -> Result<Vec<TokenRecord>> {
        tokens::page(&self.pool, filter, page).await
    }
    async fn update_token(&self, token: &TokenRecord, now: Timestamp) -> Result<TokenRecord> {
        tokens::update(&self.pool, token, now, None).await
    }
    async fn update_token_under_lease(
        &self,
        token: &TokenRecord,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<TokenRecord> {
        tokens::update(&self.pool, token, now, Some(lease)).await
    }
    async fn commit_refresh(&self, commit: &RefreshCommit<'_>) -> Result<TokenRecord> {
        tokens::commit_refresh(&self.pool, self.backend, commit).await
    }
    async fn delete_token(&self, id: TokenId) -> Result<()> {
        tokens::delete(&self.pool, id).await
    }

    // --- authorization attempts
    async fn create_oauth_state(&self, state: &OAuthStateRecord) -> Result<()> {
        tokens::create_oauth_state(&self.pool, state).await
    }
    async fn consume_oauth_state(&self, state_hash: &str, now: Timestamp) -> Result<StateOutcome> {
        tokens::consume_oauth_state(&self.pool, state_hash, now).await
    }
    async fn purge_oauth_states(&self, before: Timestamp) -> Result<u64> {
        tokens::purge_oauth_states(&self.pool, before).await
    }

    // --- device sign-ins
    async fn start_device_flow(&self, flow: &DeviceFlowRecord) -> Result<()> {
        device::start(&self.pool, flow).await
    }
    async fn get_device_flow(&self, token_id: TokenId) -> Result<Option<DeviceFlowRecord>> {
        device::get(&self.pool, token_id).await
    }
    async fn due_device_flows(&self, now: Timestamp, limit: i64) -> Result<Vec<DeviceFlowRecord>> {
        device::due(&self.pool, now, limit).await
    }
    async fn update_device_flow(&self, flow: &DeviceFlowRecord) -> Result<bool> {
        device::update(&self.pool, flow).await
    }

    // --- refresh bookkeeping
    async fn get_token_keys(&self, id: TokenId) -> Result<Option<TokenKeys>> {
        token_keys::get(&self.pool, id).await
    }
    async fn put_token_keys(
        &self,
        keys: &TokenKeys,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> Result<TokenKeys> {
        token_keys::put(&self.pool, keys, expected_version, now).await
    }

    async fn get_token_health(&self, id: TokenId) -> Result<Option<TokenHealth>> {
        tokens::get_health(&self.pool, id).await
    }
    async fn get_token_with_health(
        &self,
        id: TokenId,
    ) -> Result<(TokenRecord, Option<TokenHealth>)> {
        tokens::get_with_health(&self.pool, id).await
    }
    async fn list_token_health(&self) -> Result<Vec<TokenHealth>> {
        tokens::list_health(&self.pool).await
    }
    async fn put_token_health(&self, health: &TokenHealth) -> Result<()> {
        tokens::put_health(&self.pool, health).await
    }
    async fn add_token_reads(
        &self,
        id: TokenId,
        reads: i64,
        last_read_at: Timestamp,
    ) -> Result<()> {
        tokens::add_reads(&self.pool, id, reads, last_read_at).await
    }

    // --- the background pass's schedule
    async fn due_tokens(
        &self,
        now: Timestamp,
        after: Option<DueCursor>,
        limit: i64,
    ) -> Result<Vec<DueToken>> {
        tokens::due(&self.pool, now, after, limit).await
    }
    async fn schedule_token(
        &self,
        id: TokenId,
        check_seq: i64,
        schedule: &TokenSchedule,
    ) -> Result<bool> {
        tokens::schedule(&self.pool, id, check_seq, schedule).await
    }
    async fn reschedule_all_tokens(&self) -> Result<u64> {
        tokens::reschedule_all(&self.pool).await
    }

    // --- reminders
    async fn record_reminder(
        &self,
        token_id: TokenId,
        refresh_expires_at: Timestamp,
        lead: &str,
        sent_at: Timestamp,
    ) -> Result<bool> {
        tokens::record_reminder(&self.pool, token_id, refresh_expires_at, lead, sent_at).await
    }
    async fn list_reminders(
        &self,
        token_id: TokenId,
    ) -> Result<Vec<(Timestamp, String, Timestamp)>> {
        tokens::list_reminders(&self.pool, token_id).await
    }
    async fn recent_reminders(&self, limit: i64) -> Result<Vec<SentReminder>> {
        tokens::recent_reminders(&self.pool, limit).await
    }
    async fn tokens_expiring_after(
        &self,
        what: tokenwarden_domain::Expiring,
        bound: ExpiryBound,
        limit: i64,
    ) -> Result<Vec<TokenRecord>> {
        tokens::expiring_after(&self.pool, what, bound, limit).await
    }
    async fn metric_counts(&self, horizon: Timestamp, limit: i64) -> Result<MetricCounts> {
        tokens::metric_counts(&self.pool, horizon, limit).await
    }

    // --- notification channels
    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()> {
        channels::create(&self.pool, channel).await
    }
    async fn get_channel(&self, id: &str) -> Result<ChannelRecord> {
        channels::get(&self.pool, id).await
    }
    async fn list_channels(&self) -> Result<Vec<ChannelRecord>> {
        channels::list(&self.pool).await
    }
    async fn page_channels(&self, page: &PageRequest<TimeKey>) -> Result<Vec<ChannelRecord>> {
        channels::page(&self.pool, page).await
    }
    async fn update_channel(&self, channel: &ChannelRecord) -> Result<ChannelRecord> {
        channels::update(&self.pool, channel).await
    }
    async fn delete_channel(&self, id: &str) -> Result<()> {
        channels::delete(&self.pool, id).await
    }

    // --- jobs
    async fn enqueue_job(&self, job: &JobRecord) -> Result<bool> {
        channels::enqueue_job(&self.pool, job).await
    }
    async fn claim_jobs(
        &self,
        kind: &str,
        owner: &str,
        now: Timestamp,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        channels::claim_jobs(&self.pool, kind, owner, now, lease, limit).await
    }
    async fn complete_job(&self, id: &str, owner: &str, now: Timestamp) -> Result<bool> {
        channels::complete_job(&self.pool, id, owner, now).await
    }
    async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_at: Timestamp,
        error: &str,
    ) -> Result<bool> {
        channels::retry_job(&self.pool, id, owner, run_at, error).await
    }
    async fn abandon_job(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        error: &str,
    ) -> Result<bool> {
        channels::abandon_job(&self.pool, id, owner, now, error).await
    }
    async fn list_jobs(
        &self,
        kind: &str,
        include_done: bool,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        channels::list_jobs(&self.pool, kind, include_done, limit).await
    }

    // --- delivery log
    async fn append_delivery(&self, delivery: &DeliveryRecord) -> Result<()> {
        channels::append_delivery(&self.pool, delivery).await
    }
    async fn list_deliveries(
        &self,
        channel_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>> {
        channels::list_deliveries(&self.pool, channel_id, limit).await
    }
    async fn page_deliveries(
        &self,
        channel_id: &str,
        page: &PageRequest<TimeKey>,
    ) -> Result<Vec<DeliveryRecord>> {
        channels::page_deliveries(&self.pool, channel_id, page).await
    }

    // --- API keys
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        apps::create_api_key(&self.pool, key).await
    }
    async fn get_api_key(&self, id: ApiKeyId) -> Result<ApiKeyRecord> {
        apps::get_api_key(&self.pool, id).await
    }
    async fn list_api_keys(&self, app: Option<AppId>) -> Result<Vec<ApiKeyRecord>> {
        apps::list_api_keys(&self.pool, app).await
    }
    async fn page_api_keys(
        &self,
        app: AppId,
        page: &PageRequest<TimeKey>,
    ) -> Result<Vec<ApiKeyRecord>> {
        apps::page_api_keys(&self.pool, app, page).await
    }
    async fn revoke_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()> {
        apps::revoke_api_key(&self.pool, id, at).await
    }
    async fn page_admin_tokens(&self, page: &PageRequest<TimeKey>) -> Result<Vec<ApiKeyRecord>> {
        apps::page_admin_tokens(&self.pool, page).await
    }

    // --- audit
    async fn append_audit(&self, event: &AuditEvent) -> Result<()> {
        audit::append(&self.pool, event).await
    }
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        audit::list(&self.pool, filter).await
    }
    async fn page_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest<TimeKey>,
    ) -> Result<Vec<AuditEvent>> {
        audit::page(&self.pool, filter, page).await
    }

    async fn prune_audit(&self, before: Timestamp, limit: i64) -> Result<u64> {
        audit::prune(&self.pool, before, limit).await
    }

    // --- admins and UI sessions
    async fn create_admin(&self, admin: &AdminRecord) -> Result<()> {
        admins::create(&self.pool, admin).await
    }
    async fn create_first_admin(&self, admin: &AdminRecord) -> Result<bool> {
        admins::create_first(&self.pool, admin).await
    }
    async fn count_admins(&self) -> Result<i64> {
        admins::count(&self.pool).await
    }
    async fn get_admin(&self, id: &str) -> Result<AdminRecord> {
        admins::get(&self.pool, id).await
    }
    async fn get_admin_by_username(&self, username: &str) -> Result<AdminRecord> {
        admins::get_by_username(&self.pool, username).await
    }
    async fn record_admin_login(&self, id: &str, at: Timestamp) -> Result<()> {
        admins::record_login(&self.pool, id, at).await
    }
    async fn page_admins(&self, page: &PageRequest<NameKey>) -> Result<Vec<AdminRecord>> {
        admins::page(&self.pool, page).await
    }
    async fn set_admin_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<()> {
        admins::set_password(&self.pool, id, password_hash, keep_session).await
    }
    async fn delete_admin(&self, id: &str) -> Result<AdminRemoval> {
        admins::delete(&self.pool, id).await
    }
    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        admins::create_session(&self.pool, session).await
    }
    async fn get_session(&self, id: &str) -> Result<SessionRecord> {
        admins::get_session(&self.pool, id).await
    }
    async fn touch_session(&self, id: &str, at: Timestamp) -> Result<()> {
        admins::touch_session(&self.pool, id, at).await
    }
    async fn delete_session(&self, id: &str) -> Result<bool> {
        admins::delete_session(&self.pool, id).await
    }
    async fn purge_sessions(&self, now: Timestamp) -> Result<u64> {
        admins::purge_sessions(&self.pool, now).await
    }

    // --- leases
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: chrono::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        leases::acquire(&self.pool, name, owner, ttl, now).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: chrono::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        leases::renew(&self.pool, lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        leases::release(&self.pool, lease).await
    }
    async fn release_leases_of(&self, owner: &str) -> Result<u64> {
        leases::release_all_of(&self.pool, owner).await
    }
}
