//! `retry` (ReducerService.RetryAction) and `dead-letters` (ProjectionService): the operator's
//! repairs.

use std::time::Duration;

use purereducer_api::v1::projection_service_client::ProjectionServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{ListDeadLettersRequest, ReplayDeadLetterRequest, RetryActionRequest};

use crate::cli::DeadLetterCommand;
use crate::client::{Connection, within};
use crate::convert::timestamp_to_json;
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Applies again an action that gave up and prints its outcome like `handle-action`.
pub async fn retry(
    connection: &Connection,
    printer: &Printer,
    workflow_key: String,
    action_id: String,
    namespace: String,
) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = ReducerServiceClient::new(connection.channel.clone());
    let request = RetryActionRequest {
        namespace,
        workflow_key,
        action_id,
    };
    let answer = within(deadline, client.retry_action(connection.request(request, deadline)))
        .await?
        .into_inner();
    let outcome = answer
        .outcome
        .ok_or_else(|| CliError::Failed("the server answered RetryAction without an outcome".to_owned()))?;
    Ok(printer.record(&super::action::outcome_record(outcome))?)
}

/// Runs a `dead-letters` subcommand.
pub async fn run(connection: &Connection, printer: &Printer, command: DeadLetterCommand) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = ProjectionServiceClient::new(connection.channel.clone());
    match command {
        DeadLetterCommand::List { limit } => {
            let request = connection.request(ListDeadLettersRequest { limit }, deadline);
            let answer = within(deadline, client.list_dead_letters(request)).await?.into_inner();
            let rows: Vec<Record> = answer
                .dead_letters
                .into_iter()
                .map(|letter| {
                    Record::new()
                        .field("id", letter.id)
                        .field("workflow_key", letter.workflow_key)
                        .field("namespace", letter.namespace)
                        .field("version", letter.version)
                        .field("event_type", letter.event_type)
                        .field("created_at", timestamp_to_json(letter.created_at.as_ref()))
                        .field("replayed_at", timestamp_to_json(letter.replayed_at.as_ref()))
                        .field("error", letter.error)
                })
                .collect();
            Ok(printer.table("dead_letters", &rows, "no dead letters")?)
        }
        DeadLetterCommand::Replay { id } => {
            let request = connection.request(ReplayDeadLetterRequest { id }, deadline);
            let answer = within(deadline, client.replay_dead_letter(request)).await?.into_inner();
            let record = Record::new()
                .field("id", id)
                .field("applied", answer.applied)
                .field("message", answer.message);
            Ok(printer.record(&record)?)
        }
    }
}
