//! Key owners. Every workflow key hashes to one owner task of the process; the owner keeps
//! each of its active keys' state in memory and a mailbox of the work waiting on it. An owner
//! runs rounds: it takes everything that is ready (up to a cap), folds each key's queue into
//! one commit from the state it holds, and commits all those keys in ONE transaction (group
//! commit), then answers every caller. While a round's transaction runs, new work piles up
//! and forms the next round: batching follows the load with no timer.
//!
//! Inside one process two actions on one key therefore never race. Across processes the
//! compare-and-set still decides: a conflict drops the held state, counts an attempt for
//! each action of the fold and retries them after the backoff the retry policy gives.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use opentelemetry::KeyValue;
use purereducer_core::{ActionId, ActionStatus, Outcome, Version, WorkflowKey};
use purereducer_storage::{CommitRequest, CommitResult, ProcessedRecord, StoredState};
use rand::Rng;
use tokio::sync::mpsc;

use super::fold::{KeyWork, Pending, fold_key, labels_of, requeue};
use super::job::{ActionJob, Job};
use super::plan::{DirectOutcome, Held};
use super::{EngineError, Shared};
use crate::events::{gave_up_event, gave_up_history};
use crate::metrics::{elapsed_ms, metrics, workflow_labels};

/// One key as its owner knows it.
#[derive(Debug)]
struct Slot {
    /// The state, while the owner trusts it; `None` means read it before the next fold.
    held: Option<Held>,
    /// Work waiting, in arrival order.
    queue: VecDeque<Job>,
    /// No fold before this instant (backoff after a lost compare-and-set).
    not_before: Option<Instant>,
    /// Last time work arrived, for eviction.
    last_used: Instant,
    /// Whether the key is in the owner's pending list.
    listed: bool,
    /// Whether the next fold must look up its actions' dedup records first. Usually it need
    /// not: the commit itself refuses an action recorded before, and only then (or for a
    /// second copy of an action in one fold) does the owner look records up.
    check_dedup: bool,
}

/// A key's work taken for one round.
#[derive(Debug)]
struct Taken {
    key: WorkflowKey,
    jobs: Vec<Job>,
    /// Look up the dedup records of these jobs before folding.
    check_dedup: bool,
}

