/// What can go wrong in the store. `NotFound`, `Conflict` and `VersionMismatch` are expected
/// outcomes callers act on; `Database` is everything else.
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
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_owned());
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
