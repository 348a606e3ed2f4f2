//! The in-process event pipeline: projections, waits, subscriptions and queued actions.

use std::time::Duration;

use futures::StreamExt;
use purereducer_api::v1::{
    ActionStatus, GetProjectionRequest, ListWatermarksRequest, PublishActionRequest, SubscribeRequest,
    SubscriptionFilter, WaitForCompletionRequest, event,
};
use serde_json::json;
use tonic::Code;

use crate::support::{Backend, TestServer, action, handle, json, new_id, start, start_on_same_database};

async fn projection(
    server: &TestServer,
    key: &str,
    min_version: u64,
    max_wait_ms: u32,
) -> purereducer_api::v1::GetProjectionResponse {
    server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: key.into(),
            min_version,
            max_wait_ms,
        })
        .await
        .expect("projection")
        .into_inner()
}

#[tokio::test]
async fn get_projection_right_after_a_commit_sees_it_without_fallback() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = start(backend, |_| {}).await;
        for (n, event) in [(1u64, "PENDING"), (2, "PROCESSING"), (3, "COMPLETED")] {
            let reply = handle(
                &server,
                action(&new_id(), "read-your-write", "fsm", event, json!({"n": n})),
            )
            .await
            .expect("commit");
            assert_eq!(reply.version, n);
            let seen = projection(&server, "read-your-write", reply.version, 10_000).await;
            assert!(!seen.from_canonical, "the projection caught up within the wait");
            let row = seen.projection.expect("row");
            assert!(row.version >= reply.version);
            assert_eq!(row.tag, event);
            assert_eq!(json(row.extras.as_ref().expect("extras"))["n"], n);
        }
        let marks = server
            .projections()
            .list_watermarks(ListWatermarksRequest {})
            .await
            .expect("marks")
            .into_inner();
        assert_eq!(marks.watermarks.len(), 1);
        assert_eq!(marks.watermarks[0].topic, "outbox");
        assert!(marks.watermarks[0].offset >= 3);
        server.stop().await;
    }
}

#[tokio::test]
async fn without_a_materializer_get_projection_falls_back_to_canonical() {
    let server = start(Backend::Sqlite, |config| {
        config.server.roles = vec!["canonical-store".into(), "reducer-service".into()];
    })
    .await;
    let reply = handle(&server, action(&new_id(), "no-mat", "merge", "set", json!({"a": 1})))
        .await
        .expect("commit");
    let started = tokio::time::Instant::now();
    let seen = projection(&server, "no-mat", reply.version, 300).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the full max_wait_ms first"
    );
    assert!(seen.from_canonical);
    let row = seen.projection.expect("canonical answer");
    assert_eq!(row.version, 1);
    assert_eq!(json(row.extras.as_ref().expect("state")), json!({"a": 1}));
    let missing = server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: "nobody".into(),
            min_version: 1,
            max_wait_ms: 10,
        })
        .await
        .expect_err("nothing anywhere");
    assert_eq!(missing.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn subscribe_delivers_every_commit_of_a_filtered_key_in_order() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let filter = SubscriptionFilter {
        workflow_keys: vec!["followed".into()],
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
    for i in 0..20 {
        handle(&server, action(&new_id(), "followed", "merge", "set", json!({"i": i})))
            .await
            .expect("commit");
        handle(&server, action(&new_id(), "ignored", "merge", "set", json!({"i": i})))
            .await
            .expect("commit");
    }
    let mut versions = Vec::new();
    while versions.len() < 20 {
        let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("events keep coming");
        let event = item.expect("stream open").expect("event").event.expect("payload");
        match event.kind.expect("kind") {
            event::Kind::StateCommitted(committed) => {
                assert_eq!(committed.workflow_key, "followed");
                versions.push(committed.version);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
    server.stop().await;
}

#[tokio::test]
async fn published_actions_complete_and_waits_work_before_and_after_on_any_replica() {
    let first = start(Backend::Postgres, |_| {}).await;
    let second = start_on_same_database(&first, |config| config.server.roles = vec!["event-bus".into()]).await;
    let correlation_id = new_id();
    let mut queued = action(&new_id(), "queued", "merge", "set", json!({"q": 1}));
    queued.correlation_id = correlation_id.clone();
    let published = first
        .event_bus()
        .publish_action(PublishActionRequest { action: Some(queued) })
        .await
        .expect("publish")
        .into_inner();
    assert_eq!(published.correlation_id, correlation_id);
    let wait = |server: &TestServer, timeout_ms| {
        let mut client = server.event_bus();
        let request = WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: correlation_id.clone(),
            timeout_ms,
            action_id: String::new(),
        };
        async move { client.wait_for_completion(request).await }
    };
    let done = wait(&first, 10_000).await.expect("completed").into_inner();
    assert_eq!(ActionStatus::try_from(done.status), Ok(ActionStatus::Committed));
    assert_eq!(done.version, 1);
    // After the fact, here and on another process sharing the database.
    assert_eq!(
        wait(&first, 100).await.expect("again").into_inner().result_hash,
        done.result_hash
    );
    assert_eq!(wait(&second, 100).await.expect("elsewhere").into_inner().version, 1);
    let unknown = second
        .event_bus()
        .wait_for_completion(WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: "never-published".into(),
            timeout_ms: 50,
            action_id: String::new(),
        })
        .await
        .expect_err("times out");
    assert_eq!(unknown.code(), Code::DeadlineExceeded);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn queued_actions_of_one_key_apply_in_order() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let mut correlation_ids = Vec::new();
    for i in 0..30 {
        let mut queued = action(
            &new_id(),
            "ordered",
            "json-patch",
            "append",
            json!({"patch": [{"op": "add", "path": "/log/-", "value": i}]}),
        );
        if i == 0 {
            queued.payload = Some(crate::support::object(
                json!({"patch": [{"op": "add", "path": "/log", "value": [0]}]}),
            ));
        }
        let reply = server
            .event_bus()
            .publish_action(PublishActionRequest { action: Some(queued) })
            .await
            .expect("publish");
        correlation_ids.push(reply.into_inner().correlation_id);
    }
    let last = correlation_ids.last().expect("some").clone();
    let done = server
        .event_bus()
        .wait_for_completion(WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: last,
            timeout_ms: 30_000,
            action_id: String::new(),
        })
        .await
        .expect("done")
        .into_inner();
    assert_eq!(done.version, 30);
    let state = server
        .canonical()
        .get_state(purereducer_api::v1::GetStateRequest {
            namespace: Default::default(),
            workflow_key: "ordered".into(),
        })
        .await
        .expect("state")
        .into_inner();
    assert_eq!(
        json(state.state.as_ref().expect("state"))["log"],
        json!((0..30).collect::<Vec<i32>>())
    );
    server.stop().await;
}

async fn publish(server: &TestServer, queued: purereducer_api::v1::Action) -> (String, String) {
    let reply = server
        .event_bus()
        .publish_action(PublishActionRequest { action: Some(queued) })
        .await
        .expect("publish")
        .into_inner();
    (reply.correlation_id, reply.action_id)
}

async fn wait_for(
    server: &TestServer,
    correlation_id: &str,
    action_id: &str,
) -> purereducer_api::v1::WaitForCompletionResponse {
    server
        .event_bus()
        .wait_for_completion(WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: correlation_id.to_owned(),
            timeout_ms: 30_000,
            action_id: action_id.to_owned(),
        })
        .await
        .expect("completed")
        .into_inner()
}

