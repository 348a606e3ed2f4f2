//! A consumer-group member that notices when its group has stopped consuming and rejoins.
//!
//! After a broker restart a member's session can time out, and librdkafka then revokes the
//! assignment and rejoins. Most of the time consumption resumes; sometimes the member ends up
//! receiving nothing while records wait, and stays so until the consumer is made anew. A
//! [`GroupMember`] watches, while its caller is idle, the group's committed offset and the high
//! watermark of every partition of its topics: a partition with records waiting whose
//! committed offset has not moved for [`STALL_AFTER`] is one nobody consumes, and the member
//! replaces its consumer with a fresh one (a new member id, a new join, a new assignment).
//! Offsets are committed only after the caller's work is durable, so a rejoin delivers at
//! most what was not committed again, which the callers already skip or deduplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::consumer::group_consumer;
use crate::{Brokers, BusError};

/// How long records may wait on a partition without the group committing past any of them
/// before the member rejoins.
pub const STALL_AFTER: Duration = Duration::from_secs(15);
/// Most time between two readings of the group's progress (a fifth of the stall bound when
/// that is shorter).
const CHECK_EVERY: Duration = Duration::from_secs(3);
/// Bound on each broker request of a reading.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One partition's progress: the group's committed offset (the low watermark when the group
/// has none) and the partition's high watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the group will consume.
    pub committed: i64,
    /// Offset the next record written will take.
    pub high: i64,
}

/// Remembers since when each partition has had records waiting at the same committed offset.
#[derive(Debug)]
pub struct StallWatch {
    stall_after: Duration,
    since: HashMap<(String, i32), (i64, Instant)>,
}

impl StallWatch {
    /// A watch that calls a partition stalled after `stall_after` without progress.
    pub fn new(stall_after: Duration) -> Self {
        Self {
            stall_after,
            since: HashMap::new(),
        }
    }

    /// Takes a reading made at `now`; returns the partitions that have had records waiting,
    /// and no commit, for `stall_after` or longer.
    pub fn observe(&mut self, now: Instant, readings: &[Progress]) -> Vec<(String, i32)> {
        let mut stalled = Vec::new();
        for reading in readings {
            let key = (reading.topic.clone(), reading.partition);
            if reading.committed >= reading.high {
                // Caught up: nothing waits.
                self.since.remove(&key);
                continue;
            }
            // The clock runs from the first reading that saw records waiting at this offset.
            let entry = self.since.entry(key.clone()).or_insert((reading.committed, now));
            if entry.0 != reading.committed {
                *entry = (reading.committed, now);
            } else if now.duration_since(entry.1) >= self.stall_after {
                stalled.push(key);
            }
        }
        stalled
    }

    /// Forgets every partition (after a rejoin, the clock starts again).
    pub fn reset(&mut self) {
        self.since.clear();
    }
}

