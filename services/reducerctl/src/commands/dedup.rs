//! `dedup should-process` and `dedup cleanup` (ActionDedupService).

use std::time::Duration;

use purereducer_api::v1::action_dedup_service_client::ActionDedupServiceClient;
use purereducer_api::v1::{CleanupExpiredRequest, ShouldProcessRequest};

use super::status_name;
use crate::cli::DedupCommand;
use crate::client::{Connection, within};
use crate::convert::timestamp_to_json;
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Runs one dedup subcommand.
pub async fn run(connection: &Connection, printer: &Printer, command: DedupCommand) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = ActionDedupServiceClient::new(connection.channel.clone());
    let record = match command {
        DedupCommand::ShouldProcess {
            workflow_key,
            action_id,
            namespace,
        } => {
            let message = ShouldProcessRequest {
                workflow_key: workflow_key.clone(),
                action_id: action_id.clone(),
                namespace,
            };
            let answer = within(deadline, client.should_process(connection.request(message, deadline)))
                .await?
                .into_inner();
            let record = Record::new()
                .field("workflow_key", workflow_key)
                .field("action_id", action_id)
                .field("should_process", answer.should_process);
            match answer.previous {
                // The earlier outcome is why the id must not be processed again.
                Some(previous) => record
                    .field("previous_status", status_name(previous.status))
                    .field("previous_version", previous.version)
                    .field("result_hash", previous.result_hash)
                    .field("expires_at", timestamp_to_json(previous.expires_at.as_ref())),
                None => record,
            }
        }
        DedupCommand::Cleanup => {
            let answer = within(
                deadline,
                client.cleanup_expired(connection.request(CleanupExpiredRequest {}, deadline)),
            )
            .await?
            .into_inner();
            Record::new().field("deleted", answer.deleted)
        }
    };
    Ok(printer.record(&record)?)
}
