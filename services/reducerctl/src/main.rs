//! `reducerctl`: the operator command line of Pure Reducer. Each subcommand makes one gRPC call
//! (or follows one stream) against a live `reducerd`, prints the answer for a person or, with
//! `--json`, as one JSON object per line for a script, and exits non-zero when the call failed:
//! 2 for a usage error or `INVALID_ARGUMENT`, 1 for anything else.
//!
//! Layout:
//! - [`cli`]: the flags and subcommands.
//! - [`client`]: the channel to `reducerd` and per-call deadlines.
//! - [`commands`]: one module per service group, each turning a subcommand into a call.
//! - [`convert`]: JSON text ↔ `google.protobuf.Struct`.
//! - [`output`]: human and JSON rendering of answers.
//! - [`error`]: what can go wrong, its exit code and how it is reported on stderr.

mod cli;
mod client;
mod commands;
mod convert;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::output::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    let printer = Printer::new(json);
    match runtime.block_on(commands::run(cli, &printer)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            err.report(json);
            ExitCode::from(err.exit_code())
        }
    }
}
