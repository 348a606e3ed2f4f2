//! `publish`, `wait` and `subscribe` (EventBusService).

use std::time::Duration;

use purereducer_api::v1::event::Kind;
use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::{
    Event, PublishActionRequest, SubscribeRequest, SubscriptionFilter, WaitForCompletionRequest,
};
use tonic::Status;
use tonic::transport::Channel;

use super::action::{build_action, intents_to_json};
use super::status_name;
use crate::cli::{ActionArgs, SubscribeArgs};
use crate::client::{Connection, within};
use crate::convert::{optional_struct_to_json, timestamp_to_json};
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Extra time the client gives a `wait` beyond the server's own wait, so the server's
/// DEADLINE_EXCEEDED (which names the correlation id) arrives before the client gives up.
const WAIT_GRACE: Duration = Duration::from_secs(5);

/// Queues an action and prints the ids to wait on.
pub async fn publish(connection: &Connection, printer: &Printer, args: ActionArgs) -> Result<(), CliError> {
    let action = build_action(args)?;
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = EventBusServiceClient::new(connection.channel.clone());
    let message = PublishActionRequest { action: Some(action) };
    let answer = within(deadline, client.publish_action(connection.request(message, deadline)))
        .await?
        .into_inner();
    let record = Record::new()
        .field("correlation_id", answer.correlation_id)
        .field("action_id", answer.action_id);
    Ok(printer.record(&record)?)
}

/// Waits for a published action's outcome. `--timeout-ms` is the server-side wait; without
/// it the server's `timeout_seconds` applies and bounds the call.
pub async fn wait(
    connection: &Connection,
    printer: &Printer,
    correlation_id: String,
    action_id: Option<String>,
    namespace: String,
) -> Result<(), CliError> {
    let (timeout_ms, deadline) = match connection.explicit_timeout() {
        Some(wait) => {
            let millis = u32::try_from(wait.as_millis())
                .map_err(|_| CliError::Usage(format!("--timeout-ms for wait is at most {}", u32::MAX)))?;
            (millis, Some(wait + WAIT_GRACE))
        }
        None => (0, None),
    };
    let mut client = EventBusServiceClient::new(connection.channel.clone());
    let message = WaitForCompletionRequest {
        correlation_id,
        timeout_ms,
        action_id: action_id.unwrap_or_default(),
        namespace,
    };
    let answer = within(
        deadline,
        client.wait_for_completion(connection.request(message, deadline)),
    )
    .await?
    .into_inner();
    let record = Record::new()
        .field("status", status_name(answer.status))
        .field("workflow_key", answer.workflow_key)
        .field("version", answer.version)
        .field("correlation_id", answer.correlation_id)
        .field("action_id", answer.action_id)
        .field("result_hash", answer.result_hash)
        .non_empty("rejection_reason", &answer.rejection_reason);
    Ok(printer.record(&record)?)
}

/// Follows matching events, one line each, until `--limit` events, `--timeout-ms` or the
/// server ends the stream.
pub async fn subscribe(connection: &Connection, printer: &Printer, args: SubscribeArgs) -> Result<(), CliError> {
    let filter = SubscriptionFilter {
        namespaces: args.namespaces,
        workflow_types: args.workflow_types,
        workflow_keys: args.workflow_keys,
    };
    let deadline = connection.explicit_timeout();
    let client = EventBusServiceClient::new(connection.channel.clone());
    let mut seen = 0;
    let request = connection.request(
        SubscribeRequest {
            filter: Some(filter),
            from_version: args.from_version,
        },
        deadline,
    );
    let follow = follow(client, request, printer, args.limit, &mut seen);
    let ended = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, follow).await,
        None => Ok(follow.await),
    };
    match (ended, args.limit) {
        // The limit was reached.
        (Ok(Ok(true)), _) => Ok(()),
        (Ok(Ok(false)), _) => Err(CliError::Failed(format!(
            "the server ended the subscription after {seen} event(s)"
        ))),
        (Ok(Err(err)), _) => Err(err),
        // Following for --timeout-ms was what was asked.
        (Err(_), None) => Ok(()),
        (Err(_), Some(limit)) => Err(CliError::Rpc(Status::deadline_exceeded(format!(
            "saw {seen} of {limit} event(s) within --timeout-ms"
        )))),
    }
}

/// Prints events as they arrive; true when `limit` was reached, false when the stream ended.
async fn follow(
    mut client: EventBusServiceClient<Channel>,
    request: tonic::Request<SubscribeRequest>,
    printer: &Printer,
    limit: Option<u64>,
    seen: &mut u64,
) -> Result<bool, CliError> {
    let mut stream = client.subscribe(request).await?.into_inner();
    while let Some(item) = stream.message().await? {
        let Some(record) = item.event.and_then(event_record) else {
            continue;
        };
        printer.line(&record)?;
        *seen += 1;
        if limit.is_some_and(|limit| *seen >= limit) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One event as a record whose first field names its kind.
fn event_record(event: Event) -> Option<Record> {
    let record = match event.kind? {
        Kind::StateCommitted(e) => Record::new()
            .field("event", "state_committed")
            .field("workflow_key", e.workflow_key)
            .field("version", e.version)
            .field("namespace", e.namespace)
            .field("workflow_type", e.workflow_type)
            .field("action_type", e.action_type)
            .field("action_id", e.action_id)
            .field("correlation_id", e.correlation_id)
            .field("committed_at", timestamp_to_json(e.committed_at.as_ref()))
            .field("result_hash", e.result_hash)
            .field("intents", intents_to_json(&e.intents))
            .field("state", optional_struct_to_json(e.state.as_ref())),
        Kind::ReducerGaveUp(e) => Record::new()
            .field("event", "reducer_gave_up")
            .field("workflow_key", e.workflow_key)
            .field("last_seen_version", e.last_seen_version)
            .field("namespace", e.namespace)
            .field("workflow_type", e.workflow_type)
            .field("action_type", e.action_type)
            .field("action_id", e.action_id)
            .field("correlation_id", e.correlation_id)
            .field("attempts", e.attempts)
            .field("gave_up_at", timestamp_to_json(e.gave_up_at.as_ref())),
        Kind::IntentEmitted(e) => {
            let (intent_type, payload) = e
                .intent
                .map(|intent| (intent.intent_type, optional_struct_to_json(intent.payload.as_ref())))
                .unwrap_or_default();
            Record::new()
                .field("event", "intent_emitted")
                .field("workflow_key", e.workflow_key)
                .field("version", e.version)
                .field("namespace", e.namespace)
                .field("workflow_type", e.workflow_type)
                .field("correlation_id", e.correlation_id)
                .field("index", e.index)
                .field("intent_type", intent_type)
                .field("payload", payload)
        }
        Kind::WorkflowDeleted(e) => Record::new()
            .field("event", "workflow_deleted")
            .field("workflow_key", e.workflow_key)
            .field("version", e.version)
            .field("namespace", e.namespace)
            .field("workflow_type", e.workflow_type)
            .field("actor", e.actor)
            .field("reason", e.reason)
            .field("deleted_at", timestamp_to_json(e.deleted_at.as_ref())),
    };
    Some(record)
}
