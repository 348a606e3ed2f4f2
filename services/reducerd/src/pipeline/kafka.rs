//! The pipeline with Kafka: the materializer and the queued-action consumer are group
//! members that commit offsets only after their database work; the event feed tails the
//! event topics for `Subscribe`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use purereducer_api::v1;
use purereducer_bus::Topics;
use purereducer_bus::consumer::{commit_batch, header, next_batch};
use purereducer_bus::member::GroupMember;
use purereducer_storage::{ProjectionUpdate, StorageError, Store};
use rdkafka::Message as _;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::convert::parse_action;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::pipeline::queue::announce;
use crate::projection::{decode, row_of_event};

/// Attempts at a failing event before it goes to the dead-letter topic.
const POISON_ATTEMPTS: u32 = 3;

/// Applies `StateCommitted` events from Kafka to the projection tables.
pub struct KafkaMaterializer {
    /// Group member on the state-committed topic.
    pub member: GroupMember,
    /// Producer for the dead-letter topic.
    pub dead_letters: FutureProducer,
    /// Topic names.
    pub topics: Topics,
    /// The store the projection lives in.
    pub store: Arc<dyn Store>,
    /// Wakes local waiters.
    pub hub: Arc<Hub>,
    /// Largest batch.
    pub max_records: usize,
    /// Longest a poll waits for the first record before checking for shutdown again.
    pub batch_timeout: Duration,
}

impl std::fmt::Debug for KafkaMaterializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMaterializer")
            .field("topics", &self.topics)
            .finish()
    }
}

impl KafkaMaterializer {
    /// Consumes until `stop` turns true; a batch in progress is finished first.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let polled = tokio::select! {
                polled = tokio::time::timeout(self.batch_timeout, next_batch(self.member.consumer(), self.max_records)) => polled,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            // Nothing arrived within one polling interval: caught up (or stalled, which the
            // member finds out and mends); poll again.
            let Ok(batch) = polled else {
                crate::metrics::metrics().materializer_idle();
                self.member.check().await;
                continue;
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(error = %err, "consume failed; retrying");
                    if !super::pause(Duration::from_millis(200), &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            if !self.apply(&batch, &mut stop).await {
                // Stopping during an outage: the offsets stay, the group delivers it again.
                return;
            }
            if let Err(err) = commit_batch(self.member.consumer(), &batch) {
                // The database already has the batch; a redelivery is skipped by watermark.
                tracing::warn!(error = %err, "offset commit failed");
            }
        }
    }

    /// Applies a batch durably; returns once every event is applied or dead-lettered (true),
    /// or when the process stops during an outage (false: nothing may be committed).
    async fn apply(&self, batch: &[OwnedMessage], stop: &mut watch::Receiver<bool>) -> bool {
        let mut updates = Vec::with_capacity(batch.len());
        let mut times = super::CommitTimes::new();
        // One consume span per event, continuing the trace its publish started; the
        // apply span under it ends when the batch's transaction has committed.
        let mut spans = Vec::with_capacity(batch.len());
        for message in batch {
            let event_type = header(message, "event_type").unwrap_or_default();
            let consume = tracing::info_span!(
                "kafka consume",
                otel.kind = "consumer",
                messaging.system = "kafka",
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
            );
            purereducer_bus::trace::set_parent(&consume, &purereducer_bus::trace::from_message(message));
            let apply = consume.in_scope(|| tracing::info_span!("projection apply", %event_type));
            spans.push((consume, apply));
            match self.update_of(message, &mut times) {
                Ok(update) => updates.push(update),
                Err(reason) => match self.dead_letter(message, &reason, stop).await {
                    Some(update) => updates.push(update),
                    None => return false,
                },
            }
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.store.apply_projections(&updates).await {
                Ok(stats) => {
                    self.announce(stats, &times);
                    return true;
                }
                // An outage only delays: never skip past events because the database is down.
                Err(StorageError::Unavailable(detail)) => {
                    tracing::warn!(%detail, "database unavailable; retrying the batch");
                    if !super::pause(crate::engine::outage_backoff(attempt), stop).await {
                        return false;
                    }
                }
                Err(err) if attempt < POISON_ATTEMPTS => {
                    tracing::warn!(error = %err, attempt, "batch failed; retrying");
                    if !super::pause(Duration::from_millis(100), stop).await {
                        return false;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "batch keeps failing; isolating the failing events");
                    return self.apply_one_by_one(batch, updates, &times, stop).await;
                }
            }
        }
    }

