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
    /// Whoever read the output stopped reading (`reducerctl subscribe | head`): not an error.
    Closed,
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        Self::Rpc(status)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return Self::Closed;
        }
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
            Self::Closed => 0,
        }
    }

    /// The error as one JSON object, for `--json`: `{"error": {"code", "message", "fields"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let (code, message, fields) = match self {
            Self::Usage(message) => ("USAGE", message.clone(), Vec::new()),
            Self::Failed(message) => ("FAILED", message.clone(), Vec::new()),
            Self::Closed => ("CLOSED", String::new(), Vec::new()),
            Self::Rpc(status) => {
                let fields = status
                    .get_details_bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .into_iter()
                            .map(|v| serde_json::json!({"field": v.field, "problem": v.description}))
                            .collect()
                    })
                    .unwrap_or_default();
                (code_name(status.code()), status.message().to_owned(), fields)
            }
        };
        serde_json::json!({ "error": { "code": code, "message": message, "fields": fields } })
    }

    /// The lines printed to stderr: the status code and message, then one line per field
    /// violation of a `google.rpc.BadRequest` detail.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Usage(message) | Self::Failed(message) => vec![format!("error: {message}")],
            Self::Closed => Vec::new(),
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

    /// Prints [`Self::lines`] to stderr, or under `--json` [`Self::to_json`] as one line.
    pub fn report(&self, json: bool) {
        if matches!(self, Self::Closed) {
            return;
        }
        if json {
            eprintln!("{}", self.to_json());
            return;
        }
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
