//! tokenwarden's storage boundary.
//!
//! [`Store`] is the one trait the rest of the product talks to. [`SqlStore`] implements it once,
//! over sqlx's `Any` driver and a strictly portable schema (TEXT, BIGINT, BLOB/BYTEA; instants as
//! epoch milliseconds; flags as 0/1 BIGINT, since `Any` cannot read BOOLEAN on SQLite), on
//! SQLite (the embedded default: WAL, `synchronous=FULL`) and PostgreSQL (several instances
//! behind a load balancer). The backend is chosen from the URL scheme at start-up; the only
//! backend-specific parts are the migrations folder and connection set-up, so queries are
//! written once rather than once per backend.
//!
//! Layout:
//! - `sql/`: [`SqlStore`]; `sql/mod.rs` holds the connection set-up and routes each [`Store`]
//!   method to one file per aggregate (`tokens`, `apps`, `channels`, `admins`, `leases`,
//!   `audit`, `keys`). Each file reads its rows into `#[derive(sqlx::FromRow)]` structs, converted
//!   into the records ([`TokenRecord`], [`AppRecord`], ...) by `TryFrom`: a stored value that does
//!   not parse is [`StoreError::Corrupt`].
//! - `migrate.rs`: sqlx's migrator (`sqlx::migrate!` over `migrations/sqlite` or
//!   `migrations/postgres`, recorded in `_sqlx_migrations` with checksums, under its
//!   PostgreSQL advisory lock), which also adopts databases recorded by the former migrator in
//!   `schema_migrations`.
//! - `records.rs`: what the store keeps; `error.rs`: [`StoreError`], which carries no driver
//!   type.

mod error;
mod migrate;
mod records;
mod sql;

pub use error::{DatabaseErrors, Result, StoreError, database_errors};
pub use migrate::latest_version as latest_schema_version;
pub use records::*;
pub use sql::{Backend, SqlStore, sqlite_path};

use async_trait::async_trait;
use std::sync::Arc;
use tokenwarden_domain::{ApiKeyId, AppId, AppName, Timestamp, TokenId, TokenName};

