//! One module per service group; each turns its subcommands into calls and prints the answers.

mod action;
mod bus;
mod dead_letters;
mod dedup;
mod health;
mod history;
mod projection;
mod state;

use purereducer_api::v1::ActionStatus;

use crate::cli::{Cli, Command};
use crate::client::{Connection, Security};
use crate::error::CliError;
use crate::output::Printer;

/// Runs the parsed command line against the server at `--addr`.
pub async fn run(cli: Cli, printer: &Printer) -> Result<(), CliError> {
    if let Command::Completion { shell } = cli.command {
        return completion(shell);
    }
    let security = Security {
        tls: cli.tls,
        ca_file: cli.ca_file.clone(),
        client_cert: cli.client_cert.clone(),
        client_key: cli.client_key.clone(),
        token: cli.token.clone(),
    };
    let connection = Connection::new(&cli.addr, cli.timeout_ms, &security)?;
    match cli.command {
        Command::GetState {
            workflow_key,
            namespace,
        } => state::get_state(&connection, printer, workflow_key, namespace).await,
        Command::History(args) => history::history(&connection, printer, args).await,
        Command::List(args) => history::list(&connection, printer, args).await,
        Command::TryCommit(args) => state::try_commit(&connection, printer, args).await,
        Command::HandleAction(args) => action::handle_action(&connection, printer, args).await,
        Command::GetProjection(args) => projection::get_projection(&connection, printer, args).await,
        Command::Watermarks => projection::watermarks(&connection, printer).await,
        Command::Retry {
            workflow_key,
            action_id,
            namespace,
        } => dead_letters::retry(&connection, printer, workflow_key, action_id, namespace).await,
        Command::Delete {
            workflow_key,
            namespace,
            expected_version,
            reason,
        } => state::delete(&connection, printer, workflow_key, namespace, expected_version, reason).await,
        Command::Completion { shell } => completion(shell),
        Command::DeadLetters { command } => dead_letters::run(&connection, printer, command).await,
        Command::Dedup { command } => dedup::run(&connection, printer, command).await,
        Command::Publish(args) => bus::publish(&connection, printer, args).await,
        Command::Wait {
            correlation_id,
            action_id,
            namespace,
        } => bus::wait(&connection, printer, correlation_id, action_id, namespace).await,
        Command::Subscribe(args) => bus::subscribe(&connection, printer, args).await,
        Command::Health { service } => health::check(&connection, printer, service).await,
    }
}

/// Writes the completion script of `shell` to standard output.
fn completion(shell: clap_complete::Shell) -> Result<(), CliError> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "reducerctl", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(())
}

/// An action status without its `ACTION_STATUS_` prefix (`COMMITTED`, `DUPLICATE`, …).
fn status_name(status: i32) -> String {
    match ActionStatus::try_from(status) {
        Ok(known) => known.as_str_name().trim_start_matches("ACTION_STATUS_").to_owned(),
        Err(_) => format!("UNKNOWN({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_without_their_prefix() {
        assert_eq!(status_name(ActionStatus::Committed.into()), "COMMITTED");
        assert_eq!(status_name(ActionStatus::GaveUp.into()), "GAVE_UP");
        assert_eq!(status_name(99), "UNKNOWN(99)");
    }
}