/// A member of a consumer group, remade when its group stops consuming.
pub struct GroupMember {
    brokers: Brokers,
    group: String,
    topics: Vec<String>,
    consumer: Arc<StreamConsumer>,
    watch: StallWatch,
    check_every: Duration,
    last_check: Option<Instant>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl GroupMember {
    /// Joins `group` on `topics` (see [`group_consumer`]); rejoins after [`STALL_AFTER`].
    pub fn join(brokers: &Brokers, group: &str, topics: &[&str]) -> Result<Self, BusError> {
        Self::join_with(brokers, group, topics, STALL_AFTER)
    }

    /// [`GroupMember::join`] with another stall bound.
    pub fn join_with(brokers: &Brokers, group: &str, topics: &[&str], stall_after: Duration) -> Result<Self, BusError> {
        Ok(Self {
            brokers: brokers.clone(),
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            consumer: Arc::new(group_consumer(brokers, group, topics)?),
            watch: StallWatch::new(stall_after),
            check_every: CHECK_EVERY.min(stall_after / 5),
            last_check: None,
        })
    }

    /// The consumer to take messages from and commit offsets on.
    pub fn consumer(&self) -> &StreamConsumer {
        &self.consumer
    }

    /// Call while nothing taken from the consumer is still being worked on. At most every
    /// few seconds it reads the group's progress (skipped while the brokers do not answer);
    /// when some partition has stalled it replaces the consumer, and returns true.
    pub async fn check(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_check
            .is_some_and(|at| now.duration_since(at) < self.check_every)
        {
            return false;
        }
        self.last_check = Some(now);
        let (consumer, topics) = (self.consumer.clone(), self.topics.clone());
        let readings = match tokio::task::spawn_blocking(move || read_progress(&consumer, &topics)).await {
            Ok(Ok(readings)) => readings,
            // The brokers are away or busy: no reading, nothing decided.
            Ok(Err(err)) => {
                tracing::debug!(error = %err, group = %self.group, "cannot read the group's progress");
                return false;
            }
            Err(err) => {
                tracing::warn!(error = %err, group = %self.group, "reading the group's progress failed");
                return false;
            }
        };
        let stalled = self.watch.observe(Instant::now(), &readings);
        if stalled.is_empty() {
            return false;
        }
        let fresh = match group_consumer(
            &self.brokers,
            &self.group,
            &self.topics.iter().map(String::as_str).collect::<Vec<_>>(),
        ) {
            Ok(fresh) => Arc::new(fresh),
            Err(err) => {
                tracing::warn!(error = %err, group = %self.group, "cannot make a new group member; trying again later");
                return false;
            }
        };
        let partitions: Vec<String> = stalled.iter().map(|(t, p)| format!("{t}/{p}")).collect();
        tracing::warn!(
            group = %self.group,
            partitions = %partitions.join(","),
            stalled_s = self.watch.stall_after.as_secs_f64(),
            "records are waiting that the group has not consumed; rejoining with a new member"
        );
        let old = std::mem::replace(&mut self.consumer, fresh);
        // Closing leaves the group; it waits on the brokers, so not on this thread.
        tokio::task::spawn_blocking(move || drop(old));
        self.watch.reset();
        true
    }
}

/// The group's committed offset and the high watermark of every partition of `topics`.
fn read_progress(consumer: &StreamConsumer, topics: &[String]) -> Result<Vec<Progress>, BusError> {
    let mut wanted = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), READ_TIMEOUT)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            wanted.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(wanted, READ_TIMEOUT)?;
    let mut readings = Vec::new();
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(element.topic(), element.partition(), READ_TIMEOUT)?;
        let committed = match element.offset() {
            Offset::Offset(offset) => offset,
            // No commit yet: the group starts from the earliest record.
            _ => low,
        };
        readings.push(Progress {
            topic: element.topic().to_owned(),
            partition: element.partition(),
            committed,
            high,
        });
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(committed: i64, high: i64) -> Vec<Progress> {
        vec![Progress {
            topic: "t".to_owned(),
            partition: 0,
            committed,
            high,
        }]
    }

    #[test]
    fn a_partition_stalls_only_with_records_waiting_and_no_commit_for_the_whole_time() {
        let start = Instant::now();
        let after = |s: u64| start + Duration::from_secs(s);
        let mut watch = StallWatch::new(Duration::from_secs(10));
        // Records waiting, nothing committed yet: not stalled before the time is up.
        assert!(watch.observe(after(0), &at(5, 9)).is_empty());
        assert!(watch.observe(after(9), &at(5, 9)).is_empty());
        assert_eq!(watch.observe(after(10), &at(5, 9)), vec![("t".to_owned(), 0)]);
        // A commit starts the clock again, even with records still waiting.
        assert!(watch.observe(after(11), &at(7, 12)).is_empty());
        assert!(watch.observe(after(20), &at(7, 12)).is_empty());
        assert_eq!(watch.observe(after(21), &at(7, 12)).len(), 1);
        // Caught up is never stalled, however long it stays so; records arriving then start
        // the clock from that reading.
        watch.reset();
        assert!(watch.observe(after(30), &at(12, 12)).is_empty());
        assert!(watch.observe(after(60), &at(12, 12)).is_empty());
        assert!(watch.observe(after(61), &at(12, 13)).is_empty());
        assert!(watch.observe(after(70), &at(12, 13)).is_empty());
        assert_eq!(watch.observe(after(71), &at(12, 13)).len(), 1);
    }

    #[test]
    fn partitions_are_watched_each_on_its_own() {
        let start = Instant::now();
        let mut watch = StallWatch::new(Duration::from_secs(5));
        let reading = |a: i64, b: i64| {
            vec![
                Progress {
                    topic: "t".to_owned(),
                    partition: 0,
                    committed: a,
                    high: 10,
                },
                Progress {
                    topic: "t".to_owned(),
                    partition: 1,
                    committed: b,
                    high: 10,
                },
            ]
        };
        assert!(watch.observe(start, &reading(1, 1)).is_empty());
        let later = start + Duration::from_secs(6);
        assert_eq!(watch.observe(later, &reading(2, 1)), vec![("t".to_owned(), 1)]);
    }
}
