//! The outbox relay: publishes committed events to Kafka in outbox order, keyed by workflow
//! key, and marks a row published only after its delivery report.
//!
//! Rows are selected by "not yet published", never by "id above the last one sent", so a
//! row whose transaction commits after a row with a higher id is still picked up on the
//! next pass. Per key, outbox order is commit order (each commit holds the workflow's row
//! lock), and the idempotent producer keeps that order within the key's partition.
//!
//! Only the holder of the relay singleton publishes, and it checks that it still holds it
//! before every batch: a relay whose lock session died stops and stands by instead of
//! publishing beside its successor. A row the producer refuses holds back the later rows of
//! its key (never other keys') until it goes out; one refused for its size or shape every
//! time is dead-lettered (a small record on the dead-letter topic naming it) and marked, so
//! the key moves on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use purereducer_storage::{PendingEvent, Singleton, Store};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{Notify, watch};

use crate::Topics;

/// Called for each row after its delivery report, before it is marked.
pub type DeliveryObserver = Arc<dyn Fn(&PendingEvent) + Send + Sync>;

/// Publishes the outbox.
#[derive(Clone)]
pub struct OutboxRelay {
    store: Arc<dyn Store>,
    producer: FutureProducer,
    topics: Topics,
    batch: u32,
    idle: Duration,
    wake: Arc<Notify>,
    observer: Option<DeliveryObserver>,
    dead_letter_observer: Option<DeliveryObserver>,
    /// Permanent refusals so far, by outbox id.
    refusals: Arc<Mutex<HashMap<i64, u32>>>,
}

/// Resolves once `stop` turns true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// How long a pass in progress may go on once the process stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Permanent refusals of one row before it is dead-lettered.
pub const REFUSALS_BEFORE_DEAD_LETTER: u32 = 3;

/// Why [`OutboxRelay::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Asked to stop; what was pending went out first.
    Stopped,
    /// The relay singleton was lost; another process may hold it now.
    LostLock,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("topics", &self.topics)
            .field("batch", &self.batch)
            .finish()
    }
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassStats {
    /// Rows delivered and marked.
    pub published: usize,
    /// Rows whose delivery failed (or that waited behind one of their key); they stay
    /// pending.
    pub failed: usize,
    /// Rows dead-lettered after repeated permanent refusals.
    pub dead_lettered: usize,
}

