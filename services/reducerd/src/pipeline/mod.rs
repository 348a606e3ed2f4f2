//! The event pipeline: from outbox rows to projections, subscribers and completions.
//!
//! Without Kafka ([`local`]) one task reads the outbox in order, applies projections with
//! their watermark, fans events out to subscribers and marks the rows published, in one
//! process at a time per database; the others' subscribers get the same events through
//! [`fanout`]. Queued actions wait in a database table until applied ([`queue`]). With Kafka ([`kafka`]) the
//! outbox relay publishes, group consumers apply, and a tail consumer feeds subscriptions.

pub mod fanout;
pub mod kafka;
pub mod local;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use purereducer_bus::Topics;
use purereducer_bus::member::GroupMember;
use purereducer_bus::relay::OutboxRelay;
use purereducer_core::Action;
use purereducer_storage::{Store, channels};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::hub::Hub;

/// Where `PublishAction` puts actions.
#[derive(Debug, Clone)]
pub enum ActionQueue {
    /// The queue table in the database (no Kafka).
    Database(queue::DbQueue),
    /// The actions topic.
    Kafka(kafka::KafkaQueue),
}

impl ActionQueue {
    /// Queues an action behind the earlier actions of its key.
    pub async fn enqueue(&self, action: Action) -> Result<(), ApiError> {
        match self {
            Self::Database(queue) => queue.enqueue(&action).await,
            Self::Kafka(queue) => queue.enqueue(&action).await,
        }
    }
}

/// The running pipeline of one process.
#[derive(Debug, Default)]
pub struct Pipeline {
    /// The queue `PublishAction` uses, when this process runs the event bus.
    pub queue: Option<ActionQueue>,
    /// Tasks that stop once the queue is dropped and what was sent to them is answered.
    pub queue_workers: Vec<JoinHandle<()>>,
    /// Tasks that stop when the stop signal turns true.
    pub tasks: Vec<JoinHandle<()>>,
}

/// What the pipeline needs from the server.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Configuration.
    pub config: &'a Config,
    /// Roles this process runs.
    pub roles: &'a [String],
    /// The database.
    pub store: Arc<dyn Store>,
    /// Local fan-out.
    pub hub: Arc<Hub>,
    /// The action engine.
    pub engine: Arc<Engine>,
    /// Turns true when the server stops.
    pub stop: watch::Receiver<bool>,
}

