//! The Kafka pipeline under broker faults, on librdkafka's in-process mock cluster and
//! real PostgreSQL: outbox relay, materializer, queued actions, waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use purereducer_api::v1::{
    ActionStatus, GetProjectionRequest, ListWatermarksRequest, PublishActionRequest, WaitForCompletionRequest,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, TopicPartitionList};
use reducerd::config::Config;
use serde_json::json;

use crate::crashing_store::{Crash, CrashingStore};
use crate::support::{Backend, TestServer, action, handle, new_id, start, start_on_same_database};

pub const PARTITIONS: i32 = 6;

pub fn kafka_config(config: &mut Config, brokers: &str, group: &str) {
    config.kafka.brokers = brokers.to_owned();
    config.kafka.partitions = PARTITIONS;
    config.projection.consumer_group = group.to_owned();
    config.projection.batch_timeout_ms = 50;
    config.reducer.max_attempts = 50;
    config.event_bus.timeout_seconds = 120;
}

pub fn mock_cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let defaults = Config::default().kafka;
    for topic in [
        &defaults.state_committed_topic,
        &defaults.reducer_gave_up_topic,
        &defaults.intents_topic,
        &defaults.actions_topic,
        &defaults.dead_letter_topic,
    ] {
        cluster.create_topic(topic, PARTITIONS, 1).expect("topic");
    }
    cluster
}

async fn canonical_versions(server: &TestServer) -> HashMap<String, i64> {
    sqlx::query_as("SELECT workflow_key, version FROM workflow_state")
        .fetch_all(server.pg())
        .await
        .expect("states")
        .into_iter()
        .collect()
}

async fn projection_rows(server: &TestServer) -> Vec<(String, i64, serde_json::Value)> {
    sqlx::query_as("SELECT workflow_key, version, extras FROM workflow_projection ORDER BY workflow_key")
        .fetch_all(server.pg())
        .await
        .expect("projections")
}

/// Waits until every workflow's projection reached its canonical version.
async fn converge(server: &TestServer) {
    for (key, version) in canonical_versions(server).await {
        let reply = server
            .projections()
            .get_projection(GetProjectionRequest {
                namespace: Default::default(),
                workflow_key: key.clone(),
                min_version: version as u64,
                max_wait_ms: 60_000,
            })
            .await
            .expect("projection")
            .into_inner();
        assert!(
            !reply.from_canonical,
            "projection of {key} did not reach version {version}"
        );
        assert_eq!(reply.projection.expect("row").version, version as u64, "{key}");
    }
}