/// An owner task: its mailbox and the keys it holds.
pub(super) struct Owner {
    shared: Arc<Shared>,
    inbox: mpsc::Receiver<Job>,
    slots: HashMap<WorkflowKey, Slot>,
    pending: VecDeque<WorkflowKey>,
    max_cached: usize,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Owner {
    pub(super) fn new(shared: Arc<Shared>, inbox: mpsc::Receiver<Job>, max_cached: usize) -> Self {
        let stopping = shared.stopping.subscribe();
        Self {
            shared,
            stopping,
            inbox,
            slots: HashMap::new(),
            pending: VecDeque::new(),
            max_cached: max_cached.max(1),
        }
    }

    /// Runs rounds until every sender is gone and all accepted work is answered.
    pub(super) async fn run(mut self) {
        let mut open = true;
        loop {
            if !self.has_ready(Instant::now()) {
                if !open && self.pending.is_empty() {
                    return;
                }
                let wake = self.next_wake();
                tokio::select! {
                    job = self.inbox.recv(), if open => match job {
                        Some(job) => self.accept(job),
                        None => open = false,
                    },
                    _ = sleep_until(wake), if wake.is_some() => {}
                    // Stopping ends every backoff: queued actions waiting out an outage are
                    // answered now instead of retried.
                    _ = self.stopping.changed() => {
                        for slot in self.slots.values_mut() {
                            slot.not_before = None;
                        }
                    }
                }
            }
            // Everything that has arrived meanwhile joins this round.
            while open {
                match self.inbox.try_recv() {
                    Ok(job) => self.accept(job),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if self.has_ready(Instant::now()) {
                self.round().await;
            }
            self.evict();
        }
    }

    fn accept(&mut self, job: Job) {
        let key = job.key().clone();
        let slot = self.slots.entry(key.clone()).or_insert_with(|| Slot {
            held: None,
            queue: VecDeque::new(),
            not_before: None,
            last_used: Instant::now(),
            listed: false,
            check_dedup: false,
        });
        slot.queue.push_back(job);
        slot.last_used = Instant::now();
        if !slot.listed {
            slot.listed = true;
            self.pending.push_back(key);
        }
    }

    /// Puts jobs back at the front of their key's queue, in the given order; `check_dedup`
    /// makes their next fold look up dedup records first.
    fn put_back(&mut self, key: &WorkflowKey, jobs: Vec<Job>, not_before: Option<Instant>, check_dedup: bool) {
        if jobs.is_empty() {
            return;
        }
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        slot.check_dedup |= check_dedup;
        for job in jobs.into_iter().rev() {
            slot.queue.push_front(job);
        }
        slot.not_before = not_before;
        if !slot.listed {
            slot.listed = true;
            self.pending.push_back(key.clone());
        }
    }

    fn has_ready(&self, now: Instant) -> bool {
        self.pending.iter().any(|key| {
            self.slots
                .get(key)
                .is_some_and(|slot| slot.not_before.is_none_or(|at| at <= now))
        })
    }

    fn next_wake(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|key| self.slots.get(key).and_then(|slot| slot.not_before))
            .min()
    }

    /// Takes the ready work, up to the batch cap, key by key in the order keys became busy.
    fn take_ready(&mut self) -> Vec<Taken> {
        let now = Instant::now();
        let mut budget = self.shared.limits.max_batch_actions.max(1);
        let mut taken = Vec::new();
        let mut keep = VecDeque::with_capacity(self.pending.len());
        while let Some(key) = self.pending.pop_front() {
            let Some(slot) = self.slots.get_mut(&key) else { continue };
            if budget == 0 || slot.not_before.is_some_and(|at| at > now) {
                keep.push_back(key);
                continue;
            }
            slot.not_before = None;
            let check_dedup = std::mem::take(&mut slot.check_dedup);
            let count = slot.queue.len().min(budget);
            budget -= count;
            let jobs: Vec<Job> = slot.queue.drain(..count).collect();
            if slot.queue.is_empty() {
                slot.listed = false;
            } else {
                keep.push_back(key.clone());
            }
            taken.push(Taken { key, jobs, check_dedup });
        }
        self.pending = keep;
        taken
    }

    /// One round: read what is not held, fold every taken key, commit them together.
    async fn round(&mut self) {
        let taken = self.take_ready();
        if taken.is_empty() {
            return;
        }
        let (states, records) = match self.read(&taken).await {
            Ok(read) => read,
            Err(error) => {
                for Taken { key, jobs, .. } in taken {
                    self.forget(&key);
                    self.fail_or_retry(&key, jobs, Vec::new(), &error);
                }
                return;
            }
        };
        let shared = self.shared.clone();
        let mut inputs = Vec::with_capacity(taken.len());
        for Taken { key, jobs, .. } in taken {
            let held = match states.get(&key) {
                Some(loaded) => loaded.clone(),
                None => self
                    .slots
                    .get(&key)
                    .and_then(|slot| slot.held.clone())
                    .unwrap_or_else(Held::absent),
            };
            let key_records: HashMap<ActionId, ProcessedRecord> = records
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, record)| (record.action_id, record.clone()))
                .collect();
            inputs.push((key, held, jobs, key_records));
        }
        let works = join_all(
            inputs
                .into_iter()
                .map(|(key, held, jobs, records)| fold_key(&shared, key, held, jobs, records)),
        )
        .await;
        self.commit(works).await;
    }

    /// Reads the states the owner does not hold (and those a direct commit must see fresh)
    /// and the dedup records of every taken action, concurrently.
    async fn read(
        &self,
        taken: &[Taken],
    ) -> Result<(HashMap<WorkflowKey, Held>, Vec<(WorkflowKey, ProcessedRecord)>), EngineError> {
        let stale: Vec<WorkflowKey> = taken
            .iter()
            .filter(|taken| {
                let held = self.slots.get(&taken.key).is_some_and(|slot| slot.held.is_some());
                !held || taken.jobs.iter().any(|job| matches!(job, Job::Direct(_)))
            })
            .map(|taken| taken.key.clone())
            .collect();
        let pairs: Vec<(WorkflowKey, ActionId)> = taken
            .iter()
            .filter(|taken| taken.check_dedup)
            .flat_map(|taken| {
                taken.jobs.iter().filter_map(move |job| match job {
                    Job::Action(job) => Some((taken.key.clone(), job.action.id)),
                    Job::Direct(_) => None,
                })
            })
            .collect();
        if stale.is_empty() && pairs.is_empty() {
            return Ok((HashMap::new(), Vec::new()));
        }
        let store = &self.shared.store;
        let (states, records) = tokio::join!(store.get_states(&stale), store.find_processed_many(&pairs));
        let metrics = metrics();
        if !stale.is_empty() {
            metrics.get_state.add(stale.len() as u64, &[]);
        }
        let mut states: HashMap<WorkflowKey, StoredState> =
            states.inspect_err(|_| metrics.get_state_errors.add(1, &[]))?;
        let records = records?;
        let held = stale
            .iter()
            .map(|key| {
                let stored = states.remove(key);
                (key.clone(), Held::from_stored(stored))
            })
            .collect();
        Ok((held, records))
    }