    async fn apply_one_by_one(
        &self,
        batch: &[OwnedMessage],
        updates: Vec<ProjectionUpdate>,
        times: &super::CommitTimes,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        for (message, update) in batch.iter().zip(updates) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.store.apply_projections(std::slice::from_ref(&update)).await {
                    Ok(stats) => {
                        self.announce(stats, times);
                        break;
                    }
                    Err(StorageError::Unavailable(_)) => {
                        if !super::pause(crate::engine::outage_backoff(attempt), stop).await {
                            return false;
                        }
                    }
                    Err(err) if attempt < POISON_ATTEMPTS => {
                        tracing::warn!(error = %err, attempt, "event failed; retrying")
                    }
                    Err(err) => {
                        let Some(skip) = self.dead_letter(message, &err.to_string(), stop).await else {
                            return false;
                        };
                        while let Err(err) = self.store.apply_projections(std::slice::from_ref(&skip)).await {
                            tracing::warn!(error = %err, "cannot move the watermark past a dead-lettered event; retrying");
                            if !super::pause(Duration::from_millis(500), stop).await {
                                return false;
                            }
                        }
                        break;
                    }
                }
            }
        }
        true
    }

    fn update_of(&self, message: &OwnedMessage, times: &mut super::CommitTimes) -> Result<ProjectionUpdate, String> {
        let payload = message.payload().ok_or("message has no payload")?;
        let event = decode(payload).map_err(|err| err.to_string())?;
        super::note_commit_time(times, &event);
        let row = row_of_event(&event.event).map_err(|err| err.to_string())?;
        Ok(ProjectionUpdate {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            row,
        })
    }

    /// Sends a message to the dead-letter topic (waiting for delivery) and returns the
    /// update that moves the watermark past it; `None` when the process stops first.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<ProjectionUpdate> {
        tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %reason, "event dead-lettered");
        crate::metrics::metrics().projections_failed.add(1, &[]);
        let source = format!("{}/{}/{}", message.topic(), message.partition(), message.offset());
        let headers = purereducer_bus::dead_letter_headers(reason, &source);
        let key = message.key().unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        loop {
            let record = FutureRecord::to(&self.topics.dead_letter)
                .key(key)
                .payload(payload)
                .headers(headers.clone());
            match self.dead_letters.send(record, Duration::from_secs(30)).await {
                Ok(_) => break,
                Err((err, _)) => {
                    tracing::warn!(error = %err, "dead-letter publish failed; retrying");
                    if !super::pause(Duration::from_millis(500), stop).await {
                        return None;
                    }
                }
            }
        }
        Some(ProjectionUpdate {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            row: None,
        })
    }

    fn announce(&self, stats: purereducer_storage::ApplyStats, times: &super::CommitTimes) {
        super::account(&stats, times);
        for (namespace, key, version) in stats.applied {
            self.hub
                .projection_applied(crate::hub::projection_key(&namespace, &key), version.get());
        }
    }
}