impl OutboxRelay {
    /// A relay over `store`; `wake` is notified by local commits, `idle` bounds the wait for
    /// rows committed by other processes.
    pub fn new(
        store: Arc<dyn Store>,
        producer: FutureProducer,
        topics: Topics,
        batch: u32,
        idle: Duration,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            producer,
            topics,
            batch: batch.max(1),
            // A zero polling interval would spin.
            idle: idle.max(Duration::from_millis(10)),
            wake,
            observer: None,
            dead_letter_observer: None,
            refusals: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Calls `observer` for every delivered row (metrics).
    pub fn with_observer(mut self, observer: DeliveryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Calls `observer` for every dead-lettered row (metrics).
    pub fn with_dead_letter_observer(mut self, observer: DeliveryObserver) -> Self {
        self.dead_letter_observer = Some(observer);
        self
    }

    /// Publishes while `lock` is held, until `stop` turns true (then drains what is pending
    /// and returns [`RelayEnd::Stopped`]) or the lock is lost ([`RelayEnd::LostLock`]).
    pub async fn run(&self, mut stop: watch::Receiver<bool>, lock: &mut Singleton) -> RelayEnd {
        let mut failures = 0u32;
        loop {
            let stopping = *stop.borrow();
            if !lock.still_held().await {
                tracing::warn!("the outbox relay lost its lock; standing by");
                return RelayEnd::LostLock;
            }
            // A pass waits for delivery reports, which a broker outage holds back for as long
            // as it lasts: stopping gives the pass in progress a bounded time to finish, and
            // what it did not mark stays pending (to be published again, by whoever relays).
            let pass = self.pass();
            tokio::pin!(pass);
            let passed = tokio::select! {
                passed = &mut pass => passed,
                () = stopped(&mut stop), if !stopping => {
                    match tokio::time::timeout(STOP_GRACE, &mut pass).await {
                        Ok(passed) => passed,
                        Err(_) => {
                            tracing::warn!("stopping with outbox rows unpublished; the broker did not answer");
                            return RelayEnd::Stopped;
                        }
                    }
                }
            };
            let passed = match (stopping, passed) {
                (true, Err(err)) => {
                    tracing::warn!(error = %err, "outbox relay pass failed while stopping");
                    return RelayEnd::Stopped;
                }
                (_, passed) => passed,
            };
            let pause = match passed {
                Ok(stats) if stats.published == 0 && stats.failed == 0 && stats.dead_lettered == 0 => {
                    failures = 0;
                    if stopping {
                        return RelayEnd::Stopped;
                    }
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.idle) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                Ok(stats) if stats.failed > 0 => {
                    failures += 1;
                    tracing::warn!(failed = stats.failed, "outbox delivery failed; retrying");
                    backoff(failures)
                }
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "outbox relay pass failed; retrying");
                    backoff(failures)
                }
            };
            if stopping {
                return RelayEnd::Stopped;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Sends one batch of pending rows and marks the delivered ones.
    pub async fn pass(&self) -> Result<PassStats, purereducer_storage::StorageError> {
        let rows = self.store.pending_events(self.batch).await?;
        if rows.is_empty() {
            return Ok(PassStats::default());
        }
        // Enqueue all first (in order), then await the reports: one round of batching. A key
        // whose row could not be handed to the producer sends nothing more in this pass, so
        // its later rows cannot overtake it.
        let mut held_back: HashSet<&str> = HashSet::new();
        let mut pending = Vec::with_capacity(rows.len());
        let mut failed = 0;
        let mut refused = Vec::new();
        for row in &rows {
            if held_back.contains(row.event.workflow_key.as_str()) {
                failed += 1;
                continue;
            }
            let span = publish_span(row);
            match span.in_scope(|| self.enqueue(row)) {
                Ok(report) => pending.push((row, span, report)),
                Err(err) => {
                    span.in_scope(|| tracing::warn!(outbox_id = row.id, error = %err, "event not queued for delivery"));
                    held_back.insert(row.event.workflow_key.as_str());
                    failed += 1;
                    if is_permanent(&err) {
                        refused.push((row, err));
                    }
                }
            }
        }
        let mut delivered = Vec::with_capacity(rows.len());
        for (row, span, report) in pending {
            match report.await {
                Ok(Ok(_)) => {
                    if let Some(observer) = &self.observer {
                        observer(row);
                    }
                    delivered.push(row.id);
                }
                Ok(Err((err, _))) => {
                    span.in_scope(|| tracing::warn!(outbox_id = row.id, error = %err, "event not delivered"));
                    failed += 1;
                    if is_permanent(&err) {
                        refused.push((row, err));
                    }
                }
                Err(_) => failed += 1,
            }
        }
        let dead = self.dead_letter_refused(refused).await;
        failed -= dead.len();
        let dead_lettered = dead.len();
        delivered.extend(dead);
        if !delivered.is_empty() {
            self.store.mark_published(&delivered).await?;
        }
        Ok(PassStats {
            published: delivered.len() - dead_lettered,
            failed,
            dead_lettered,
        })
    }

    /// Counts permanent refusals; rows refused often enough go to the dead-letter topic as a
    /// record naming them (their own payload is what the broker refuses). Returns the ids
    /// dead-lettered.
    async fn dead_letter_refused(&self, refused: Vec<(&PendingEvent, KafkaError)>) -> Vec<i64> {
        let mut due = Vec::new();
        {
            let mut refusals = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (row, err) in refused {
                let count = refusals.entry(row.id).or_insert(0);
                *count += 1;
                if *count >= REFUSALS_BEFORE_DEAD_LETTER {
                    refusals.remove(&row.id);
                    due.push((row, err));
                }
            }
        }
        let mut dead = Vec::new();
        for (row, err) in due {
            let reason = err.to_string();
            let source = format!("outbox/{}", row.id);
            let version = row.event.version.get().to_string();
            let headers = crate::dead_letter_headers(&reason, &source)
                .insert(Header {
                    key: "event_type",
                    value: Some(row.event.event_type.as_bytes()),
                })
                .insert(Header {
                    key: "version",
                    value: Some(version.as_bytes()),
                });
            let record = FutureRecord::<str, [u8]>::to(&self.topics.dead_letter)
                .key(&row.event.workflow_key)
                .headers(headers);
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    tracing::error!(outbox_id = row.id, workflow_key = %row.event.workflow_key, version = %row.event.version, %reason, "outbox event dead-lettered: the broker refuses it");
                    if let Some(observer) = &self.dead_letter_observer {
                        observer(row);
                    }
                    dead.push(row.id);
                }
                Err((err, _)) => {
                    tracing::warn!(outbox_id = row.id, error = %err, "dead-letter publish failed; the row stays pending")
                }
            }
        }
        dead
    }

    fn enqueue(&self, row: &PendingEvent) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let span = tracing::Span::current();
        let topic = self.topics.for_event(&row.event.event_type);
        let mut headers = OwnedHeaders::new();
        // Consumers continue the trace from this publish span, not from the commit.
        let trace = crate::trace::inject(&span);
        for (name, value) in &trace {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        if let Some(map) = row.event.headers.as_object() {
            for (name, value) in map {
                if trace.contains_key(name.as_str()) {
                    continue;
                }
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                headers = headers.insert(Header {
                    key: name,
                    value: Some(text.as_bytes()),
                });
            }
        }
        let version = row.event.version.get().to_string();
        headers = headers.insert(Header {
            key: "version",
            value: Some(version.as_bytes()),
        });
        let record = FutureRecord::to(topic)
            .key(&row.event.workflow_key)
            .payload(&row.event.payload)
            .headers(headers);
        self.producer.send_result(record).map_err(|(err, _)| err)
    }
}

/// Whether the producer or broker refuses the record itself (it will never go out as is),
/// rather than failing for now.
fn is_permanent(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// Pause after the `failures`-th failed pass in a row: doubling from 100 ms to 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.saturating_sub(1).min(6)).min(5_000))
}

/// The span of one row's publish, a child of the commit that wrote the row.
fn publish_span(row: &PendingEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "outbox publish",
        otel.kind = "producer",
        messaging.system = "kafka",
        event_type = %row.event.event_type,
        outbox_id = row.id,
    );
    crate::trace::set_parent(&span, &crate::trace::from_json(&row.event.headers));
    span
}