impl Context<'_> {
    fn runs(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Starts the pipeline parts of this process's roles.
pub async fn start(context: Context<'_>) -> anyhow::Result<Pipeline> {
    let mut pipeline = Pipeline::default();
    if let Some(notes) = context.store.notifications().await? {
        pipeline.tasks.push(tokio::spawn(bridge(
            notes,
            context.store.clone(),
            context.hub.clone(),
            context.stop.clone(),
        )));
    }
    let projection = &context.config.projection;
    // A polling interval of 0 would make every idle loop spin.
    let batch_timeout = Duration::from_millis(projection.batch_timeout_ms).max(MIN_POLL);
    let brokers = context.config.kafka.brokers();
    if brokers.servers.is_empty() {
        if context.runs("projection-materializer") {
            let local = local::LocalPipeline::new(
                context.store.clone(),
                context.hub.clone(),
                projection.max_records,
                batch_timeout,
            );
            pipeline.tasks.push(tokio::spawn(run_local(
                local,
                context.store.clone(),
                context.stop.clone(),
            )));
        }
        if context.runs("event-bus") {
            let (queue, inserter) = queue::DbQueue::start(context.store.clone(), context.hub.clone());
            pipeline.queue = Some(ActionQueue::Database(queue));
            pipeline.queue_workers.push(inserter);
        }
        if context.runs("reducer-service") {
            let worker = queue::Worker {
                store: context.store.clone(),
                engine: context.engine.clone(),
                hub: context.hub.clone(),
                max_payload: context.config.server.max_payload_bytes,
                max_claim: u32::try_from(projection.max_records).unwrap_or(500).max(1),
                poll: batch_timeout,
            };
            pipeline.tasks.push(tokio::spawn(worker.run(context.stop.clone())));
        }
        return Ok(pipeline);
    }

    let kafka = &context.config.kafka;
    let topics = Topics {
        state_committed: kafka.state_committed_topic.clone(),
        reducer_gave_up: kafka.reducer_gave_up_topic.clone(),
        intents: kafka.intents_topic.clone(),
        actions: kafka.actions_topic.clone(),
        dead_letter: kafka.dead_letter_topic.clone(),
        partitions: kafka.partitions,
        replication_factor: kafka.replication_factor,
    };
    // Topics should exist before the consumers subscribe (a consumer that subscribes to a
    // missing topic only notices it at its next metadata refresh). Kafka may be down at
    // start-up, though: then they are created, and the event feed joins, once it answers.
    topics.validate()?;
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        purereducer_bus::topics::ensure_topics(&brokers, &topics),
    )
    .await;
    if !matches!(created, Ok(Ok(true))) {
        pipeline.tasks.push(tokio::spawn(create_topics(
            brokers.clone(),
            topics.clone(),
            context.stop.clone(),
        )));
    }
    if context.runs("canonical-store") || context.runs("reducer-service") {
        let producer = purereducer_bus::reliable_producer(&brokers, "reducerd-relay")?;
        let relay = OutboxRelay::new(
            context.store.clone(),
            producer,
            topics.clone(),
            u32::try_from(projection.max_records).unwrap_or(500),
            batch_timeout,
            context.hub.outbox_notify(),
        )
        .with_observer(Arc::new(|row| {
            crate::metrics::metrics()
                .published
                .add(1, &crate::metrics::event_labels(&row.event.event_type));
        }))
        .with_dead_letter_observer(Arc::new(|_| {
            crate::metrics::metrics().events_dead_lettered.add(1, &[]);
        }));
        pipeline.tasks.push(tokio::spawn(run_relay(
            relay,
            context.store.clone(),
            context.stop.clone(),
        )));
    }
    if context.runs("projection-materializer") {
        let materializer = kafka::KafkaMaterializer {
            member: GroupMember::join(&brokers, &projection.consumer_group, &[topics.state_committed.as_str()])?,
            dead_letters: purereducer_bus::reliable_producer(&brokers, "reducerd-dead-letters")?,
            topics: topics.clone(),
            store: context.store.clone(),
            hub: context.hub.clone(),
            max_records: projection.max_records,
            batch_timeout,
        };
        pipeline
            .tasks
            .push(tokio::spawn(materializer.run(context.stop.clone())));
    }
    if context.runs("reducer-service") {
        let member = GroupMember::join(&brokers, "reducer-service", &[topics.actions.as_str()])?;
        let max_payload = context.config.server.max_payload_bytes;
        pipeline.tasks.push(tokio::spawn(kafka::run_action_consumer(
            member,
            context.engine.clone(),
            context.hub.clone(),
            max_payload,
            projection.max_records,
            context.stop.clone(),
        )));
    }
    if context.runs("event-bus") {
        let feed_topics = vec![
            topics.state_committed.clone(),
            topics.reducer_gave_up.clone(),
            topics.intents.clone(),
        ];
        pipeline.tasks.push(tokio::spawn(kafka::run_event_feed(
            brokers.clone(),
            feed_topics,
            context.hub.clone(),
            context.stop.clone(),
        )));
        let producer = purereducer_bus::reliable_producer(&brokers, "reducerd-actions")?;
        pipeline.queue = Some(ActionQueue::Kafka(kafka::KafkaQueue {
            producer,
            topic: topics.actions.clone(),
        }));
    }
    Ok(pipeline)
}

