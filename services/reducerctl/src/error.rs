//! What a command can fail with, its exit code, and how it is reported on stderr.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Every way a command fails.
#[derive(Debug)]
pub enum CliError {
    /// The command line itself is wrong (for example `--payload` is not a JSON object).
    Usage(String),
    /// The server (or the transport) answered with a gRPC error status.
    Rpc(Status),
    /// The call worked but the answer is a failure for this command (for example a health
    /// check that is not SERVING, or a subscription the server ended early).
    Failed(String),
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        Self::Rpc(status)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        Self::Failed(format!("cannot write the output: {err}"))
    }
}

impl CliError {
    /// 2 for anything the caller has to fix in the request (as clap does for its own usage
    /// errors), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Rpc(status) if status.code() == Code::InvalidArgument => 2,
            Self::Rpc(_) | Self::Failed(_) => 1,
        }
    }

    /// The lines printed to stderr: the status code and message, then one line per field
    /// violation of a `google.rpc.BadRequest` detail.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Usage(message) | Self::Failed(message) => vec![format!("error: {message}")],
            Self::Rpc(status) => {
                let mut lines = vec![format!("error: {}: {}", code_name(status.code()), status.message())];
                if let Some(bad_request) = status.get_details_bad_request() {
                    for violation in bad_request.field_violations {
                        lines.push(format!("  field {}: {}", violation.field, violation.description));
                    }
                }
                if status.code() == Code::Unavailable {
                    lines.push("  hint: is reducerd running at --addr (or REDUCERCTL_ADDR)?".to_owned());
                }
                lines
            }
        }
    }

    /// Prints [`Self::lines`] to stderr.
    pub fn report(&self) {
        for line in self.lines() {
            eprintln!("{line}");
        }
    }
}

/// The canonical name of a status code, as grpcurl and the gRPC docs spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn invalid_argument_exits_2_and_names_each_field() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("action.workflow_key", "must not contain spaces");
        details.add_bad_request_violation("action.action_id", "is not a UUID");
        let status = Status::with_error_details(Code::InvalidArgument, "invalid request", details);
        let err = CliError::from(status);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.lines(),
            [
                "error: INVALID_ARGUMENT: invalid request",
                "  field action.workflow_key: must not contain spaces",
                "  field action.action_id: is not a UUID",
            ]
        );
    }

    #[test]
    fn other_statuses_exit_1() {
        assert_eq!(CliError::from(Status::not_found("no such workflow")).exit_code(), 1);
        assert_eq!(CliError::from(Status::unavailable("down")).exit_code(), 1);
        assert_eq!(CliError::Failed("NOT_SERVING".into()).exit_code(), 1);
        assert_eq!(CliError::Usage("bad flag".into()).exit_code(), 2);
    }

    #[test]
    fn unavailable_points_at_the_address() {
        let lines = CliError::from(Status::unavailable("tcp connect error")).lines();
        assert_eq!(lines[0], "error: UNAVAILABLE: tcp connect error");
        assert!(lines[1].contains("--addr"), "{lines:?}");
    }
}
