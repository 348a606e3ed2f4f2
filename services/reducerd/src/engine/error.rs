//! The engine's errors, classified once: retryable, the caller's fault, the reducer's fault,
//! or a bug. gRPC codes are chosen from these at the edge (`crate::error`), nowhere else.

use purereducer_core::FieldError;
use purereducer_storage::StorageError;

/// Why the engine could not decide an outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Retryable: the database cannot be reached or has no capacity now (connection lost,
    /// pool timeout, serialization failure, deadlock). Nothing was decided; send again.
    #[error("{0}")]
    Unavailable(String),
    /// Retryable: a remote reducer did not answer in time; the state is unchanged.
    #[error("{0}")]
    ReducerTimeout(String),
    /// Retryable: a remote reducer could not be reached or failed; the state is unchanged.
    #[error("{0}")]
    ReducerUnavailable(String),
    /// The caller's fault: fields of the request are invalid.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldError>),
    /// The caller's fault: the request contradicts stored data (another workflow type or
    /// namespace).
    #[error("{0}")]
    Mismatch(String),
    /// The caller's fault: the workflow the request is about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller's fault: an action id was used before with different content.
    #[error("{0}")]
    Reused(String),
    /// The reducer's fault: a remote reducer answered with something unusable.
    #[error("{0}")]
    BadReducer(String),
    /// A bug or corrupt stored data; the detail is for the log only.
    #[error("{0}")]
    Bug(String),
}

impl EngineError {
    /// Whether sending the same action again later may succeed (nothing was decided).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::ReducerTimeout(_) | Self::ReducerUnavailable(_)
        )
    }

    /// Whether the failure is the server's or a dependency's rather than the request's.
    pub fn is_server_fault(&self) -> bool {
        self.is_retryable() || matches!(self, Self::Bug(_))
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<StorageError> for EngineError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Self::Unavailable("the database is unavailable; retry with backoff".to_owned())
            }
            other => Self::Bug(other.to_string()),
        }
    }
}

impl From<FieldError> for EngineError {
    fn from(error: FieldError) -> Self {
        Self::InvalidArgument(vec![error])
    }
}
