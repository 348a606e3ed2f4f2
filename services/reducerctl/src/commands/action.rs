//! `handle-action` (ReducerService) and the action building it shares with `publish`.

use std::future::Future;
use std::time::Duration;

use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{Action, HandleActionRequest, HandleActionResponse, Intent};
use serde_json::Value as Json;
use tonic::{Code, Status};

use super::status_name;
use crate::cli::ActionArgs;
use crate::client::{Connection, within};
use crate::convert::{optional_struct_to_json, parse_object};
use crate::error::{CliError, code_name};
use crate::output::{Printer, Record};

/// Calls made at most for one `handle-action`, the first included.
const MAX_TRIES: u32 = 3;

/// Pause before the second call; doubled before each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The action the flags describe; the action id is a new v4 UUID unless given.
pub fn build_action(args: ActionArgs) -> Result<Action, CliError> {
    let payload = parse_object("--payload", &args.payload)?;
    Ok(Action {
        action_id: args.action_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        workflow_key: args.workflow_key,
        workflow_type: args.workflow_type,
        action_type: args.action_type,
        payload: Some(payload),
        correlation_id: args.correlation_id,
        namespace: args.namespace,
    })
}

/// Applies an action and prints its outcome. UNAVAILABLE is retried with the same action id:
/// if an earlier call did commit, the server answers DUPLICATE with that first outcome, so a
/// retry can never apply the action twice.
pub async fn handle_action(connection: &Connection, printer: &Printer, args: ActionArgs) -> Result<(), CliError> {
    let action = build_action(args)?;
    let deadline = Some(connection.deadline(Duration::ZERO));
    let client = ReducerServiceClient::new(connection.channel.clone());
    let same_id = format!("with the same action id {}", action.action_id);
    let answer = retry_unavailable(MAX_TRIES, FIRST_BACKOFF, &same_id, |_| {
        let mut client = client.clone();
        let message = HandleActionRequest {
            action: Some(action.clone()),
        };
        let request = connection.request(message, deadline);
        async move { within(deadline, client.handle_action(request)).await }
    })
    .await?
    .into_inner();
    Ok(printer.record(&outcome_record(answer))?)
}

/// Calls `call` (given the 1-based call number) until it returns anything but UNAVAILABLE or
/// `tries` calls were made, sleeping `first_backoff`, then twice as long, … in between. Each
/// retry is announced on stderr, `how` saying what makes it safe.
pub async fn retry_unavailable<T, F, Fut>(
    tries: u32,
    first_backoff: Duration,
    how: &str,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = first_backoff;
    let mut attempt = 1;
    loop {
        match call(attempt).await {
            Err(status) if status.code() == Code::Unavailable && attempt < tries => {
                eprintln!(
                    "{}: {}; retrying {how} in {} ms (call {} of {tries})",
                    code_name(status.code()),
                    status.message(),
                    backoff.as_millis(),
                    attempt + 1
                );
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

pub(super) fn outcome_record(answer: HandleActionResponse) -> Record {
    Record::new()
        .field("status", status_name(answer.status))
        .field("workflow_key", answer.workflow_key)
        .field("version", answer.version)
        .field("action_id", answer.action_id)
        .field("correlation_id", answer.correlation_id)
        .field("attempts", answer.attempts)
        .field("result_hash", answer.result_hash)
        .non_empty("rejection_reason", &answer.rejection_reason)
        .field("state", optional_struct_to_json(answer.state.as_ref()))
        .field("intents", intents_to_json(&answer.intents))
}

/// Intents as `[{"intent_type": …, "payload": {…}}]`.
pub fn intents_to_json(intents: &[Intent]) -> Json {
    Json::Array(
        intents
            .iter()
            .map(|intent| {
                serde_json::json!({
                    "intent_type": intent.intent_type,
                    "payload": optional_struct_to_json(intent.payload.as_ref()),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn args(payload: &str, action_id: Option<&str>) -> ActionArgs {
        ActionArgs {
            workflow_key: "order-1".into(),
            workflow_type: "merge".into(),
            action_type: "set".into(),
            payload: payload.into(),
            action_id: action_id.map(str::to_owned),
            namespace: String::new(),
            correlation_id: String::new(),
        }
    }

    #[test]
    fn a_missing_action_id_becomes_a_new_uuid() {
        let first = build_action(args("{}", None)).expect("valid");
        let second = build_action(args("{}", None)).expect("valid");
        assert!(uuid::Uuid::parse_str(&first.action_id).is_ok());
        assert_ne!(first.action_id, second.action_id);
        let given = build_action(args("{}", Some("6f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9d"))).expect("valid");
        assert_eq!(given.action_id, "6f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9d");
    }

    #[test]
    fn a_non_object_payload_is_refused() {
        assert!(matches!(build_action(args("[1]", None)), Err(CliError::Usage(_))));
    }

    #[tokio::test]
    async fn unavailable_is_retried_until_an_answer() {
        let calls = Cell::new(0);
        let result = retry_unavailable(3, Duration::ZERO, "in a test", |attempt| {
            calls.set(calls.get() + 1);
            async move {
                if attempt < 3 {
                    Err(Status::unavailable("down"))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.expect("third call answers"), 3);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let calls = Cell::new(0);
        let result: Result<(), Status> = retry_unavailable(3, Duration::ZERO, "in a test", |_| {
            calls.set(calls.get() + 1);
            async { Err(Status::unavailable("down")) }
        })
        .await;
        assert_eq!(result.expect_err("still down").code(), Code::Unavailable);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), Status> = retry_unavailable(3, Duration::ZERO, "in a test", |_| {
            calls.set(calls.get() + 1);
            async { Err(Status::invalid_argument("bad key")) }
        })
        .await;
        assert_eq!(result.expect_err("refused").code(), Code::InvalidArgument);
        assert_eq!(calls.get(), 1);
    }
}