    /// Commits every key's fold in one transaction and answers the callers.
    async fn commit(&mut self, works: Vec<KeyWork>) {
        let mut idle = Vec::new();
        let mut committing = Vec::new();
        let mut requests = Vec::new();
        for mut work in works {
            match work.request.take() {
                Some(request) => {
                    requests.push(request);
                    committing.push(work);
                }
                None => idle.push(work),
            }
        }
        for work in idle {
            self.hold(&work.key, Some(work.held));
            self.put_back(&work.key, work.later, work.retry_at, true);
        }
        if requests.is_empty() {
            return;
        }
        let started = Instant::now();
        let result = self.shared.store.commit_batch(&requests).await;
        let took = elapsed_ms(started);
        let results = match result {
            Ok(results) if results.len() == requests.len() => results,
            Ok(results) => {
                let error = EngineError::Bug(format!(
                    "a batch of {} commits returned {} results",
                    requests.len(),
                    results.len()
                ));
                self.fail_all(committing, error);
                return;
            }
            Err(error) => {
                // The transaction may or may not have committed: forget what is held and let
                // the callers resend; the dedup records answer a resend either way.
                self.fail_all(committing, error.into());
                return;
            }
        };
        let mut wrote_events = false;
        let mut gave_up = Vec::new();
        for ((work, result), request) in committing.into_iter().zip(results).zip(&requests) {
            let labels = labels_of(&work);
            metrics().commit_latency_ms.record(took, &labels);
            match result {
                CommitResult::Committed { .. } => {
                    wrote_events |= !request.events.is_empty();
                    self.committed(work, request, &labels);
                }
                CommitResult::Conflict { current } => {
                    metrics().state_conflicts.add(1, &labels);
                    gave_up.extend(self.conflicted(work, current, &labels));
                }
                CommitResult::AlreadyProcessed(_) => {
                    // One of the actions was recorded before (a resend, or another process
                    // applied it first): fold again from a fresh read, looking the records
                    // up, so that action answers as a duplicate.
                    self.forget(&work.key);
                    let jobs = requeue(work.pending, work.later);
                    self.put_back(&work.key, jobs, None, true);
                }
                CommitResult::Deferred => {
                    // Rolled back for another key's sake: commit the same again.
                    let later = !work.later.is_empty();
                    // What the owner holds is still the state before the fold.
                    let jobs = requeue(work.pending, work.later);
                    self.put_back(&work.key, jobs, None, later);
                }
            }
        }
        if wrote_events {
            self.shared.hub.outbox_written();
        }
        if !gave_up.is_empty() {
            self.give_up(gave_up).await;
        }
    }

    fn committed(&mut self, work: KeyWork, request: &CommitRequest, labels: &[KeyValue]) {
        let metrics = metrics();
        let versions = request
            .write
            .as_ref()
            .map_or(0, |w| w.version.get() - request.expected.get());
        if versions > 0 {
            metrics.state_commits.add(versions, labels);
        }
        if !request.records.is_empty() {
            metrics.dedup_records.add(request.records.len() as u64, labels);
        }
        self.hold(&work.key, Some(work.held));
        for pending in work.pending {
            match pending {
                Pending::Action { job, outcome, .. } => {
                    let _ = job.reply.send(Ok(outcome));
                }
                Pending::Direct { job, version, .. } => {
                    let _ = job.reply.send(Ok(DirectOutcome::Committed(version)));
                }
            }
        }
        self.put_back(&work.key, work.later, work.retry_at, true);
    }

    /// Handles a lost compare-and-set; returns the actions that have no attempt left.
    fn conflicted(&mut self, work: KeyWork, current: Version, labels: &[KeyValue]) -> Vec<ActionJob> {
        let metrics = metrics();
        let retry = self.shared.retry;
        self.forget(&work.key);
        let mut again = Vec::new();
        let mut exhausted = Vec::new();
        let mut most = 0;
        for pending in work.pending {
            match pending {
                Pending::Direct { job, .. } => {
                    let _ = job.reply.send(Ok(DirectOutcome::Conflict(current)));
                }
                Pending::Action { mut job, .. } => {
                    job.conflicts += 1;
                    job.last_seen = current;
                    metrics.conflict_attempts.add(1, labels);
                    tracing::debug!(attempt = job.conflicts, workflow_type = %job.action.workflow_type, %current, "commit conflict");
                    if job.conflicts >= retry.max_attempts {
                        exhausted.push(job);
                    } else {
                        most = most.max(job.conflicts);
                        again.push(Job::Action(job));
                    }
                }
            }
        }
        let not_before = (!again.is_empty())
            .then(|| {
                let backoff = retry.backoff(most, rand::rng().random());
                metrics.backoff_ms.record(backoff.as_secs_f64() * 1000.0, labels);
                Instant::now() + backoff
            })
            .max(work.retry_at);
        let check_dedup = !work.later.is_empty();
        again.extend(work.later);
        self.put_back(&work.key, again, not_before, check_dedup);
        exhausted
    }

