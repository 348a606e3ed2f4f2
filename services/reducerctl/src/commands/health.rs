//! `health`: the standard `grpc.health.v1.Health/Check`, as Kubernetes probes ask it.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::client::{Connection, within};
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Prints the serving status of `service` (the whole server when empty); anything but
/// SERVING is a failure, so `reducerctl health` works as a probe in scripts.
pub async fn check(connection: &Connection, printer: &Printer, service: String) -> Result<(), CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let mut client = HealthClient::new(connection.channel.clone());
    let message = HealthCheckRequest {
        service: service.clone(),
    };
    let answer = within(deadline, client.check(connection.request(message, deadline)))
        .await?
        .into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    let shown_service = if service.is_empty() {
        "(server)"
    } else {
        service.as_str()
    };
    let record = Record::new()
        .field("service", shown_service)
        .field("status", status.as_str_name());
    printer.record(&record)?;
    if status != ServingStatus::Serving {
        return Err(CliError::Failed(format!("{shown_service} is {}", status.as_str_name())));
    }
    Ok(())
}