#[tokio::test]
async fn an_acknowledged_publish_stays_queued_through_an_outage_and_a_shutdown() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        // Every commit of this process fails, as in a long database outage.
        let (publisher, store) = crate::support::start_instrumented(backend, |_| {}).await;
        store.fail_next_commits(u32::MAX);
        let mut published = Vec::new();
        for i in 0..20 {
            published.push(
                publish(
                    &publisher,
                    action(&new_id(), "durable", "merge", "set", json!({"last": i})),
                )
                .await,
            );
        }
        // Once the worker has tried (and failed) to apply them, the process stops.
        tokio::time::timeout(Duration::from_secs(30), async {
            while store.batches().is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the worker tried to commit");
        let pg = publisher.pg.clone();
        publisher.stop().await;

        // A later process finds every acknowledged action still queued — none refused — and
        // applies them in order.
        let worker = crate::support::serve_on(store.inner(), pg, |_| {}).await;
        for (n, (correlation_id, action_id)) in published.iter().enumerate() {
            let done = wait_for(&worker, correlation_id, action_id).await;
            assert_eq!(
                ActionStatus::try_from(done.status),
                Ok(ActionStatus::Committed),
                "{backend:?}: {}",
                done.rejection_reason
            );
            assert_eq!(done.action_id, *action_id);
            assert_eq!(done.version, n as u64 + 1, "{backend:?}: applied in queue order");
        }
        worker.stop().await;
    }
}

#[tokio::test]
async fn queued_actions_wait_out_a_database_outage_instead_of_being_refused() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let (server, store) = crate::support::start_instrumented(backend, |_| {}).await;
        store.fail_next_commits(4);
        let mut published = Vec::new();
        for i in 0..5 {
            published.push(publish(&server, action(&new_id(), "outage", "merge", "set", json!({"i": i}))).await);
        }
        let mut versions = Vec::new();
        for (correlation_id, action_id) in &published {
            let done = wait_for(&server, correlation_id, action_id).await;
            assert_eq!(
                ActionStatus::try_from(done.status),
                Ok(ActionStatus::Committed),
                "{backend:?}: {}",
                done.rejection_reason
            );
            versions.push(done.version);
        }
        assert_eq!(versions, vec![1, 2, 3, 4, 5], "{backend:?}");
        assert!(store.batches().iter().filter(|b| b.results.is_empty()).count() >= 4);
        server.stop().await;
    }
}

#[tokio::test]
async fn actions_sharing_a_correlation_id_keep_their_own_outcomes() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let shared = new_id();
    let mut ids = Vec::new();
    for key in ["shared-a", "shared-b"] {
        let mut queued = action(&new_id(), key, "merge", "set", json!({"k": key}));
        queued.correlation_id = shared.clone();
        ids.push(publish(&server, queued).await.1);
    }
    for (id, key) in ids.iter().zip(["shared-a", "shared-b"]) {
        let done = wait_for(&server, &shared, id).await;
        assert_eq!(done.action_id, *id);
        assert_eq!(done.workflow_key, key);
    }
    // Without an action id: one of them, and the answer says which.
    let any = wait_for(&server, &shared, "").await;
    assert!(ids.contains(&any.action_id));
    let bad = server
        .event_bus()
        .wait_for_completion(WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: shared.clone(),
            timeout_ms: 10,
            action_id: "not-a-uuid".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    server.stop().await;
}
