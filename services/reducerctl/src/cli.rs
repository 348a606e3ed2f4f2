//! Flags and subcommands. Names follow the RPCs they call, so the runbook's vocabulary and
//! `reducerctl --help` read the same.

use clap::{Args, Parser, Subcommand};

/// Operator CLI for Pure Reducer: one gRPC call per command against a live reducerd.
#[derive(Debug, Parser)]
#[command(name = "reducerctl", version, about, max_term_width = 100)]
pub struct Cli {
    /// Address of reducerd's gRPC endpoint (`http://` is assumed when no scheme is given).
    #[arg(
        long,
        env = "REDUCERCTL_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// Print one JSON object per line instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of the call in milliseconds (default 10000). For `wait` it is how long the
    /// server waits for the outcome; for `subscribe`, how long to follow the stream.
    #[arg(long, global = true, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Speak TLS (implied by an `https://` address, `--ca-file` or `--client-cert`).
    #[arg(long, env = "REDUCERCTL_TLS", global = true)]
    pub tls: bool,
    /// PEM CA certificates to trust besides the system's, for a server certificate signed
    /// by a private CA.
    #[arg(long, env = "REDUCERCTL_CA_FILE", global = true, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate, for a server that requires one (with `--client-key`).
    #[arg(long, env = "REDUCERCTL_CLIENT_CERT", global = true, value_name = "FILE")]
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--client-cert`.
    #[arg(long, env = "REDUCERCTL_CLIENT_KEY", global = true, value_name = "FILE")]
    pub client_key: Option<std::path::PathBuf>,
    /// Bearer token sent with every call (prefer the environment variable: a flag shows in
    /// the process list).
    #[arg(
        long,
        env = "REDUCERCTL_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand per RPC (dedup groups its two).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a workflow's current state and version (CanonicalStoreService.GetState).
    GetState {
        /// The workflow key.
        workflow_key: String,
        /// The workflow's namespace; `default` when not given.
        #[arg(long, value_name = "NS", default_value = "")]
        namespace: String,
    },
    /// Show what happened to a workflow: each committed version with what it changed, and
    /// each refusal and give-up (CanonicalStoreService.GetHistory).
    History(HistoryArgs),
    /// List workflows of a namespace, filtered by type, key prefix or status
    /// (CanonicalStoreService.ListWorkflows).
    List(ListArgs),
    /// Apply an action exactly once (ReducerService.HandleAction); retried on UNAVAILABLE
    /// with the same action id, which is safe because the server deduplicates it.
    HandleAction(ActionArgs),
    /// Commit a whole state if the stored version is still the expected one
    /// (CanonicalStoreService.TryCommit). A conflict is an answer, not an error: exit 0.
    TryCommit(TryCommitArgs),
    /// Read a workflow's projection, optionally waiting for a version
    /// (ProjectionService.GetProjection).
    GetProjection(GetProjectionArgs),
    /// List how far the materializer has applied each topic partition
    /// (ProjectionService.ListWatermarks).
    Watermarks,
    /// Inspect and clean up dedup records (ActionDedupService).
    Dedup {
        /// Which dedup operation.
        #[command(subcommand)]
        command: DedupCommand,
    },
    /// Apply again an action that ended GAVE_UP, as history kept it (ReducerService.RetryAction;
    /// admin).
    Retry {
        /// The workflow key.
        workflow_key: String,
        /// The action id that gave up.
        action_id: String,
        /// The workflow's namespace; `default` when not given.
        #[arg(long, value_name = "NS", default_value = "")]
        namespace: String,
    },
    /// Delete a workflow (CanonicalStoreService.DeleteWorkflow; admin). Its history stays as
    /// retention keeps it; its next action starts it again at the version after the deletion.
    Delete {
        /// The workflow key.
        workflow_key: String,
        /// The workflow's namespace; `default` when not given.
        #[arg(long, value_name = "NS", default_value = "")]
        namespace: String,
        /// Delete only if the workflow is at this version (default: whatever its version).
        #[arg(long, value_name = "N", default_value_t = 0)]
        expected_version: u64,
        /// Why, kept in the history and the WorkflowDeleted event.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Print a shell completion script: `source <(reducerctl completion bash)`, or save the
    /// output where your shell loads completions from (no server is contacted).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// List or replay events the pipeline could not apply (ProjectionService; admin).
    DeadLetters {
        /// Which operation.
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Queue an action and print its correlation id (EventBusService.PublishAction).
    Publish(ActionArgs),
    /// Wait for the outcome of a published action (EventBusService.WaitForCompletion);
    /// `--timeout-ms` is the wait, the server's `timeout_seconds` when not given.
    Wait {
        /// The correlation id `publish` printed.
        correlation_id: String,
        /// The action to wait for when several share the correlation id (`publish` prints
        /// it too); without it, the first of them to complete.
        #[arg(long)]
        action_id: Option<String>,
        /// The namespace the action was published in; `default` when not given.
        #[arg(long, value_name = "NS", default_value = "")]
        namespace: String,
    },
    /// Follow committed events, one line per event (EventBusService.Subscribe).
    Subscribe(SubscribeArgs),
    /// Ask the standard gRPC health service; exit 1 unless it answers SERVING.
    Health {
        /// A service name such as `purereducer.v1.ReducerService`; the whole server when empty.
        #[arg(long, default_value = "")]
        service: String,
    },
}

/// What an action consists of, shared by `handle-action` and `publish`.
#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The workflow key.
    pub workflow_key: String,
    /// Declared workflow type; it names the reducer (for example `merge` or `fsm`).
    #[arg(long = "type", value_name = "WORKFLOW_TYPE")]
    pub workflow_type: String,
    /// Action type, interpreted by the reducer (for an fsm, the event).
    #[arg(long = "action", value_name = "ACTION_TYPE")]
    pub action_type: String,
    /// Action data: a JSON object, `@FILE` to read it from a file, or `-` from standard input.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub payload: String,
    /// Action id (UUID); a new v4 UUID when not given. Reuse it to resend safely.
    #[arg(long, value_name = "UUID")]
    pub action_id: Option<String>,
    /// Tenant namespace; the server uses `default` when not given.
    #[arg(long, value_name = "NS", default_value = "")]
    pub namespace: String,
    /// Correlation id carried into every event; the server makes one when not given.
    #[arg(long, value_name = "ID", default_value = "")]
    pub correlation_id: String,
}

/// Arguments of `try-commit`.
#[derive(Debug, Args)]
pub struct TryCommitArgs {
    /// The workflow key.
    pub workflow_key: String,
    /// The version last read; 0 creates a workflow that must not exist yet.
    #[arg(long, value_name = "N")]
    pub expected_version: u64,
    /// The whole next state: a JSON object, `@FILE` or `-` (standard input).
    #[arg(long, value_name = "JSON")]
    pub state: String,
    /// Workflow type; set on creation, must match afterwards when given.
    #[arg(long = "type", value_name = "WORKFLOW_TYPE", default_value = "")]
    pub workflow_type: String,
    /// The workflow's namespace; `default` when not given. The same key in another
    /// namespace is another workflow.
    #[arg(long, value_name = "NS", default_value = "")]
    pub namespace: String,
}

/// Arguments of `get-projection`.
#[derive(Debug, Args)]
pub struct GetProjectionArgs {
    /// The workflow key.
    pub workflow_key: String,
    /// Wait until the projection has at least this version (0: do not wait).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_version: u64,
    /// Longest wait for `--min-version`; after it the answer comes from the canonical state.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub max_wait_ms: u32,
    /// The workflow's namespace; `default` when not given.
    #[arg(long, value_name = "NS", default_value = "")]
    pub namespace: String,
}

/// The two dedup operations.
#[derive(Debug, Subcommand)]
pub enum DedupCommand {
    /// Whether an action id is new for a workflow (ActionDedupService.ShouldProcess).
    ShouldProcess {
        /// The workflow key.
        workflow_key: String,
        /// The action id (UUID).
        action_id: String,
        /// The workflow's namespace; `default` when not given.
        #[arg(long, value_name = "NS", default_value = "")]
        namespace: String,
    },
    /// Delete expired dedup records now and print how many (ActionDedupService.CleanupExpired).
    Cleanup,
}

/// `dead-letters` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// The most recent dead letters, newest first (ProjectionService.ListDeadLetters).
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Write a dead-lettered event to its projection (ProjectionService.ReplayDeadLetter).
    Replay {
        /// The dead letter's id, as `list` prints it.
        id: i64,
    },
}

/// Arguments of `subscribe`; empty lists match everything, given lists must all match.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Only events of this namespace (repeatable).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Only events of this workflow type (repeatable).
    #[arg(long = "workflow-type", value_name = "T")]
    pub workflow_types: Vec<String>,
    /// Only events of this workflow key (repeatable).
    #[arg(long = "key", value_name = "K")]
    pub workflow_keys: Vec<String>,
    /// Stop after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Replay the `--key` workflows' events from this version (from history) before
    /// following live ones.
    #[arg(long, value_name = "VERSION", default_value_t = 0)]
    pub from_version: u64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["reducerctl", "wait", "c-1", "--timeout-ms", "250", "--json"])
            .expect("valid command line");
        assert_eq!(cli.timeout_ms, Some(250));
        assert!(cli.json);
        assert!(
            matches!(cli.command, Command::Wait { correlation_id, action_id: None, .. } if correlation_id == "c-1")
        );
    }

    #[test]
    fn subscribe_filters_repeat() {
        let cli = Cli::try_parse_from(["reducerctl", "subscribe", "--key", "a", "--key", "b", "--limit", "2"])
            .expect("valid command line");
        let Command::Subscribe(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.workflow_keys, ["a", "b"]);
        assert_eq!(args.limit, Some(2));
    }
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The workflow key.
    pub workflow_key: String,
    /// The workflow's namespace; `default` when not given.
    #[arg(long, value_name = "NS", default_value = "")]
    pub namespace: String,
    /// Start at this version (0: the oldest kept, or with `--reverse` the latest).
    #[arg(long, value_name = "VERSION", default_value_t = 0)]
    pub from_version: u64,
    /// Newest first.
    #[arg(long)]
    pub reverse: bool,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The namespace to list; `default` when not given.
    #[arg(long, value_name = "NS", default_value = "")]
    pub namespace: String,
    /// Only workflows of this type.
    #[arg(long = "type", value_name = "TYPE", default_value = "")]
    pub workflow_type: String,
    /// Only workflow keys starting with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Only workflows whose state's `status` is this (an fsm's state).
    #[arg(long, default_value = "")]
    pub status: String,
    /// At most this many workflows.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}