/// Waits until a consumer group has committed the end of every partition of `topic`.
async fn group_caught_up(brokers: &str, group: &str, topic: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut wanted = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            wanted.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(wanted, Duration::from_secs(5))
            .expect("committed offsets");
        let caught_up = (0..PARTITIONS).all(|partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(5))
                .expect("watermarks");
            let at = committed
                .find_partition(topic, partition)
                .and_then(|p| p.offset().to_raw())
                .unwrap_or(-1);
            high == 0 || at >= high
        });
        if caught_up {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "group {group} did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_actions_survive_three_broker_outages_exactly_once() {
    let total: usize = std::env::var("PURE_REDUCER_KAFKA_ACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let keys = 100;
    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    let server = start(Backend::Postgres, |config| {
        kafka_config(config, &brokers, "projection-materializer")
    })
    .await;

    // MockCluster is not Send: the outages are injected from this task, at three points
    // of the load, each lasting while a burst of HandleActions runs.
    let outage_at = [total / 4, total / 2, 3 * total / 4];
    let mut outages = 0;
    let running = Arc::new(AtomicBool::new(true));
    // Watermarks are sampled during the run: none may ever move back.
    let sampler = {
        let (server_channel, running) = (server.channel.clone(), running.clone());
        tokio::spawn(async move {
            let mut client =
                purereducer_api::v1::projection_service_client::ProjectionServiceClient::new(server_channel);
            let mut seen: HashMap<(String, i32), i64> = HashMap::new();
            let mut samples = 0;
            while running.load(Ordering::SeqCst) {
                if let Ok(reply) = client.list_watermarks(ListWatermarksRequest {}).await {
                    for mark in reply.into_inner().watermarks {
                        let previous = seen
                            .insert((mark.topic.clone(), mark.partition), mark.offset)
                            .unwrap_or(0);
                        assert!(
                            mark.offset >= previous,
                            "watermark of {}/{} moved back",
                            mark.topic,
                            mark.partition
                        );
                    }
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };

    let mut handled = FuturesUnordered::new();
    let mut extra = 0usize;
    let mut published = Vec::new();
    for i in 0..total {
        let key = format!("k{}", i % keys);
        let act = action(&new_id(), &key, "merge", "set", json!({ format!("f{}", i % 7): i }));
        let act_is_handled = i % 2 == 0;
        if act_is_handled {
            let server = &server;
            handled.push(async move { handle(server, act).await });
        } else {
            let mut bus = server.event_bus();
            let reply = bus
                .publish_action(PublishActionRequest { action: Some(act) })
                .await
                .expect("publish");
            published.push(reply.into_inner().correlation_id);
        }
        if outage_at.contains(&i) {
            cluster.broker_down(1).expect("broker down");
            let until = tokio::time::Instant::now() + Duration::from_millis(800);
            while tokio::time::Instant::now() < until {
                let reply = handle(
                    &server,
                    action(&new_id(), &key, "merge", "set", json!({"during_outage": i})),
                )
                .await
                .expect("handled");
                assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
                extra += 1;
            }
            cluster.broker_up(1).expect("broker up");
            outages += 1;
        }
        while handled.len() >= 32 {
            let reply = handled.next().await.expect("pending").expect("handled");
            assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
        }
    }
    while let Some(reply) = handled.next().await {
        assert_eq!(
            ActionStatus::try_from(reply.expect("handled").status),
            Ok(ActionStatus::Committed)
        );
    }
    drop(handled);
    for correlation_id in &published {
        let done = server
            .event_bus()
            .wait_for_completion(WaitForCompletionRequest {
                namespace: Default::default(),
                correlation_id: correlation_id.clone(),
                timeout_ms: 120_000,
                action_id: String::new(),
            })
            .await
            .expect("completed")
            .into_inner();
        assert_eq!(
            ActionStatus::try_from(done.status),
            Ok(ActionStatus::Committed),
            "{correlation_id}"
        );
    }
    assert_eq!(outages, 3, "three outages happened during the load");

    converge(&server).await;
    running.store(false, Ordering::SeqCst);
    assert!(sampler.await.expect("sampler") > 0);
    let versions = canonical_versions(&server).await;
    assert_eq!(versions.len(), keys);
    assert_eq!(
        versions.values().sum::<i64>(),
        (total + extra) as i64,
        "every action committed exactly once"
    );
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox WHERE published_at IS NULL")
        .fetch_one(server.pg())
        .await
        .expect("outbox");
    assert_eq!(unpublished, 0, "the relay published everything");

    // Re-consuming the topic from offset 0 with a new group changes no projection row.
    let before = projection_rows(&server).await;
    let replay = start_on_same_database(&server, |config| {
        kafka_config(config, &brokers, "replay-from-zero");
        config.server.roles = vec!["projection-materializer".into()];
    })
    .await;
    group_caught_up(
        &brokers,
        "replay-from-zero",
        &Config::default().kafka.state_committed_topic,
    )
    .await;
    assert_eq!(projection_rows(&server).await, before);
    replay.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_materializer_killed_mid_batch_and_restarted_applies_every_event_once() {
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    // This server commits and relays; the materializers below are the test's own.
    let server = start(Backend::Postgres, |config| {
        kafka_config(config, &brokers, "unused");
        config.server.roles = vec!["canonical-store".into(), "reducer-service".into()];
    })
    .await;
    let (keys, per_key) = (10, 30);
    let mut load = FuturesUnordered::new();
    for k in 0..keys {
        let server = &server;
        load.push(async move {
            for n in 0..per_key {
                let reply = handle(
                    server,
                    action(&new_id(), &format!("crash-{k}"), "merge", "set", json!({"n": n})),
                )
                .await
                .expect("handle");
                assert_eq!(reply.status, ActionStatus::Committed as i32);
            }
        });
    }
    while load.next().await.is_some() {}
    drop(load);
    let events = (keys * per_key) as u64;

    let topics = reducerd::config::Config::default().kafka;
    let group = format!("crash-{}", new_id());
    let applied = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let materializer = |crash_on_call: Option<(usize, Crash)>| {
        let crashed = Arc::new(tokio::sync::Notify::new());
        let crashed_batch = Arc::new(AtomicU64::new(0));
        let store = Arc::new(CrashingStore {
            inner: server.store.clone(),
            crash_on_call,
            calls: AtomicUsize::new(0),
            applied: applied.clone(),
            duplicates: duplicates.clone(),
            crashed: crashed.clone(),
            crashed_batch: crashed_batch.clone(),
        });
        let materializer = reducerd::pipeline::kafka::KafkaMaterializer {
            member: purereducer_bus::member::GroupMember::join(
                &purereducer_bus::Brokers::plain(&brokers),
                &group,
                &[topics.state_committed_topic.as_str()],
            )
            .expect("consumer"),
            dead_letters: purereducer_bus::reliable_producer(
                &purereducer_bus::Brokers::plain(&brokers),
                "test-dead-letters",
            )
            .expect("producer"),
            topics: purereducer_bus::Topics {
                state_committed: topics.state_committed_topic.clone(),
                reducer_gave_up: topics.reducer_gave_up_topic.clone(),
                intents: topics.intents_topic.clone(),
                actions: topics.actions_topic.clone(),
                dead_letter: topics.dead_letter_topic.clone(),
                partitions: PARTITIONS,
                replication_factor: 1,
            },
            store,
            hub: reducerd::hub::Hub::new(),
            max_records: 25,
            batch_timeout: Duration::from_millis(20),
        };
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _stop = _stop;
            materializer.run(stop_rx).await;
        });
        (task, crashed, crashed_batch)
    };

    // First life: dies inside its second batch, before the commit.
    let (task, crashed, _) = materializer(Some((2, Crash::BeforeCommit)));
    tokio::time::timeout(Duration::from_secs(120), crashed.notified())
        .await
        .expect("the first materializer reached its second batch");
    task.abort();
    assert!(task.await.expect_err("killed").is_cancelled());
    let after_first = applied.load(Ordering::SeqCst);
    assert!(after_first > 0 && after_first < events, "{after_first}");

    // Second life: dies after committing its third batch, before committing offsets.
    let (task, crashed, crashed_batch) = materializer(Some((3, Crash::AfterCommit)));
    tokio::time::timeout(Duration::from_secs(120), crashed.notified())
        .await
        .expect("the second materializer reached its third batch");
    task.abort();
    assert!(task.await.expect_err("killed").is_cancelled());
    let lost_offsets = crashed_batch.load(Ordering::SeqCst);
    assert!(lost_offsets > 0);

    // Third life runs to the end.
    let (task, _, _) = materializer(None);
    converge(&server).await;
    assert_eq!(
        applied.load(Ordering::SeqCst),
        events,
        "every event applied exactly once across the three lives"
    );
    assert!(
        duplicates.load(Ordering::SeqCst) >= lost_offsets,
        "the batch whose offsets were lost came again and was skipped, not applied"
    );
    let versions = canonical_versions(&server).await;
    assert_eq!(versions.values().sum::<i64>(), events as i64);
    for (key, version, _) in projection_rows(&server).await {
        assert_eq!(versions[&key], version, "{key}");
    }
    task.abort();
    server.stop().await;
}