/// Runs the in-process pipeline while this process holds its singleton (several processes
/// on one PostgreSQL database take turns; the others' subscribers get its events through
/// [`fanout`]); stands by otherwise, and again after losing it.
async fn run_local(local: local::LocalPipeline, store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) {
    loop {
        match store.try_singleton("purereducer-local-pipeline").await {
            Ok(Some(mut held)) => {
                tracing::info!("in-process pipeline active");
                if local.run(stop.clone(), &mut held).await {
                    return;
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot take the pipeline's lock"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Runs the relay while this process holds the relay singleton; stands by otherwise, and
/// again after losing it.
async fn run_relay(relay: OutboxRelay, store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) {
    loop {
        match store.try_singleton("purereducer-outbox-relay").await {
            Ok(Some(mut held)) => {
                tracing::info!("outbox relay active");
                if relay.run(stop.clone(), &mut held).await == purereducer_bus::relay::RelayEnd::Stopped {
                    return;
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot take the relay lock"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// The shortest polling interval any loop of the pipeline uses.
const MIN_POLL: Duration = Duration::from_millis(10);

/// Waits `pause`, or less if the process stops; returns false once it is stopping.
pub(crate) async fn pause(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.wait_for(|stop| *stop) => false,
    }
}

/// Creates the topics, asking again with backoff while the brokers do not answer.
async fn create_topics(brokers: purereducer_bus::Brokers, topics: Topics, mut stop: watch::Receiver<bool>) {
    let mut failures = 0;
    loop {
        let asked = tokio::select! {
            asked = purereducer_bus::topics::ensure_topics(&brokers, &topics) => asked,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match asked {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => {
                tracing::error!(error = %err, "topics cannot be created");
                return;
            }
        }
        failures += 1;
        tokio::select! {
            _ = tokio::time::sleep(crate::engine::outage_backoff(failures)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Forwards database notifications from other processes to local waiters.
async fn bridge(
    mut notes: tokio::sync::mpsc::Receiver<(String, String)>,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let note = tokio::select! {
            note = notes.recv() => note,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let Some((channel, payload)) = note else { return };
        if channel == channels::COMPLETION {
            hub.completed(payload);
        } else if channel == channels::QUEUE {
            hub.actions_queued();
        } else if channel == channels::EVENTS {
            fanout::deliver(store.as_ref(), &hub, &payload).await;
        } else if channel == channels::RESYNC {
            hub.resync();
        } else if channel == channels::PROJECTION
            && let Some((version, key)) = payload.split_once(':')
            && let Ok(version) = version.parse()
        {
            hub.projection_applied(key.to_owned(), version);
        }
    }
}

/// The commit time of each `StateCommitted` event, by [`crate::hub::projection_key`] and version.
pub(crate) type CommitTimes = std::collections::HashMap<(String, u64), i64>;

/// Adds the commit time an event carries to `times`.
pub(crate) fn note_commit_time(times: &mut CommitTimes, event: &crate::hub::PublishedEvent) {
    if let Some(purereducer_api::v1::event::Kind::StateCommitted(committed)) = &event.event.kind
        && let Some(at) = &committed.committed_at
    {
        times.insert(
            (
                crate::hub::projection_key(&committed.namespace, &committed.workflow_key),
                committed.version,
            ),
            crate::convert::timestamp_to_ms(at),
        );
    }
}

/// Logs and counts what a projection batch did: applied events with their lag, skipped
/// duplicates and regressions.
pub(crate) fn account(stats: &purereducer_storage::ApplyStats, times: &CommitTimes) {
    let metrics = crate::metrics::metrics();
    if stats.duplicates > 0 {
        metrics.duplicate_events_skipped.add(stats.duplicates, &[]);
        tracing::info!(duplicates = stats.duplicates, "projection events skipped as duplicates");
    }
    if stats.regressions > 0 {
        metrics.wm_regressions.add(stats.regressions, &[]);
        // Operators search the materializer's log for this text.
        tracing::warn!(
            regressions = stats.regressions,
            "Watermark regression: events older than the projection arrived"
        );
    }
    let applied: Vec<i64> = stats
        .applied
        .iter()
        .filter_map(|(namespace, key, version)| {
            times
                .get(&(crate::hub::projection_key(namespace, key), version.get()))
                .copied()
        })
        .collect();
    metrics.record_applied(&applied);
}