pub type DynStore = Arc<dyn Store>;

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;

    /// Is the database reachable?
    async fn ping(&self) -> Result<()>;

    /// Is the storage opened still the one in place? Cheap and synchronous (no query): on
    /// SQLite, the database file must still be at its path as the same file, not deleted or
    /// replaced since it was opened (writes to an unlinked file are acknowledged and lost);
    /// [`StoreError::Unavailable`] otherwise. Always `Ok` on PostgreSQL.
    fn check_storage(&self) -> Result<()>;

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);

    // --- metadata -------------------------------------------------------------------------
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` to `value`, replacing any value.
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Sets `key` only if it has no value yet; returns whether it was set.
    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool>;
    /// Removes `key`; returns whether it was there.
    async fn delete_meta(&self, key: &str) -> Result<bool>;

    // --- encryption keys -------------------------------------------------------------------
    async fn list_data_keys(&self) -> Result<Vec<StoredDataKey>>;
    /// Adds a data key; if `active`, it becomes the only active one (in one transaction).
    async fn insert_data_key(&self, key: &StoredDataKey) -> Result<()>;
    /// Removes a data key; refused with `Conflict` while any sealed value still uses it.
    async fn delete_data_key(&self, key_id: &str) -> Result<()>;
    /// Every sealed value in the database, in the columns of [`SealedColumn::ALL`].
    async fn sealed_values(&self) -> Result<Vec<SealedRef>>;
    /// Replaces one sealed value if it is still `r.sealed` (compare-and-swap, so a concurrent
    /// write is never overwritten). Returns whether it was replaced.
    async fn replace_sealed(&self, r: &SealedRef, new: &Sealed) -> Result<bool>;

    // --- apps ------------------------------------------------------------------------------
    /// Creates an app with its token bindings and first API key, all or nothing.
    async fn create_app(&self, app: &AppRecord, first_key: &ApiKeyRecord) -> Result<()>;
    async fn get_app(&self, id: AppId) -> Result<AppRecord>;
    async fn get_app_by_name(&self, name: &AppName) -> Result<AppRecord>;
    /// The app without its bindings, and whether it uses a token named `token`: one row by
    /// primary key, however many tokens the app uses (the read path, on a cache miss).
    async fn app_reading(&self, id: AppId, token: &TokenName) -> Result<AppReading>;
    async fn list_apps(&self) -> Result<Vec<AppRecord>>;
    /// A page of apps by name (keyset: see [`PageRequest`]).
    async fn page_apps(&self, page: &PageRequest<NameKey>) -> Result<Vec<AppRecord>>;
    /// Writes `app` (name, state, bindings) if the stored version is `app.version`; the stored
    /// version becomes `app.version + 1`, and the written record is returned.
    async fn update_app(&self, app: &AppRecord, now: Timestamp) -> Result<AppRecord>;
    /// Deletes an app with its app-level tokens and keys.
    async fn delete_app(&self, id: AppId) -> Result<()>;
    /// Apps that use a token of this name.
    async fn apps_using_token(&self, name: &TokenName) -> Result<Vec<AppRecord>>;

    // --- tokens ----------------------------------------------------------------------------
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    async fn get_token(&self, id: TokenId) -> Result<TokenRecord>;
    /// The token of that name in one scope: `None` = global, `Some(app)` = that app's own.
    async fn find_token(&self, app: Option<AppId>, name: &TokenName) -> Result<TokenRecord>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// A page of tokens, global and app-level, by name then id, narrowed by `filter`.
    async fn page_tokens(
        &self,
        filter: &TokenFilter,
        page: &PageRequest<NameKey>,
    ) -> Result<Vec<TokenRecord>>;
    /// Writes `token` if the stored version is `token.version`; see [`Store::update_app`].
    async fn update_token(&self, token: &TokenRecord, now: Timestamp) -> Result<TokenRecord>;
    /// Like [`Store::update_token`], and only while `lease` is still held (checked in the same
    /// transaction): a holder whose lease expired can never overwrite newer material.
    async fn update_token_under_lease(
        &self,
        token: &TokenRecord,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<TokenRecord>;
    /// A successful refresh in one transaction: the token as [`Store::update_token_under_lease`]
    /// writes it (and refused the same way), the bookkeeping's success (`last_attempt_at` and
    /// `last_success_at`, the failure streak cleared, read counts kept), the audit record, the
    /// lease released, and the pass's next check if given (see [`RefreshCommit::schedule`]).
    /// Returns the token as stored.
    async fn commit_refresh(&self, commit: &RefreshCommit<'_>) -> Result<TokenRecord>;
    async fn delete_token(&self, id: TokenId) -> Result<()>;

    // --- authorization attempts -------------------------------------------------------------
    async fn create_oauth_state(&self, state: &OAuthStateRecord) -> Result<()>;
    /// Marks the state used if it is known, unexpired and unused, atomically: of two
    /// concurrent callbacks with the same state, one wins.
    async fn consume_oauth_state(&self, state_hash: &str, now: Timestamp) -> Result<StateOutcome>;
    /// Deletes attempts that expired before `before`; returns how many.
    async fn purge_oauth_states(&self, before: Timestamp) -> Result<u64>;

    // --- device sign-ins (RFC 8628)
    /// Stores a new device sign-in for its token, replacing the token's previous one (one
    /// transaction).
    async fn start_device_flow(&self, flow: &DeviceFlowRecord) -> Result<()>;
    /// The token's device sign-in, if one was started.
    async fn get_device_flow(&self, token_id: TokenId) -> Result<Option<DeviceFlowRecord>>;
    /// Device sign-ins due for a poll (`next_poll_at <= now`), earliest first, at most `limit`
    /// (an index range: never the whole table).
    async fn due_device_flows(&self, now: Timestamp, limit: i64) -> Result<Vec<DeviceFlowRecord>>;
    /// Writes a polled flow's new state, only while that flow (its `id`) is still pending:
    /// `false` if it was replaced or ended meanwhile.
    async fn update_device_flow(&self, flow: &DeviceFlowRecord) -> Result<bool>;
    // --- signing keys (issue 12) --------------------------------------------------------------
    /// The signing keys of a token, if it has any.
    async fn get_token_keys(&self, id: TokenId) -> Result<Option<TokenKeys>>;
    /// Writes a token's keys: creates the row when `expected_version` is `None` (a `Conflict`
    /// if it exists), else replaces it only if its version is still `expected_version`
    /// (`VersionMismatch` otherwise). Returns the keys as stored (version bumped).
    async fn put_token_keys(
        &self,
        keys: &TokenKeys,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> Result<TokenKeys>;

    // --- refresh bookkeeping -----------------------------------------------------------------
    async fn get_token_health(&self, id: TokenId) -> Result<Option<TokenHealth>>;
    /// A token and its bookkeeping (`None` before its first refresh attempt), read together.
    async fn get_token_with_health(
        &self,
        id: TokenId,
    ) -> Result<(TokenRecord, Option<TokenHealth>)>;
    async fn list_token_health(&self) -> Result<Vec<TokenHealth>>;
    /// Inserts or replaces one token's bookkeeping.
    async fn put_token_health(&self, health: &TokenHealth) -> Result<()>;
    /// Adds `reads` to the read counter and sets the last read time (a periodic flush), and
    /// brings the token's next check forward to its refresh-ahead time (a token in use is
    /// refreshed ahead).
    async fn add_token_reads(&self, id: TokenId, reads: i64, last_read_at: Timestamp)
    -> Result<()>;

    // --- the background pass's schedule ------------------------------------------------------
    // Every write of a token (`create_token`, `update_token*`) or its bookkeeping
    // (`put_token_health`) makes it due at once, so the next pass looks at the new state.
    /// Up to `limit` tokens whose next check is at or before `now`, in the order
    /// `(next_check_at, id)`, starting after `after`: one index range, never the whole table.
    async fn due_tokens(
        &self,
        now: Timestamp,
        after: Option<DueCursor>,
        limit: i64,
    ) -> Result<Vec<DueToken>>;
    /// Stores when the pass next has to look at a token, unless the token or its bookkeeping
    /// was written since it was read with `check_seq`; returns whether it was stored.
    async fn schedule_token(
        &self,
        id: TokenId,
        check_seq: i64,
        schedule: &TokenSchedule,
    ) -> Result<bool>;
    /// Makes every token due at once (the reminder lead times changed); returns how many.
    async fn reschedule_all_tokens(&self) -> Result<u64>;

    // --- reminders -------------------------------------------------------------------------
    /// Records that the reminder `lead` about the refresh token expiring at `refresh_expires_at`
    /// was sent; false if it already was (so each is sent once, across instances).
    async fn record_reminder(
        &self,
        token_id: TokenId,
        refresh_expires_at: Timestamp,
        lead: &str,
        sent_at: Timestamp,
    ) -> Result<bool>;
    /// (refresh_expires_at, lead, sent_at) of a token's reminders.
    async fn list_reminders(
        &self,
        token_id: TokenId,
    ) -> Result<Vec<(Timestamp, String, Timestamp)>>;
    /// The reminders sent most recently, newest first, at most `limit`.
    async fn recent_reminders(&self, limit: i64) -> Result<Vec<SentReminder>>;
    /// Tokens that can be used (healthy or expiring soon) whose `what` (refresh token, client
    /// secret) expires past `bound`, by (that expiry, id), at most `limit`: one keyset page of
    /// that expiry's index (`tokens_by_refresh_expiry`, `tokens_by_client_secret_expiry`). The
    /// reminders coming up are pages of it, one per expiry and lead time
    /// (`ops::channels::upcoming_reminders`).
    async fn tokens_expiring_after(
        &self,
        what: tokenwarden_domain::Expiring,
        bound: ExpiryBound,
        limit: i64,
    ) -> Result<Vec<TokenRecord>>;
    /// What `/metrics` shows from the database, by indexed queries (no row is read per token
    /// beyond the `limit` expiring first): tokens per status, apps per state, the
    /// notifications waiting, and for each expiry (refresh token, client secret) the soonest
    /// of a usable token and the usable tokens expiring before `horizon` (the soonest `limit`,
    /// and how many).
    async fn metric_counts(&self, horizon: Timestamp, limit: i64) -> Result<MetricCounts>;

    // --- notification channels -------------------------------------------------------------
    async fn create_channel(&self, channel: &ChannelRecord) -> Result<()>;
    async fn get_channel(&self, id: &str) -> Result<ChannelRecord>;
    async fn list_channels(&self) -> Result<Vec<ChannelRecord>>;
    /// A page of channels, oldest first.
    async fn page_channels(&self, page: &PageRequest<TimeKey>) -> Result<Vec<ChannelRecord>>;
    /// Writes over the version read (`channel.version`); answers the row as stored.
    async fn update_channel(&self, channel: &ChannelRecord) -> Result<ChannelRecord>;
    async fn delete_channel(&self, id: &str) -> Result<()>;

    // --- jobs ------------------------------------------------------------------------------
    /// Adds a job; with a `dedupe_key` already held by a job not yet done, adds nothing and
    /// returns false.
    async fn enqueue_job(&self, job: &JobRecord) -> Result<bool>;
    /// Claims up to `limit` due jobs of `kind` for `owner` until `now + lease` (jobs whose
    /// earlier lease ran out are claimed again: their holder died).
    async fn claim_jobs(
        &self,
        kind: &str,
        owner: &str,
        now: Timestamp,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<JobRecord>>;
    /// Marks a claimed job done; false if the lease was lost.
    async fn complete_job(&self, id: &str, owner: &str, now: Timestamp) -> Result<bool>;
    /// Releases a claimed job to run again at `run_at` after a failed attempt.
    async fn retry_job(
        &self,
        id: &str,
        owner: &str,
        run_at: Timestamp,
        error: &str,
    ) -> Result<bool>;
    /// Gives a job up for good (kept, with its error, and done_at set).
    async fn abandon_job(&self, id: &str, owner: &str, now: Timestamp, error: &str)
    -> Result<bool>;
    async fn list_jobs(&self, kind: &str, include_done: bool, limit: i64)
    -> Result<Vec<JobRecord>>;

    // --- delivery log ----------------------------------------------------------------------
    async fn append_delivery(&self, delivery: &DeliveryRecord) -> Result<()>;
    /// Newest first; all channels when `channel_id` is `None`.
    async fn list_deliveries(
        &self,
        channel_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>>;
    /// A page of one channel's delivery log, newest first (`after` is the previous page's
    /// oldest entry).
    async fn page_deliveries(
        &self,
        channel_id: &str,
        page: &PageRequest<TimeKey>,
    ) -> Result<Vec<DeliveryRecord>>;

    // --- API keys --------------------------------------------------------------------------
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn get_api_key(&self, id: ApiKeyId) -> Result<ApiKeyRecord>;
    async fn list_api_keys(&self, app: Option<AppId>) -> Result<Vec<ApiKeyRecord>>;
    /// A page of an app's API keys, oldest first.
    async fn page_api_keys(
        &self,
        app: AppId,
        page: &PageRequest<TimeKey>,
    ) -> Result<Vec<ApiKeyRecord>>;
    async fn revoke_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()>;
    /// Keyset page of the admin tokens by (created_at, id), oldest first.
    async fn page_admin_tokens(&self, page: &PageRequest<TimeKey>) -> Result<Vec<ApiKeyRecord>>;

    // --- audit -----------------------------------------------------------------------------
    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;
    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;
    /// A page of the audit log, newest first, narrowed by `filter` (whose `limit` is ignored:
    /// the page's applies).
    async fn page_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest<TimeKey>,
    ) -> Result<Vec<AuditEvent>>;
    /// Deletes at most `limit` of the oldest records older than `before`; returns how many.
    /// Bounded, so a caller prunes a large backlog in batches.
    async fn prune_audit(&self, before: Timestamp, limit: i64) -> Result<u64>;

    // --- admins and UI sessions -----------------------------------------------------------
    /// Adds an admin; `Conflict` if the username is taken.
    async fn create_admin(&self, admin: &AdminRecord) -> Result<()>;
    /// Adds the admin only while there is no admin at all (the one-time setup link); of two
    /// concurrent calls at most one succeeds. Returns whether it was added.
    async fn create_first_admin(&self, admin: &AdminRecord) -> Result<bool>;
    async fn count_admins(&self) -> Result<i64>;
    async fn get_admin(&self, id: &str) -> Result<AdminRecord>;
    async fn get_admin_by_username(&self, username: &str) -> Result<AdminRecord>;
    async fn record_admin_login(&self, id: &str, at: Timestamp) -> Result<()>;
    /// Keyset page of admins by username (unique: the key's `id` is not needed to break ties).
    async fn page_admins(&self, page: &PageRequest<NameKey>) -> Result<Vec<AdminRecord>>;
    /// Replaces an admin's password hash and, in the same transaction, ends every session of
    /// that admin but `keep_session` (the session making the change, if it is theirs).
    /// `NotFound` if the admin is gone.
    async fn set_admin_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<()>;
    /// Removes an admin and their sessions unless they are the last admin: of concurrent
    /// removals (on any instance) that would leave none, all but one are refused
    /// ([`AdminRemoval::LastAdmin`]). `NotFound` if the admin is gone.
    async fn delete_admin(&self, id: &str) -> Result<AdminRemoval>;
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session whose id (the hash of its cookie) is `id`; expiry is the caller's to check.
    async fn get_session(&self, id: &str) -> Result<SessionRecord>;
    async fn touch_session(&self, id: &str, at: Timestamp) -> Result<()>;
    /// Ends a session; returns whether it existed.
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// Deletes sessions whose absolute expiry is at or before `now`; returns how many.
    async fn purge_sessions(&self, now: Timestamp) -> Result<u64>;

    // --- leases ----------------------------------------------------------------------------
    /// Takes the named lease for `ttl` if it is free, expired, or already `owner`'s.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: chrono::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>>;
    /// Extends a lease still held; `None` if it was lost.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: chrono::Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>>;
    /// Gives a lease up; returns false if it was no longer ours.
    async fn release_lease(&self, lease: &Lease) -> Result<bool>;
    /// Gives up every lease `owner` still holds, and those of its attempts (`owner:<attempt>`,
    /// as `ops::grant::refresh` names them) (an instance stopping with work cut); returns how
    /// many.
    async fn release_leases_of(&self, owner: &str) -> Result<u64>;
}