/// Hand-offs of queued actions whose completions may be pending at once.
const ACTIONS_IN_FLIGHT: usize = 16;
/// How long the action consumer waits for actions before it looks at the group's progress.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Applies actions queued on the actions topic. Whatever has arrived is handed to the engine
/// at once (in partition order, so in order per key); the next batch is taken while this
/// one's outcomes are still coming, and offsets are committed in order, each batch's once all
/// of its completions are recorded.
pub async fn run_action_consumer(
    mut member: GroupMember,
    engine: Arc<Engine>,
    hub: Arc<Hub>,
    max_payload: usize,
    max_records: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut in_flight: VecDeque<(tokio::task::JoinHandle<bool>, Vec<OwnedMessage>)> = VecDeque::new();
    // Once a batch ends undecided (stopping during an outage), no later offset is committed:
    // the group delivers those actions again.
    let mut halted = false;
    loop {
        let batch = tokio::select! {
            decided = async { (&mut in_flight.front_mut().expect("guarded").0).await }, if !in_flight.is_empty() => {
                if let Some((_, done)) = in_flight.pop_front() {
                    halted |= !decided.unwrap_or(false);
                    if !halted {
                        commit_offsets(member.consumer(), &done);
                    }
                }
                continue;
            }
            batch = next_batch(member.consumer(), max_records), if in_flight.len() < ACTIONS_IN_FLIGHT => Some(batch),
            _ = tokio::time::sleep(IDLE_CHECK), if in_flight.is_empty() => None,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        // Nothing arrived and nothing is being applied: caught up, or stalled (which the
        // member finds out and mends).
        let Some(batch) = batch else {
            member.check().await;
            continue;
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, "consume failed; retrying");
                if !super::pause(Duration::from_millis(200), &mut stop).await {
                    break;
                }
                continue;
            }
        };
        let mut actions = Vec::with_capacity(batch.len());
        for message in &batch {
            let decoded = v1::Action::decode(message.payload().unwrap_or_default())
                .map_err(|err| format!("undecodable action: {err}"))
                .and_then(|raw| {
                    parse_action(Some(&raw), "action", max_payload).map_err(|errors| ApiError::from(errors).to_string())
                });
            match decoded {
                Ok(action) => {
                    let span = tracing::info_span!("queued action", otel.kind = "consumer", workflow_type = %action.workflow_type);
                    purereducer_bus::trace::set_parent(&span, &purereducer_bus::trace::from_message(message));
                    actions.push((action, span));
                }
                Err(reason) => {
                    let correlation_id = header(message, "correlation_id").unwrap_or_default();
                    tracing::error!(%reason, %correlation_id, "queued action cannot be applied; skipped");
                }
            }
        }
        let outcomes = engine.submit_queued(actions).await;
        let (engine, hub) = (engine.clone(), hub.clone());
        let task = tokio::spawn(async move {
            let outcomes = outcomes.await;
            announce(&engine, &hub, outcomes).await
        });
        in_flight.push_back((task, batch));
    }
    for (task, done) in in_flight.drain(..) {
        halted |= !task.await.unwrap_or(false);
        if !halted {
            commit_offsets(member.consumer(), &done);
        }
    }
}

fn commit_offsets(consumer: &rdkafka::consumer::StreamConsumer, batch: &[OwnedMessage]) {
    if let Err(err) = commit_batch(consumer, batch) {
        tracing::warn!(error = %err, "offset commit failed");
    }
}

/// Feeds `Subscribe` from the event topics, from the moment the brokers answer (asked
/// again with backoff while they do not).
pub async fn run_event_feed(
    brokers: purereducer_bus::Brokers,
    topics: Vec<String>,
    hub: Arc<Hub>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0;
    let consumer = loop {
        let (brokers, topics) = (brokers.clone(), topics.clone());
        // Positioning reads metadata synchronously.
        let made = tokio::task::spawn_blocking(move || {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            purereducer_bus::consumer::tail_consumer(&brokers, &topics)
        })
        .await;
        match made {
            Ok(Ok(consumer)) => break consumer,
            Ok(Err(err)) => tracing::warn!(error = %err, "the event feed cannot reach Kafka yet; retrying"),
            Err(err) => tracing::warn!(error = %err, "the event feed's set-up failed; retrying"),
        }
        failures += 1;
        tokio::select! {
            _ = tokio::time::sleep(crate::engine::outage_backoff(failures)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    };
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message.map(|m| m.detach()),
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match message {
            Ok(message) => match decode(message.payload().unwrap_or_default()) {
                Ok(event) => hub.publish_event(event),
                Err(err) => tracing::warn!(error = %err, "undecodable event on an event topic"),
            },
            Err(err) => {
                tracing::warn!(error = %err, "event feed consume failed");
                if !super::pause(Duration::from_millis(200), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Queues actions on the actions topic for `PublishAction`.
#[derive(Clone)]
pub struct KafkaQueue {
    /// Producer for the actions topic.
    pub producer: FutureProducer,
    /// The actions topic.
    pub topic: String,
}

impl std::fmt::Debug for KafkaQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaQueue").field("topic", &self.topic).finish()
    }
}

impl KafkaQueue {
    /// Publishes the action, keyed by workflow key, and returns once Kafka has it.
    pub async fn enqueue(&self, action: &purereducer_core::Action) -> Result<(), ApiError> {
        let payload = super::queue::encode_action(action);
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "correlation_id",
            value: Some(action.correlation_id.as_bytes()),
        });
        for (name, value) in purereducer_bus::trace::inject_current() {
            headers = headers.insert(Header {
                key: &name,
                value: Some(value.as_bytes()),
            });
        }
        let record = FutureRecord::to(&self.topic)
            .key(action.key.as_str())
            .payload(&payload)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(err, _)| {
                ApiError::Unavailable(format!("kafka did not accept the action ({err}); publish it again"))
            })
    }
}
