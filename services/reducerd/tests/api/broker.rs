//! End to end against a real Kafka-protocol broker (tansu, started by scripts/test.sh and
//! named by PURE_REDUCER_TEST_KAFKA): topics created at start-up, the relay, the
//! materializer, queued actions, waits on another process and subscriptions.

use std::time::Duration;

use futures::StreamExt;
use purereducer_api::v1::{
    ActionStatus, GetProjectionRequest, PublishActionRequest, SubscribeRequest, SubscriptionFilter,
    WaitForCompletionRequest, event,
};
use serde_json::json;

use crate::support::{Backend, action, handle, new_id, start, start_on_same_database};

/// The broker the tests run against; a missing one fails the test rather than passing it
/// unseen.
pub(crate) fn broker() -> String {
    std::env::var("PURE_REDUCER_TEST_KAFKA")
        .ok()
        .filter(|b| !b.is_empty())
        .expect("PURE_REDUCER_TEST_KAFKA names no broker: scripts/test.sh starts one (tansu) and sets it")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_broker_carries_commits_queued_actions_and_subscriptions() {
    let brokers = broker();
    // Fresh topic names per run: the broker outlives single tests.
    let run = new_id();
    let tune = |config: &mut reducerd::config::Config| {
        config.kafka.brokers = brokers.clone();
        config.kafka.partitions = 3;
        config.kafka.state_committed_topic = format!("t-{run}-state");
        config.kafka.reducer_gave_up_topic = format!("t-{run}-gave-up");
        config.kafka.intents_topic = format!("t-{run}-intents");
        config.kafka.actions_topic = format!("t-{run}-actions");
        config.kafka.dead_letter_topic = format!("t-{run}-dlq");
        config.projection.consumer_group = format!("materializer-{run}");
        config.projection.batch_timeout_ms = 50;
        config.reducer.max_attempts = 50;
    };
    let server = start(Backend::Postgres, tune).await;
    let filter = SubscriptionFilter {
        workflow_keys: vec!["watched".into()],
        ..Default::default()
    };
    let mut stream = server
        .event_bus()
        .subscribe(SubscribeRequest {
            filter: Some(filter),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();

    let mut correlation_ids = Vec::new();
    for i in 0..60 {
        let key = if i % 3 == 0 {
            "watched".to_owned()
        } else {
            format!("other-{}", i % 5)
        };
        let act = action(&new_id(), &key, "merge", "set", json!({"i": i}));
        if i % 2 == 0 {
            let reply = handle(&server, act).await.expect("handled");
            assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
        } else {
            let reply = server
                .event_bus()
                .publish_action(PublishActionRequest { action: Some(act) })
                .await
                .expect("published");
            correlation_ids.push(reply.into_inner().correlation_id);
        }
    }
    let second = start_on_same_database(&server, |config| {
        tune(config);
        config.server.roles = vec!["event-bus".into()];
    })
    .await;
    for correlation_id in &correlation_ids {
        let done = second
            .event_bus()
            .wait_for_completion(WaitForCompletionRequest {
                namespace: Default::default(),
                correlation_id: correlation_id.clone(),
                timeout_ms: 60_000,
                action_id: String::new(),
            })
            .await
            .expect("completion seen from another process")
            .into_inner();
        assert_eq!(ActionStatus::try_from(done.status), Ok(ActionStatus::Committed));
    }

    let versions: Vec<(String, i64)> = sqlx::query_as("SELECT workflow_key, version FROM workflow_state")
        .fetch_all(server.pg())
        .await
        .expect("states");
    assert_eq!(versions.iter().map(|(_, v)| v).sum::<i64>(), 60);
    for (key, version) in &versions {
        let reply = server
            .projections()
            .get_projection(GetProjectionRequest {
                namespace: Default::default(),
                workflow_key: key.clone(),
                min_version: *version as u64,
                max_wait_ms: 60_000,
            })
            .await
            .expect("projection")
            .into_inner();
        assert!(!reply.from_canonical, "{key} reached {version} through Kafka");
    }
    let watched = versions
        .iter()
        .find(|(k, _)| k == "watched")
        .map(|(_, v)| *v)
        .expect("watched exists") as u64;
    let mut seen = Vec::new();
    while seen.len() < watched as usize {
        let item = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("events keep coming");
        if let Some(event::Kind::StateCommitted(committed)) =
            item.expect("open").expect("event").event.and_then(|e| e.kind)
        {
            seen.push(committed.version);
        }
    }
    assert_eq!(
        seen,
        (1..=watched).collect::<Vec<u64>>(),
        "every commit of the key, in version order"
    );
    second.stop().await;
    server.stop().await;
}
