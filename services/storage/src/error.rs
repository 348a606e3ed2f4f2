//! Storage errors, and the one place database errors are classified.

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or has no capacity now; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The configuration cannot work (bad URL, bad pool size).
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// Stored data could not be read back (a bug or manual tampering).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Anything else the database reported.
    #[error("database error: {0}")]
    Database(String),
}

/// PostgreSQL / SQLite error codes this crate treats specially.
pub(crate) mod sqlstate {
    /// `unique_violation` (PostgreSQL).
    pub const UNIQUE_VIOLATION: &str = "23505";
    /// `serialization_failure` (PostgreSQL).
    pub const SERIALIZATION_FAILURE: &str = "40001";
    /// `deadlock_detected` (PostgreSQL).
    pub const DEADLOCK: &str = "40P01";
    /// `too_many_connections` (PostgreSQL).
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// `admin_shutdown` and friends (PostgreSQL class 57).
    pub const OPERATOR_INTERVENTION_CLASS: &str = "57";
    /// `connection_exception` class (PostgreSQL class 08).
    pub const CONNECTION_CLASS: &str = "08";
    /// SQLITE_BUSY and SQLITE_LOCKED (primary result codes).
    pub const SQLITE_BUSY: &str = "5";
    /// SQLITE_LOCKED.
    pub const SQLITE_LOCKED: &str = "6";
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        classify(&err)
    }
}

/// Maps a database error to a storage error by its SQLSTATE (or SQLite code).
pub(crate) fn classify(err: &sqlx::Error) -> StorageError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StorageError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let transient = [
                sqlstate::SERIALIZATION_FAILURE,
                sqlstate::DEADLOCK,
                sqlstate::TOO_MANY_CONNECTIONS,
                sqlstate::SQLITE_BUSY,
                sqlstate::SQLITE_LOCKED,
            ]
            .contains(&code.as_ref())
                || code.starts_with(sqlstate::OPERATOR_INTERVENTION_CLASS)
                || code.starts_with(sqlstate::CONNECTION_CLASS);
            if transient {
                StorageError::Unavailable(format!("{} (code {code})", db.message()))
            } else {
                StorageError::Database(format!("{} (code {code})", db.message()))
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            StorageError::Corrupt(err.to_string())
        }
        sqlx::Error::Configuration(_) => StorageError::Config(err.to_string()),
        _ => StorageError::Database(err.to_string()),
    }
}

/// Whether an error is a unique-key violation (a concurrent insert won the race).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some(sqlstate::UNIQUE_VIOLATION)
                || matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
        }
        _ => false,
    }
}
