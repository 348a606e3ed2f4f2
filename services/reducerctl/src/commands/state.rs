//! `get-state`, `try-commit` and `delete` (CanonicalStoreService).

use std::time::Duration;

use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::try_commit_response::Outcome;
use purereducer_api::v1::{DeleteWorkflowRequest, GetStateRequest, Provenance, TryCommitRequest};

use crate::cli::TryCommitArgs;
use crate::client::{Connection, within};
use crate::convert::{optional_struct_to_json, parse_object, timestamp_to_json};
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Prints a workflow's state, version, type, namespace and last update.
pub async fn get_state(
    connection: &Connection,
    printer: &Printer,
    workflow_key: String,
    namespace: String,
) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = CanonicalStoreServiceClient::new(connection.channel.clone());
    let answer = within(
        deadline,
        client.get_state(connection.request(
            GetStateRequest {
                workflow_key,
                namespace,
            },
            deadline,
        )),
    )
    .await?
    .into_inner();
    let record = Record::new()
        .field("workflow_key", answer.workflow_key)
        .field("version", answer.version)
        .field("workflow_type", answer.workflow_type)
        .field("namespace", answer.namespace)
        .field("updated_at", timestamp_to_json(answer.updated_at.as_ref()))
        .field("state", optional_struct_to_json(answer.state.as_ref()));
    Ok(printer.record(&record)?)
}

/// Commits a whole state with compare-and-set; prints the new version or the conflicting one.
pub async fn try_commit(connection: &Connection, printer: &Printer, args: TryCommitArgs) -> Result<(), CliError> {
    let state = parse_object("--state", &args.state)?;
    let deadline = Some(connection.deadline(Duration::ZERO));
    let message = TryCommitRequest {
        workflow_key: args.workflow_key.clone(),
        expected_version: args.expected_version,
        state: Some(state),
        // Recorded with the version, so the store shows the change came from an operator.
        provenance: Some(Provenance {
            actor: "reducerctl".to_owned(),
            reason: "manual try-commit".to_owned(),
            ..Provenance::default()
        }),
        workflow_type: args.workflow_type,
        namespace: args.namespace,
    };
    let mut client = CanonicalStoreServiceClient::new(connection.channel.clone());
    let answer = within(deadline, client.try_commit(connection.request(message, deadline)))
        .await?
        .into_inner();
    let record = Record::new().field("workflow_key", args.workflow_key);
    let record = match answer.outcome {
        Some(Outcome::Committed(committed)) => record.field("outcome", "committed").field("version", committed.version),
        Some(Outcome::Conflict(conflict)) => record
            .field("outcome", "conflict")
            .field("expected_version", args.expected_version)
            .field("current_version", conflict.current_version),
        None => {
            return Err(CliError::Failed(
                "the server answered TryCommit without an outcome".to_owned(),
            ));
        }
    };
    Ok(printer.record(&record)?)
}

/// Deletes a workflow; prints the version the deletion took.
pub async fn delete(
    connection: &Connection,
    printer: &Printer,
    workflow_key: String,
    namespace: String,
    expected_version: u64,
    reason: String,
) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = CanonicalStoreServiceClient::new(connection.channel.clone());
    let message = DeleteWorkflowRequest {
        workflow_key: workflow_key.clone(),
        namespace,
        expected_version,
        reason,
    };
    let answer = within(deadline, client.delete_workflow(connection.request(message, deadline)))
        .await?
        .into_inner();
    let record = Record::new()
        .field("deleted", workflow_key)
        .field("version", answer.version);
    Ok(printer.record(&record)?)
}
