//! One key's round: folding its jobs, in arrival order, from the state its owner holds,
//! into the commit request and the outcomes that wait for it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use opentelemetry::KeyValue;
use purereducer_core::{ActionId, Outcome, ReducerSpec, Version, WorkflowKey};
use purereducer_storage::{CommitRequest, ProcessedRecord};
use tracing::Instrument as _;

use super::job::{ActionJob, DirectJob, Job};
use super::plan::{DirectOutcome, Fold, Held, decide, duplicate};
use super::{Shared, unknown_type};
use crate::metrics::{metrics, workflow_labels};

/// What one round decided for one key.
#[derive(Debug)]
pub(super) struct KeyWork {
    pub(super) key: WorkflowKey,
    pub(super) request: Option<CommitRequest>,
    /// The state after the fold's commit.
    pub(super) held: Held,
    /// Outcomes to send once the commit is known.
    pub(super) pending: Vec<Pending>,
    /// Jobs for a later round (a second copy of an action folded in this one, or what waits
    /// behind a queued action whose reducer is unavailable).
    pub(super) later: Vec<Job>,
    /// No later round before this (a queued action met an unavailable reducer).
    pub(super) retry_at: Option<std::time::Instant>,
}

/// An outcome waiting for its key's commit.
#[derive(Debug)]
pub(super) enum Pending {
    Action {
        job: ActionJob,
        outcome: Outcome,
        _span: tracing::Span,
    },
    Direct {
        job: DirectJob,
        version: Version,
        _span: tracing::Span,
    },
}

impl Pending {
    pub(super) fn into_job(self) -> Job {
        match self {
            Self::Action { job, .. } => Job::Action(job),
            Self::Direct { job, .. } => Job::Direct(job),
        }
    }
}

pub(super) fn requeue(pending: Vec<Pending>, later: Vec<Job>) -> Vec<Job> {
    pending.into_iter().map(Pending::into_job).chain(later).collect()
}

pub(super) fn labels_of(work: &KeyWork) -> Vec<KeyValue> {
    let first = work.pending.first().map(|pending| match pending {
        Pending::Action { job, .. } => (job.action.workflow_type.as_str(), job.action.namespace().as_str()),
        Pending::Direct { job, .. } => (
            job.commit.workflow_type.as_ref().map_or("default", |t| t.as_str()),
            job.commit.key.namespace().as_str(),
        ),
    });
    let (workflow_type, namespace) = match (&work.held.identity, first) {
        (Some(identity), _) => (identity.workflow_type.as_str(), identity.namespace.as_str()),
        (None, Some(first)) => first,
        (None, None) => ("default", "default"),
    };
    workflow_labels(workflow_type, namespace).to_vec()
}

/// Folds one key's jobs, in arrival order, from the state held.
pub(super) async fn fold_key(
    shared: &Shared,
    key: WorkflowKey,
    held: Held,
    jobs: Vec<Job>,
    records: HashMap<ActionId, ProcessedRecord>,
) -> KeyWork {
    let metrics = metrics();
    let limits = super::plan::StateLimits {
        max_event_bytes: shared.limits.max_state_bytes,
    };
    let mut fold = Fold::new(key.clone(), held, shared.dedup_ttl, limits);
    let start = fold.held().version;
    let mut pending = Vec::new();
    let mut later = Vec::new();
    let mut seen: HashSet<ActionId> = HashSet::new();
    let mut retry_at = None;
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        let job = match job {
            Job::Direct(job) => {
                let span = tracing::info_span!(parent: &job.span, "commit", otel.kind = "client", db.operation = "commit", expected_version = %job.commit.expected);
                match span.in_scope(|| fold.add_direct(&job.commit)) {
                    Ok(DirectOutcome::Committed(version)) => pending.push(Pending::Direct {
                        job,
                        version,
                        _span: span,
                    }),
                    Ok(conflict) => {
                        let labels = match &fold.held().identity {
                            Some(identity) => workflow_labels(&identity.workflow_type, &identity.namespace),
                            None => workflow_labels(
                                job.commit.workflow_type.as_ref().map_or("default", |t| t.as_str()),
                                job.commit.key.namespace().as_str(),
                            ),
                        };
                        metrics.state_conflicts.add(1, &labels);
                        let _ = job.reply.send(Ok(conflict));
                    }
                    Err(error) => {
                        let _ = job.reply.send(Err(error));
                    }
                }
                continue;
            }
            Job::Action(job) => job,
        };
        let mut job = job;
        let labels = workflow_labels(job.action.workflow_type.as_str(), job.action.namespace().as_str());
        if !job.dedup_counted {
            // Once per request: a retried attempt checks again, but it is the same request.
            metrics.dedup_checks.add(1, &labels);
            job.dedup_counted = true;
        }
        let action = &job.action;
        if let Some(record) = records.get(&action.id) {
            metrics.dedup_hits.add(1, &labels);
            let answer = duplicate(action, &job.fingerprint, record, fold.held());
            let _ = job.reply.send(answer);
            continue;
        }
        if !seen.insert(action.id) {
            // The same action twice in one fold: the second answers from the first's record.
            later.push(Job::Action(job));
            continue;
        }
        if let Err(error) = fold.check_identity(action) {
            let _ = job.reply.send(Err(error));
            continue;
        }
        let Some(spec) = shared.types.get(action.workflow_type.as_str()) else {
            let error = unknown_type(&shared.types, action.workflow_type.as_str());
            let _ = job.reply.send(Err(error));
            continue;
        };
        let attempt = job.conflicts + 1;
        let version = fold.held().version;
        let reduce_span =
            tracing::info_span!(parent: &job.span, "reduce", workflow_type = %action.workflow_type, %version, attempt);
        let decision = match spec {
            ReducerSpec::Local(reducer) => {
                Ok(reduce_span.in_scope(|| decide(reducer.as_ref(), &fold.held().state, version, action)))
            }
            ReducerSpec::Remote { timeout, .. } => {
                let timeout: Duration = *timeout;
                let state = fold.held().state.clone();
                shared
                    .remotes
                    .decide(action, &state, version, timeout)
                    .instrument(reduce_span)
                    .await
            }
        };
        let decision = match decision {
            Ok(decision) => decision,
            Err(error) if job.queued && error.is_retryable() && !*shared.stopping.borrow() => {
                // A queued action waits out the outage, and its key's later work waits
                // behind it, so the order per key holds.
                let mut job = job;
                job.outages += 1;
                tracing::warn!(%error, outages = job.outages, "queued action waits for its reducer");
                retry_at = Some(std::time::Instant::now() + super::owner::outage_backoff(job.outages));
                later.push(Job::Action(job));
                later.extend(jobs.by_ref());
                break;
            }
            Err(error) => {
                let _ = job.reply.send(Err(error));
                continue;
            }
        };
        let span = tracing::info_span!(parent: &job.span, "commit", otel.kind = "client", db.operation = "commit", expected_version = %start);
        let outcome = span.in_scope(|| fold.add_action(action, &job.fingerprint, decision, attempt));
        pending.push(Pending::Action {
            job,
            outcome,
            _span: span,
        });
    }
    let (request, held) = fold.finish();
    KeyWork {
        key,
        request,
        held,
        pending,
        later,
        retry_at,
    }
}
