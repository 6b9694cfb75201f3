//! tokenwarden's storage boundary.
//!
//! [`Store`] is the one trait the rest of the product talks to. [`SqlStore`] implements it once,
//! over a strictly portable schema (TEXT, BIGINT, BLOB/BYTEA; instants as epoch milliseconds), on
//! SQLite (the embedded default: WAL, `synchronous=FULL`) and PostgreSQL (several instances behind
//! a load balancer). The backend is chosen from the URL scheme at start-up; the only
//! backend-specific parts are the migrations folder and connection set-up, so queries are
//! written once rather than once per backend.

mod error;
mod migrate;
mod records;
mod sql;

pub use error::{Result, StoreError};
pub use records::*;
pub use sql::{Backend, SqlStore};
pub use sqlx::Error as SqlxError;

use async_trait::async_trait;
use std::sync::Arc;
use tokenwarden_domain::{ApiKeyId, AppId, AppName, Timestamp, TokenId, TokenName};

/// Every sealed column: (table, column). Re-encryption walks exactly these.
pub const SEALED_COLUMNS: &[(&str, &str)] = &[
    ("tokens", "client_secret"),
    ("tokens", "client_secret_2"),
    ("tokens", "access_token"),
    ("tokens", "refresh_token"),
    ("notification_channels", "secret"),
    ("oauth_states", "verifier"),
];

pub type DynStore = Arc<dyn Store>;

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;

    /// Is the database reachable?
    async fn ping(&self) -> Result<()>;

    /// Closes every connection; later calls fail.
    async fn close(&self);

    // --- metadata -------------------------------------------------------------------------
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` only if it has no value yet; returns whether it was set.
    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<bool>;

    // --- encryption keys -------------------------------------------------------------------
    async fn list_data_keys(&self) -> Result<Vec<StoredDataKey>>;
    /// Adds a data key; if `active`, it becomes the only active one (in one transaction).
    async fn insert_data_key(&self, key: &StoredDataKey) -> Result<()>;
    /// Removes a data key; refused with `Conflict` while any sealed value still uses it.
    async fn delete_data_key(&self, key_id: &str) -> Result<()>;
    /// Every sealed value in the database.
    async fn sealed_values(&self) -> Result<Vec<SealedRef>>;
    /// Replaces one sealed value if it is still `r.sealed` (compare-and-swap, so a concurrent
    /// write is never overwritten). Returns whether it was replaced.
    async fn replace_sealed(&self, r: &SealedRef, new: &Sealed) -> Result<bool>;

    // --- apps ------------------------------------------------------------------------------
    /// Creates an app with its token bindings and first API key, all or nothing.
    async fn create_app(&self, app: &AppRecord, first_key: &ApiKeyRecord) -> Result<()>;
    async fn get_app(&self, id: AppId) -> Result<AppRecord>;
    async fn get_app_by_name(&self, name: &AppName) -> Result<AppRecord>;
    async fn list_apps(&self) -> Result<Vec<AppRecord>>;
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
    async fn delete_token(&self, id: TokenId) -> Result<()>;

    // --- authorization attempts -------------------------------------------------------------
    async fn create_oauth_state(&self, state: &OAuthStateRecord) -> Result<()>;
    /// Marks the state used if it is known, unexpired and unused, atomically: of two
    /// concurrent callbacks with the same state, one wins.
    async fn consume_oauth_state(&self, state_hash: &str, now: Timestamp) -> Result<StateOutcome>;
    /// Deletes attempts that expired before `before`; returns how many.
    async fn purge_oauth_states(&self, before: Timestamp) -> Result<u64>;

    // --- API keys --------------------------------------------------------------------------
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn get_api_key(&self, id: ApiKeyId) -> Result<ApiKeyRecord>;
    async fn list_api_keys(&self, app: Option<AppId>) -> Result<Vec<ApiKeyRecord>>;
    async fn revoke_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<()>;

    // --- audit -----------------------------------------------------------------------------
    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;
    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;

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
}
