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
    /// `insufficient_resources` class: disk full (53100), out of memory (53200)...
    pub const INSUFFICIENT_RESOURCES_CLASS: &str = "53";
    /// `read_only_sql_transaction`: a primary that became a standby after a failover.
    pub const READ_ONLY_TRANSACTION: &str = "25006";
    /// `lock_not_available`: a lock timeout.
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    /// `system_error` class (PostgreSQL class 58: I/O errors on the server).
    pub const SYSTEM_ERROR_CLASS: &str = "58";
    /// SQLITE_FULL: the disk is full.
    pub const SQLITE_FULL: &str = "13";
    /// SQLITE_IOERR.
    pub const SQLITE_IOERR: &str = "10";
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
            // Outages are never a verdict on the data: a full disk, memory pressure, a
            // read-only server after failover and I/O errors pass, and must not get
            // anything dead-lettered or refused.
            let transient = [
                sqlstate::SERIALIZATION_FAILURE,
                sqlstate::DEADLOCK,
                sqlstate::READ_ONLY_TRANSACTION,
                sqlstate::LOCK_NOT_AVAILABLE,
                sqlstate::SQLITE_BUSY,
                sqlstate::SQLITE_LOCKED,
                sqlstate::SQLITE_FULL,
                sqlstate::SQLITE_IOERR,
            ]
            .contains(&code.as_ref())
                || code.starts_with(sqlstate::INSUFFICIENT_RESOURCES_CLASS)
                || code.starts_with(sqlstate::SYSTEM_ERROR_CLASS)
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error;

    use super::*;

    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "reported by the database"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn class_of(code: &'static str) -> StorageError {
        classify(&sqlx::Error::Database(Box::new(Coded(code))))
    }

    #[test]
    fn outages_are_unavailable_and_never_a_verdict_on_the_data() {
        for code in [
            "25006", // read-only after a failover
            "53100", // disk full
            "53200", // out of memory
            "53300", // too many connections
            "57P01", // admin shutdown
            "58030", // I/O error
            "08006", // connection failure
            "40001", // serialization failure
            "40P01", // deadlock
            "55P03", // lock timeout
            "5",     // SQLITE_BUSY
            "13",    // SQLITE_FULL
        ] {
            assert!(matches!(class_of(code), StorageError::Unavailable(_)), "{code}");
        }
        for code in ["23505", "22P05", "42P01", "22001"] {
            assert!(matches!(class_of(code), StorageError::Database(_)), "{code}");
        }
    }
}
