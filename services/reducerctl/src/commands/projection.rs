//! `get-projection` and `watermarks` (ProjectionService).

use std::time::Duration;

use purereducer_api::v1::projection_service_client::ProjectionServiceClient;
use purereducer_api::v1::{GetProjectionRequest, ListWatermarksRequest};

use crate::cli::GetProjectionArgs;
use crate::client::{Connection, within};
use crate::convert::{optional_struct_to_json, timestamp_to_json};
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Prints a projection; `from_canonical` says whether it had to be built from the canonical
/// state because the materializer did not reach `--min-version` within `--max-wait-ms`.
pub async fn get_projection(
    connection: &Connection,
    printer: &Printer,
    args: GetProjectionArgs,
) -> Result<(), CliError> {
    // The server may wait max_wait_ms before answering; the deadline must allow for that.
    let deadline = Some(connection.deadline(Duration::from_millis(u64::from(args.max_wait_ms))));
    let message = GetProjectionRequest {
        workflow_key: args.workflow_key,
        min_version: args.min_version,
        max_wait_ms: args.max_wait_ms,
        namespace: args.namespace,
    };
    let mut client = ProjectionServiceClient::new(connection.channel.clone());
    let answer = within(deadline, client.get_projection(connection.request(message, deadline)))
        .await?
        .into_inner();
    let Some(projection) = answer.projection else {
        return Err(CliError::Failed(
            "the server answered GetProjection without a projection".to_owned(),
        ));
    };
    let record = Record::new()
        .field("workflow_key", projection.workflow_key)
        .field("version", projection.version)
        .field("from_canonical", answer.from_canonical)
        .field("tag", projection.tag)
        .field("last_action", projection.last_action)
        .field("namespace", projection.namespace)
        .field("updated_at", timestamp_to_json(projection.updated_at.as_ref()))
        .field("indices", optional_struct_to_json(projection.indices.as_ref()))
        .field("extras", optional_struct_to_json(projection.extras.as_ref()));
    Ok(printer.record(&record)?)
}

/// Prints one row per topic partition: the next offset to apply and when it last moved.
pub async fn watermarks(connection: &Connection, printer: &Printer) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = ProjectionServiceClient::new(connection.channel.clone());
    let answer = within(
        deadline,
        client.list_watermarks(connection.request(ListWatermarksRequest {}, deadline)),
    )
    .await?
    .into_inner();
    let rows: Vec<Record> = answer
        .watermarks
        .into_iter()
        .map(|mark| {
            Record::new()
                .field("topic", mark.topic)
                .field("partition", mark.partition)
                .field("offset", mark.offset)
                .field("updated_at", timestamp_to_json(mark.updated_at.as_ref()))
        })
        .collect();
    Ok(printer.table("watermarks", &rows, "no watermarks yet: nothing has been materialized")?)
}
