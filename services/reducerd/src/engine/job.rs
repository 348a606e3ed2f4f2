//! The work a key's owner takes: actions to apply exactly once, and direct
//! compare-and-sets, each with the channel its outcome goes back on.

use purereducer_core::{Outcome, Version, WorkflowKey};
use tokio::sync::oneshot;

use super::plan::DirectOutcome;
use super::{DirectCommit, EngineError};

/// Work for a key's owner.
#[derive(Debug)]
pub(super) enum Job {
    /// An action to apply exactly once.
    Action(ActionJob),
    /// A direct compare-and-set.
    Direct(DirectJob),
}

/// An action waiting for its outcome.
#[derive(Debug)]
pub(super) struct ActionJob {
    /// The action.
    pub action: purereducer_core::Action,
    /// Its request fingerprint, for duplicates.
    pub fingerprint: String,
    /// Commits of it that lost a compare-and-set so far.
    pub conflicts: u32,
    /// The version the last lost compare-and-set saw.
    pub last_seen: Version,
    /// A queued action: an outage does not end it; it is retried until decided.
    pub queued: bool,
    /// Outages it has waited out so far (queued actions only).
    pub outages: u32,
    /// Whether its dedup check was counted (once per request, not per attempt).
    pub dedup_counted: bool,
    /// The caller's span; reduce and commit spans hang below it.
    pub span: tracing::Span,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Outcome, EngineError>>,
}

/// A direct compare-and-set waiting for its outcome.
#[derive(Debug)]
pub(super) struct DirectJob {
    /// What to commit.
    pub commit: DirectCommit,
    /// The caller's span.
    pub span: tracing::Span,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<DirectOutcome, EngineError>>,
}

impl Job {
    pub(super) fn key(&self) -> &WorkflowKey {
        match self {
            Self::Action(job) => &job.action.key,
            Self::Direct(job) => &job.commit.key,
        }
    }

    pub(super) fn fail(self, error: EngineError) {
        match self {
            Self::Action(job) => {
                let _ = job.reply.send(Err(error));
            }
            Self::Direct(job) => {
                let _ = job.reply.send(Err(error));
            }
        }
    }
}
