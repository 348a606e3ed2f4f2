//! The outbox relay under faults that hit it alone: its lock session killed while a standby
//! waits, and an event the producer refuses. librdkafka's mock cluster and real PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use prost::Message as _;
use purereducer_api::v1::{ActionStatus, Event, event};
use purereducer_core::Version;
use purereducer_storage::OutboxEvent;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use reducerd::config::Config;
use serde_json::json;

use crate::kafka::{PARTITIONS, kafka_config, mock_cluster};
use crate::support::{Backend, TestServer, action, handle, new_id, start, start_on_same_database};

/// Every record of `topic`, from the beginning, in partition order.
fn read_topic(brokers: &str, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", new_id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, partition, rdkafka::Offset::Offset(low))
                .expect("offset");
            ends.insert(partition, high);
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return records;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut done: HashSet<i32> = HashSet::new();
    while done.len() < ends.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "could not read {topic} to its end"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("record").detach();
            if message.offset() + 1 >= ends[&message.partition()] {
                done.insert(message.partition());
            }
            records.push(message);
        }
    }
    records
}

/// Per key, the versions of its `StateCommitted` records in topic order.
fn versions_by_key(records: &[rdkafka::message::OwnedMessage]) -> HashMap<String, Vec<(u64, Vec<u8>)>> {
    let mut by_key: HashMap<String, Vec<(u64, Vec<u8>)>> = HashMap::new();
    for record in records {
        let payload = record.payload().unwrap_or_default();
        let event = Event::decode(payload).expect("an event");
        if let Some(event::Kind::StateCommitted(committed)) = event.kind {
            by_key
                .entry(committed.workflow_key.clone())
                .or_default()
                .push((committed.version, payload.to_vec()));
        }
    }
    by_key
}

async fn unpublished(server: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_outbox WHERE published_at IS NULL")
        .fetch_one(server.pg())
        .await
        .expect("count")
}

async fn drained(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while unpublished(server).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the outbox was not drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the session that holds the relay's advisory lock once one holds it; returns
/// whether one was killed.
async fn kill_relay_session(server: &TestServer) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
        )
        .fetch_one(server.pg())
        .await
        .expect("locks");
        if held > 0 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_all(server.pg())
    .await
    .expect("terminate");
    !killed.is_empty()
}

fn relay_config(config: &mut Config, brokers: &str) {
    kafka_config(config, brokers, "projection-materializer");
    config.projection.max_records = 20;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_whose_lock_session_dies_stands_by_and_each_keys_order_holds() {
    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    let first = start(Backend::Postgres, |config| relay_config(config, &brokers)).await;
    let second = start_on_same_database(&first, |config| relay_config(config, &brokers)).await;
    let keys = 12;
    let rounds = 40;
    let mut kills = 0;
    for round in 0..rounds {
        if round == rounds / 3 || round == 2 * rounds / 3 {
            kills += usize::from(kill_relay_session(&first).await);
        }
        let mut handled = Vec::new();
        for k in 0..keys {
            let server = if (round + k) % 2 == 0 { &first } else { &second };
            let act = action(&new_id(), &format!("r{k}"), "merge", "set", json!({"round": round}));
            handled.push(handle(server, act));
        }
        for reply in futures::future::join_all(handled).await {
            assert_eq!(
                ActionStatus::try_from(reply.expect("handled").status),
                Ok(ActionStatus::Committed)
            );
        }
    }
    assert_eq!(kills, 2, "a relay held the lock both times");
    drained(&first).await;

    let topic = Config::default().kafka.state_committed_topic;
    let by_key = versions_by_key(&read_topic(&brokers, &topic));
    let mut resent = 0;
    for k in 0..keys {
        let key = format!("r{k}");
        let records = &by_key[&key];
        let mut first_seen: HashMap<u64, &Vec<u8>> = HashMap::new();
        let mut highest = 0;
        for (version, payload) in records {
            if *version == highest + 1 {
                highest = *version;
                first_seen.insert(*version, payload);
            } else {
                // Anything else must repeat, byte for byte, a version already out.
                let earlier = first_seen.get(version);
                assert_eq!(
                    earlier,
                    Some(&payload),
                    "{key}: version {version} out of order after {highest}"
                );
                resent += 1;
            }
        }
        assert_eq!(highest, rounds as u64, "{key}: every version published");
    }
    // A relay that lost its lock stops before its next batch: at most the batch in flight at
    // each kill goes out twice, not everything after it.
    let bound = 2 * kills * 20;
    assert!(resent <= bound, "{resent} re-sent records; at most {bound} expected");
    println!("relay lock killed {kills} times: {resent} records re-sent");
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_the_producer_refuses_is_dead_lettered_and_only_its_key_waits_for_it() {
    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    let server = start(Backend::Postgres, |config| {
        kafka_config(config, &brokers, "projection-materializer");
        // The relay alone: the test reads the topics itself.
        config.server.roles = vec!["canonical-store".into(), "reducer-service".into()];
    })
    .await;
    let huge = purereducer_bus::MAX_MESSAGE_BYTES + 1000;
    let row = |version: u64, payload: Vec<u8>| OutboxEvent {
        namespace: "default".to_owned(),
        workflow_key: "oversized".to_owned(),
        version: Version::new(version),
        event_type: "StateCommitted".to_owned(),
        payload,
        headers: json!({}),
    };
    // As if written before the state limit existed: a row too large to publish, then the
    // key's next one.
    server
        .store
        .append_events(vec![row(1, vec![b'x'; huge]), row(2, b"next".to_vec())], Vec::new())
        .await
        .expect("outbox rows");
    for i in 0..10 {
        let reply = handle(&server, action(&new_id(), "flowing", "merge", "set", json!({"i": i})))
            .await
            .expect("handled");
        assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
    }
    drained(&server).await;

    let defaults = Config::default().kafka;
    let dead = read_topic(&brokers, &defaults.dead_letter_topic);
    assert_eq!(dead.len(), 1, "one dead letter");
    let header = |name: &str| {
        dead[0]
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(dead[0].key(), Some(b"oversized".as_slice()));
    assert_eq!(header("version").as_deref(), Some("1"));
    assert!(header("source").is_some_and(|s| s.starts_with("outbox/")));
    assert!(header("error").is_some_and(|e| !e.is_empty()));

    // The key's next row went out after it; the other key flowed all along.
    let records = read_topic(&brokers, &defaults.state_committed_topic);
    let oversized: Vec<&[u8]> = records
        .iter()
        .filter(|r| r.key() == Some(b"oversized".as_slice()))
        .filter_map(|r| r.payload())
        .collect();
    assert_eq!(oversized, vec![b"next".as_slice()]);
    let flowing = records
        .iter()
        .filter(|r| r.key() == Some(b"flowing".as_slice()))
        .count();
    assert_eq!(flowing, 10);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_starts_and_commits_while_kafka_is_unreachable() {
    // Nothing listens on port 1: the brokers never answer during this test.
    let server = start(Backend::Postgres, |config| {
        kafka_config(config, "127.0.0.1:1", "projection-materializer");
    })
    .await;
    let reply = handle(&server, action(&new_id(), "offline", "merge", "set", json!({"a": 1})))
        .await
        .expect("handled while Kafka is down");
    assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
    // The commit waits in the outbox for the brokers.
    assert_eq!(unpublished(&server).await, 1);
    server.stop().await;
}
