//! HandleAction outcomes: committed, duplicate, rejected, the events they write.

use purereducer_api::v1::ActionStatus;
use serde_json::json;

use crate::support::{Backend, action, handle, json, new_id, start, status_of};

async fn outbox_types(server: &crate::support::TestServer, key: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT version, event_type FROM event_outbox WHERE workflow_key = $1 ORDER BY id")
        .bind(key)
        .fetch_all(server.pg())
        .await
        .expect("outbox rows")
}

#[tokio::test]
async fn duplicate_action_repeats_the_first_outcome() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = start(backend, |_| {}).await;
        let id = new_id();
        let first = handle(&server, action(&id, "order-1", "merge", "set", json!({"n": 1})))
            .await
            .expect("first");
        assert_eq!(status_of(&first), ActionStatus::Committed);
        assert_eq!(first.version, 1);
        assert_eq!(first.attempts, 1);
        let again = handle(&server, action(&id, "order-1", "merge", "set", json!({"n": 1})))
            .await
            .expect("again");
        assert_eq!(status_of(&again), ActionStatus::Duplicate);
        assert_eq!(again.version, 1);
        assert_eq!(again.result_hash, first.result_hash);
        assert_eq!(again.state, first.state);
        let next = handle(&server, action(&new_id(), "order-1", "merge", "set", json!({"m": 2})))
            .await
            .expect("next");
        assert_eq!(next.version, 2);
        assert_eq!(json(next.state.as_ref().expect("state")), json!({"n": 1, "m": 2}));
        server.stop().await;
    }
}

#[tokio::test]
async fn fsm_commits_transitions_with_intents_and_rejects_invalid_ones() {
    let server = start(Backend::Postgres, |_| {}).await;
    let created = handle(
        &server,
        action(&new_id(), "job-1", "fsm", "PENDING", json!({"owner": "ana"})),
    )
    .await
    .expect("create");
    assert_eq!(status_of(&created), ActionStatus::Committed);
    let started = handle(&server, action(&new_id(), "job-1", "fsm", "PROCESSING", json!({})))
        .await
        .expect("start");
    assert_eq!(started.version, 2);
    assert_eq!(started.intents.len(), 1);
    assert_eq!(started.intents[0].intent_type, "transition");

    let invalid_id = new_id();
    let rejected = handle(&server, action(&invalid_id, "job-1", "fsm", "PENDING", json!({})))
        .await
        .expect("reject");
    assert_eq!(status_of(&rejected), ActionStatus::Rejected);
    assert_eq!(rejected.version, 2, "a rejection commits nothing");
    assert!(
        rejected.rejection_reason.contains("no transition from PROCESSING"),
        "{}",
        rejected.rejection_reason
    );
    let repeated = handle(&server, action(&invalid_id, "job-1", "fsm", "PENDING", json!({})))
        .await
        .expect("repeat");
    assert_eq!(status_of(&repeated), ActionStatus::Duplicate);
    assert_eq!(repeated.result_hash, rejected.result_hash);
    assert_eq!(repeated.rejection_reason, rejected.rejection_reason);

    let events = outbox_types(&server, "job-1").await;
    let expected: Vec<(i64, String)> = vec![
        (1, "StateCommitted".into()),
        (1, "IntentEmitted".into()),
        (2, "StateCommitted".into()),
        (2, "IntentEmitted".into()),
    ];
    assert_eq!(events, expected);
    server.stop().await;
}

#[tokio::test]
async fn json_patch_test_op_makes_updates_conditional() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let patch = |ops| json!({"patch": ops});
    let created = handle(
        &server,
        action(
            &new_id(),
            "doc",
            "json-patch",
            "patch",
            patch(json!([{"op": "add", "path": "/stock", "value": 1}])),
        ),
    )
    .await
    .expect("create");
    assert_eq!(status_of(&created), ActionStatus::Committed);
    let guarded =
        json!([{"op": "test", "path": "/stock", "value": 1}, {"op": "replace", "path": "/stock", "value": 0}]);
    let first = handle(
        &server,
        action(&new_id(), "doc", "json-patch", "take", patch(guarded.clone())),
    )
    .await
    .expect("take");
    assert_eq!(status_of(&first), ActionStatus::Committed);
    let second = handle(&server, action(&new_id(), "doc", "json-patch", "take", patch(guarded)))
        .await
        .expect("take again");
    assert_eq!(status_of(&second), ActionStatus::Rejected);
    assert_eq!(second.version, 2);
    server.stop().await;
}

#[tokio::test]
async fn declared_workflow_types_come_from_the_config() {
    let server = start(Backend::Sqlite, |config| {
        let declared = reducerd::config::Config::from_toml(
            "[workflow_types.door]\nreducer = \"fsm\"\ninitial = \"closed\"\n\
             transitions = [{ from = \"closed\", to = \"open\", on = \"push\" }, { from = \"open\", to = \"closed\", on = \"pull\" }]\n",
        )
        .expect("valid toml");
        config.workflow_types = declared.workflow_types;
    })
    .await;
    let opened = handle(&server, action(&new_id(), "door-1", "door", "push", json!({})))
        .await
        .expect("push");
    assert_eq!(status_of(&opened), ActionStatus::Committed);
    assert_eq!(json(opened.state.as_ref().expect("state"))["status"], "open");
    let again = handle(&server, action(&new_id(), "door-1", "door", "push", json!({})))
        .await
        .expect("push again");
    assert_eq!(status_of(&again), ActionStatus::Rejected);
    server.stop().await;
}
