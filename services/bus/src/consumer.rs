//! Consumers that take messages in batches and commit offsets only when told the batch is
//! durable.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::{Brokers, BusError, client_config};

/// Longest a broker holds a fetch that has no data yet.
const FETCH_WAIT_MAX_MS: &str = "10";

/// A group member with manual commits, starting from the earliest offset when the group
/// has none.
pub fn group_consumer(brokers: &Brokers, group: &str, topics: &[&str]) -> Result<StreamConsumer, BusError> {
    let consumer: StreamConsumer = client_config(brokers, group)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("isolation.level", "read_committed")
        // A fetch returns as soon as there is data; with no data the broker answers within
        // this bound, so a lone event never waits for the default 500 ms.
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS)
        // A subscribed topic created after the subscription (Kafka was down at start-up) is
        // found within this bound rather than librdkafka's default 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// A consumer outside any group, positioned at the current end of every partition of
/// `topics`: it sees exactly what is published from now on.
pub fn tail_consumer(brokers: &Brokers, topics: &[&str]) -> Result<StreamConsumer, BusError> {
    let consumer: StreamConsumer = client_config(brokers, "reducerd-tail")
        .set("group.id", "reducerd-tail")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS)
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
            assignment.add_partition_offset(topic, partition.id(), Offset::Offset(high))?;
        }
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Up to `max` messages: waits for the first as long as it takes, then takes only what has
/// already arrived. Nothing is held back to fill a batch, so a lone event is applied at once
/// and a burst is applied together.
pub async fn next_batch(consumer: &StreamConsumer, max: usize) -> Result<Vec<OwnedMessage>, BusError> {
    let first = consumer.recv().await?.detach();
    let mut batch = vec![first];
    while batch.len() < max {
        // A message librdkafka has already fetched is ready at the first poll.
        match futures::FutureExt::now_or_never(consumer.recv()) {
            Some(Ok(message)) => batch.push(message.detach()),
            // The messages taken so far must be handled: dropping them here would skip them
            // for good once a later batch commits a higher offset. librdkafka reports broker
            // errors (one going away, say) through the consumer and carries on.
            Some(Err(err)) => {
                tracing::debug!(error = %err, "consumer error ends the batch");
                break;
            }
            None => break,
        }
    }
    Ok(batch)
}

/// Commits the offsets after `batch` (call only once the batch's effects are durable).
pub fn commit_batch(consumer: &StreamConsumer, batch: &[OwnedMessage]) -> Result<(), BusError> {
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic().to_owned(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
    }
    consumer.commit(&offsets, CommitMode::Async)?;
    Ok(())
}

/// A text header of a message.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