    /// Answers GAVE_UP to actions whose every attempt lost, with one `ReducerGaveUp` event
    /// each.
    async fn give_up(&mut self, jobs: Vec<ActionJob>) {
        let attempts = self.shared.retry.max_attempts;
        let events = jobs
            .iter()
            .map(|job| gave_up_event(&job.action, attempts, job.last_seen))
            .collect();
        let history = jobs
            .iter()
            .map(|job| gave_up_history(&job.action, attempts, job.last_seen))
            .collect();
        if let Err(error) = self.shared.store.append_events(events, history).await {
            // Nothing was counted or answered: a queued action tries again once the outage
            // is over (its next conflict gives up again, or it commits).
            let error = EngineError::from(error);
            let mut by_key: Vec<(WorkflowKey, Vec<Job>)> = Vec::new();
            for job in jobs {
                let key = job.action.key.clone();
                match by_key.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, jobs)) => jobs.push(Job::Action(job)),
                    None => by_key.push((key, vec![Job::Action(job)])),
                }
            }
            for (key, jobs) in by_key {
                self.fail_or_retry(&key, jobs, Vec::new(), &error);
            }
            return;
        }
        self.shared.hub.outbox_written();
        for job in jobs {
            let action = &job.action;
            let labels = workflow_labels(action.workflow_type.as_str(), action.namespace().as_str());
            metrics().gave_up.add(1, &labels);
            tracing::warn!(
                workflow_type = %action.workflow_type,
                namespace = %action.namespace(),
                action_id = %action.id,
                attempts,
                "Reducer gave up after repeated version conflicts"
            );
            let hash = purereducer_core::outcome::result_hash(ActionStatus::GaveUp, job.last_seen, None, &[], None);
            let _ = job.reply.send(Ok(Outcome {
                status: ActionStatus::GaveUp,
                version: job.last_seen,
                state: None,
                intents: Vec::new(),
                rejection_reason: None,
                attempts,
                result_hash: hash,
            }));
        }
    }

    fn fail_all(&mut self, works: Vec<KeyWork>, error: EngineError) {
        for work in works {
            self.forget(&work.key);
            let jobs = work.pending.into_iter().map(Pending::into_job).collect();
            self.fail_or_retry(&work.key, jobs, work.later, &error);
        }
    }

    /// Answers `error` to `jobs`, except queued actions hit by an outage while the process
    /// is not stopping: those go back to the front of their key's queue, in order and ahead
    /// of `later`, and are tried again after a backoff that grows with each outage. `later`
    /// goes back either way (after them).
    fn fail_or_retry(&mut self, key: &WorkflowKey, jobs: Vec<Job>, later: Vec<Job>, error: &EngineError) {
        let retry = error.is_retryable() && !*self.stopping.borrow();
        let mut again = Vec::new();
        let mut most = 0;
        for job in jobs {
            match job {
                Job::Action(mut job) if retry && job.queued => {
                    job.outages += 1;
                    most = most.max(job.outages);
                    again.push(Job::Action(job));
                }
                job => job.fail(error.clone()),
            }
        }
        let not_before = (most > 0).then(|| {
            tracing::warn!(%error, actions = again.len(), outages = most, "queued actions wait out an outage");
            Instant::now() + outage_backoff(most)
        });
        again.extend(later);
        self.put_back(key, again, not_before, true);
    }

    fn hold(&mut self, key: &WorkflowKey, held: Option<Held>) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.held = held;
        }
    }

    fn forget(&mut self, key: &WorkflowKey) {
        self.hold(key, None);
    }

    /// Drops the idle keys used longest ago once more are held than allowed.
    fn evict(&mut self) {
        if self.slots.len() <= self.max_cached {
            return;
        }
        let mut idle: Vec<(Instant, WorkflowKey)> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.queue.is_empty() && !slot.listed)
            .map(|(key, slot)| (slot.last_used, key.clone()))
            .collect();
        idle.sort_unstable_by_key(|(at, _)| *at);
        let target = self.max_cached - self.max_cached / 4;
        let excess = self.slots.len().saturating_sub(target);
        for (_, key) in idle.into_iter().take(excess) {
            self.slots.remove(&key);
        }
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").field("keys", &self.slots.len()).finish()
    }
}

/// How long queued actions wait after their `outages`-th outage: doubling from 50 ms up to
/// 2 s, with jitter so many keys do not retry at once.
pub fn outage_backoff(outages: u32) -> std::time::Duration {
    let ceiling = 50u64.saturating_mul(1 << outages.saturating_sub(1).min(6)).min(2_000);
    let jitter: f64 = rand::rng().random();
    std::time::Duration::from_millis(ceiling / 2 + (jitter * (ceiling / 2) as f64) as u64)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
