use std::sync::atomic::{AtomicU64, Ordering};

/// What can go wrong in the store. `NotFound`, `Conflict` and `VersionMismatch` are expected
/// outcomes callers act on; `Unavailable` means the database cannot be reached right now (worth
/// a retry later); `Database` is everything else.
///
/// No variant carries a driver type: the database's own message is kept as text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken (e.g. an app name already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row changed since it was read (optimistic concurrency).
    #[error("the {0} was changed by someone else; read it again and retry")]
    VersionMismatch(&'static str),
    /// The caller's lease expired or was taken over: its work must not be committed.
    #[error("lease {0:?} is no longer held by this owner")]
    LeaseLost(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be reached: no connection within the pool's timeout, the pool was
    /// closed, an I/O or TLS failure, or the server refusing connections or shutting down.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    /// A migration could not be applied, or the applied ones do not match this binary's.
    #[error("migration {version} failed: {message}")]
    Migration { version: i64, message: String },
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
}

static UNAVAILABLE: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);

/// Errors from the database driver in this process since it started (`/metrics`'
/// `tokenwarden_database_errors_total`), counted where they are converted, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseErrors {
    /// The database could not be reached ([`StoreError::Unavailable`]).
    pub unavailable: u64,
    /// Failed queries and rows that do not parse ([`StoreError::Database`],
    /// [`StoreError::Corrupt`]); not the expected outcomes (a unique violation, no row).
    pub other: u64,
}

pub fn database_errors() -> DatabaseErrors {
    DatabaseErrors {
        unavailable: UNAVAILABLE.load(Ordering::Relaxed),
        other: OTHER.load(Ordering::Relaxed),
    }
}

/// The store's own conversion of driver errors; the driver error never leaves the crate.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // No row where one was asked for is the caller's question, not a database failure.
        let counted = !matches!(e, sqlx::Error::RowNotFound);
        let converted = convert(e);
        match &converted {
            _ if !counted => 0,
            StoreError::Unavailable(_) => UNAVAILABLE.fetch_add(1, Ordering::Relaxed),
            StoreError::Database(_) | StoreError::Corrupt(_) => {
                OTHER.fetch_add(1, Ordering::Relaxed)
            }
            _ => 0,
        };
        converted
    }
}

fn convert(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    {
        match &e {
            E::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            E::Database(db) if db.code().as_deref().is_some_and(is_unavailable_sqlstate) => {
                StoreError::Unavailable(e.to_string())
            }
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(e.to_string())
            }
            E::ColumnDecode { .. } | E::Decode(_) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// PostgreSQL error codes that mean "the server cannot serve us now" rather than "this query is
/// wrong": connection exceptions (class 08), too many connections, and shutdowns.
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
