//! Several processes on one PostgreSQL database without Kafka: one of them materializes the
//! outbox at a time (the others stand by), subscribers of every process see every event once
//! and in order, the watermark counts each event once, and when the materializing process
//! stops another takes over.

use std::time::Duration;

use purereducer_api::v1::{ActionStatus, GetProjectionRequest, ListWatermarksRequest, event};
use serde_json::json;

use crate::support::{Backend, TestServer, action, handle, new_id, start, start_on_same_database, status_of};

const KEYS: [&str; 3] = ["fan-0", "fan-1", "fan-2"];

async fn subscribe(server: &TestServer) -> tonic::Streaming<purereducer_api::v1::SubscribeResponse> {
    server.subscribe_keys(&KEYS, 0).await.expect("subscribe")
}

/// The next `count` commits a subscription delivers, as (key, version); fails rather than
/// waits for ever when they do not all come.
async fn commits(
    stream: &mut tonic::Streaming<purereducer_api::v1::SubscribeResponse>,
    count: usize,
) -> Vec<(String, u64)> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events arrived: {seen:?}", seen.len()))
            .expect("stream")
            .expect("an event");
        if let Some(event::Kind::StateCommitted(e)) = message.event.and_then(|e| e.kind) {
            seen.push((e.workflow_key, e.version));
        }
    }
    seen
}

async fn projected(server: &TestServer, key: &str, version: u64) -> u64 {
    let answer = server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: String::new(),
            workflow_key: key.into(),
            min_version: version,
            max_wait_ms: 15_000,
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(!answer.from_canonical, "{key} v{version} was not materialized in time");
    answer.projection.map_or(0, |p| p.version)
}

async fn set(server: &TestServer, key: &str, n: usize) {
    let reply = handle(server, action(&new_id(), key, "merge", "set", json!({ "n": n })))
        .await
        .expect("handled");
    assert_eq!(status_of(&reply), ActionStatus::Committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_without_kafka_share_one_pipeline_and_every_subscriber_sees_every_event() {
    // The first process materializes (it was alone when it took the pipeline), the second
    // stands by.
    // Its first event is of a key no subscriber follows: it may still be on its way to
    // subscribers when the projection already shows it.
    let first = start(Backend::Postgres, |_| {}).await;
    set(&first, "fan-warm-up", 0).await;
    assert_eq!(projected(&first, "fan-warm-up", 1).await, 1);
    let second = start_on_same_database(&first, |_| {}).await;

    let mut on_first = subscribe(&first).await;
    let mut on_second = subscribe(&second).await;
    for n in 1..=60 {
        let server = if n % 2 == 0 { &first } else { &second };
        set(server, KEYS[n % KEYS.len()], n).await;
    }
    let expected: Vec<Vec<u64>> = KEYS
        .iter()
        .map(|key| {
            let versions = (1..=60).filter(|n| KEYS[n % KEYS.len()] == *key).count() as u64;
            (1..=versions).collect()
        })
        .collect();
    for (name, stream) in [("first", &mut on_first), ("second", &mut on_second)] {
        let seen = commits(stream, 60).await;
        for (key, versions) in KEYS.iter().zip(&expected) {
            let of_key: Vec<u64> = seen.iter().filter(|(k, _)| k == key).map(|(_, v)| *v).collect();
            assert_eq!(
                &of_key, versions,
                "subscriber on the {name} process, key {key}: every event once, in order"
            );
        }
    }

    // One pipeline counted each outbox row once.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
        .fetch_one(first.pg())
        .await
        .expect("count");
    let marks = second
        .projections()
        .list_watermarks(ListWatermarksRequest::default())
        .await
        .expect("watermarks")
        .into_inner()
        .watermarks;
    let outbox: Vec<i64> = marks.iter().filter(|w| w.topic == "outbox").map(|w| w.offset).collect();
    assert_eq!(outbox, [rows], "the watermark is the number of events materialized");

    // The materializing process stops: the other takes over and keeps projections current.
    first.stop().await;
    for n in 61..=63 {
        set(&second, KEYS[1], n).await;
    }
    let last = expected[1].last().copied().unwrap_or(0) + 3;
    assert_eq!(projected(&second, KEYS[1], last).await, last);
    let after = commits(&mut on_second, 3).await;
    assert_eq!(
        after,
        (last - 2..=last).map(|v| (KEYS[1].to_owned(), v)).collect::<Vec<_>>()
    );
    second.stop().await;
}
