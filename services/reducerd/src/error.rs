//! The one place domain and storage errors become gRPC statuses. Each variant is mapped on
//! purpose; internal detail goes to the log, never to the caller.

use purereducer_core::FieldError;
use purereducer_storage::StorageError;
use tonic::{Code, Status};

use crate::engine::EngineError;
use tonic_types::{ErrorDetails, StatusExt};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldError>),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts stored data (for example another workflow type).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The action id was used before with different content.
    #[error("{0}")]
    AlreadyExists(String),
    /// A dependency (database, remote reducer) cannot be reached now; retrying may work.
    #[error("{0}")]
    Unavailable(String),
    /// A deadline passed (for example a remote reducer's).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Refused before any work: a credential that does not cover the request, or a limit.
    #[error("{}", .0.message())]
    Denied(tonic::Status),
    /// A bug or corrupt data; the detail is logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Whether the failure is the server's or a dependency's, not the request's.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::DeadlineExceeded(_) | Self::Internal(_)
        )
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::InvalidArgument(errors)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::InvalidArgument(vec![error])
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        // Storage errors are classified once, by the engine's error type.
        EngineError::from(error).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unavailable(message) | EngineError::ReducerUnavailable(message) => Self::Unavailable(message),
            EngineError::ReducerTimeout(message) => Self::DeadlineExceeded(message),
            EngineError::InvalidArgument(errors) => Self::InvalidArgument(errors),
            EngineError::Mismatch(message) | EngineError::BadReducer(message) => Self::FailedPrecondition(message),
            EngineError::Reused(message) => Self::AlreadyExists(message),
            EngineError::NotFound(message) => Self::NotFound(message),
            EngineError::Bug(detail) => Self::Internal(detail),
        }
    }
}

impl From<EngineError> for Status {
    fn from(error: EngineError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(errors) => {
                let mut details = ErrorDetails::new();
                for err in &errors {
                    details.add_bad_request_violation(err.field.clone(), err.description.clone());
                }
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {}", describe(&errors)),
                    details,
                )
            }
            ApiError::NotFound(message) => Status::not_found(message),
            ApiError::FailedPrecondition(message) => Status::failed_precondition(message),
            ApiError::AlreadyExists(message) => Status::already_exists(message),
            ApiError::Unavailable(message) => Status::unavailable(message),
            ApiError::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            ApiError::Denied(status) => status,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; the server log has the details")
            }
        }
    }
}
