//! The core: every operation a user can do, written once.
//!
//! The JSON API (`crate::api`), the web UI (`crate::ui`) and the CLI (the `tokenwarden` binary)
//! are adapters: they parse their input into a typed command ([`tokens::NewToken`],
//! [`tokens::TokenChanges`], [`apps::NewApp`], [`channels::NewChannel`], ...), call one function
//! here, and render its answer or its [`Error`]. The function does the validation, the store
//! writes, the cache invalidation and the audit record. No adapter writes through the store.
//!
//! - [`tokens`]: create, change, rename, delete a token; pasted client secrets; Snowflake setup.
//! - [`grant`]: getting and keeping token material: [`grant::authorize`] (start a sign-in,
//!   complete the callback), [`grant::refresh`] (under a lease, with backoff and health),
//!   [`grant::read`] (the usable token an app reads, [`grant::read::resolve_token`]),
//!   [`grant::test`] (the connection test).
//! - [`apps`]: apps, their API keys, start and stop by an admin.
//! - [`channels`]: notification channels, test sends, reminder lead times.
//! - [`admins`]: admins (UI sign-in), the one-time setup link, admin tokens.
//! - [`keys`]: data-key rotation.
//! - [`lifecycle`]: what a token's death or re-authorization does to the apps that use it.
//! - [`engine`]: the background pass (refresh ahead, reminders, expiry, deliveries).
//! - [`delivery`]: the durable notification queue.
//! - [`audit`]: the audit record every operation writes.
//! - [`lists`]: pages of every list (the limit rules and the opaque cursor).
//! - [`metrics`]: the Prometheus metrics the core counts, who may scrape them, and rendering.
//! - [`transfer`]: export and import of the configuration as one JSON document.

pub mod admins;
pub mod apps;
pub mod audit;
pub mod channels;
pub mod delivery;
pub mod engine;
pub mod grant;
pub mod keys;
pub mod lifecycle;
pub mod lists;
pub mod metrics;
pub mod tokens;
pub mod transfer;

use tokenwarden_store::StoreError;

/// Why an operation did not happen. Adapters map each variant to their own answer (the JSON
/// API to a status and a stable code, the UI to a sentence on the page, the CLI to a message).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command is invalid; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// `{0} not found`, e.g. `token "x"`.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule (a name already taken) or a state that refuses the operation.
    #[error("{0}")]
    Conflict(String),
    /// The object changed since the version the caller read.
    #[error("{0}")]
    VersionMismatch(String),
    /// The token exists but cannot give an access token: `token_not_authorized`,
    /// `token_needs_reauthorization`.
    #[error("{message}")]
    TokenUnusable { code: &'static str, message: String },
    /// The provider is down (or busy elsewhere) and no valid access token is left.
    #[error("{message}")]
    ProviderUnavailable { message: String, retry_after: u64 },
    /// The database cannot be reached.
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// Anything else: the cause is logged under this reference, never shown.
    #[error("internal error; see the server log (reference {0})")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How often a read-modify-write is tried at most when the row keeps changing under it.
/// Each round of contending writers lets at least one through, so this bounds how many
/// writers to one row can wait on each other (the 40 concurrent edits of one token
/// all apply) without looping for ever.
const WRITE_ATTEMPTS: u32 = 64;

/// Runs one read-modify-write `attempt` (read the row, apply the change, write it under the
/// version read). A caller that sent no `version` of its own means "apply to the current
/// state": when someone else wrote in between (a refresh, another edit), the attempt is made
/// again on the new state after a short random pause (so the writers that lost a round do not
/// all collide again), up to [`WRITE_ATTEMPTS`] times. A caller that sent a version is told it
/// is stale.
pub(crate) async fn retrying<T, F: Future<Output = Result<T>>>(
    client_version: Option<i64>,
    mut attempt: impl FnMut() -> F,
) -> Result<T> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(Error::VersionMismatch(_))
                if client_version.is_none() && tries < WRITE_ATTEMPTS =>
            {
                // 0 to (tries, at most 20) ms: uuid's random bits, no extra dependency.
                let spread = u128::from(tries.min(20)) + 1;
                let pause = u64::try_from(uuid::Uuid::new_v4().as_u128() % spread).unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

impl Error {
    /// Logs the cause under a short reference and hides it from the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        tracing::error!(%reference, error = %cause, "internal error");
        Error::Internal(reference)
    }

    /// A store `NotFound` named for the caller (`token "x"`); other errors unchanged.
    pub fn not_found_as(what: impl Into<String>) -> impl FnOnce(StoreError) -> Error {
        move |e| match e {
            StoreError::NotFound(_) => Error::NotFound(what.into()),
            other => other.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(what.to_owned()),
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::VersionMismatch(what) => Error::VersionMismatch(format!(
                "the {what} was changed by someone else; read it again and retry"
            )),
            StoreError::LeaseLost(_) => Error::ProviderUnavailable {
                message: "the token was being refreshed elsewhere; retry shortly".into(),
                retry_after: 2,
            },
            other if crate::error::store_unavailable(&other) => {
                tracing::warn!(error = %other, "database unavailable");
                Error::Unavailable
            }
            other => Error::internal(other),
        }
    }
}
