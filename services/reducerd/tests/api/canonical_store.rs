//! GetState and TryCommit: compare-and-set with gap-free versions.

use purereducer_api::v1::{GetStateRequest, Provenance, TryCommitRequest, try_commit_response::Outcome};
use serde_json::json;

use crate::support::{Backend, TestServer, json, object, start};

async fn try_commit(server: &TestServer, key: &str, expected: u64, state: serde_json::Value) -> Outcome {
    server
        .canonical()
        .try_commit(TryCommitRequest {
            workflow_key: key.into(),
            expected_version: expected,
            state: Some(object(state)),
            provenance: Some(Provenance {
                actor: "test".into(),
                reason: "conformance".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("try commit")
        .into_inner()
        .outcome
        .expect("an outcome")
}

#[tokio::test]
async fn try_commit_creates_at_zero_and_conflicts_on_stale_versions() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = start(backend, |_| {}).await;
        let Outcome::Committed(created) = try_commit(&server, "wf", 0, json!({"a": 1})).await else {
            panic!("create")
        };
        assert_eq!(created.version, 1);
        let Outcome::Conflict(again) = try_commit(&server, "wf", 0, json!({"a": 9})).await else {
            panic!("conflict")
        };
        assert_eq!(again.current_version, 1);
        let Outcome::Committed(next) = try_commit(&server, "wf", 1, json!({"a": 2})).await else {
            panic!("commit")
        };
        assert_eq!(next.version, 2);
        let Outcome::Conflict(stale) = try_commit(&server, "wf", 1, json!({"a": 3})).await else {
            panic!("stale")
        };
        assert_eq!(stale.current_version, 2);
        let Outcome::Conflict(missing) = try_commit(&server, "nobody", 4, json!({})).await else {
            panic!("missing")
        };
        assert_eq!(missing.current_version, 0);

        let stored = server
            .canonical()
            .get_state(GetStateRequest {
                namespace: Default::default(),
                workflow_key: "wf".into(),
            })
            .await
            .expect("read")
            .into_inner();
        assert_eq!(stored.version, 2);
        assert_eq!(json(stored.state.as_ref().expect("state")), json!({"a": 2}));
        assert_eq!(stored.workflow_type, "default");
        assert_eq!(stored.namespace, "default");
        assert!(stored.updated_at.is_some());
        server.stop().await;
    }
}

#[tokio::test]
async fn try_commit_publishes_state_committed_events() {
    let server = start(Backend::Postgres, |_| {}).await;
    try_commit(&server, "evented", 0, json!({"a": 1})).await;
    try_commit(&server, "evented", 1, json!({"a": 2})).await;
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM event_outbox WHERE workflow_key = 'evented' AND event_type = 'StateCommitted' ORDER BY id",
    )
    .fetch_all(server.pg())
    .await
    .expect("outbox");
    assert_eq!(versions, vec![1, 2]);
    let provenance: serde_json::Value =
        sqlx::query_scalar("SELECT provenance FROM workflow_state WHERE workflow_key = 'evented'")
            .fetch_one(server.pg())
            .await
            .expect("provenance");
    assert_eq!(provenance["actor"], "test");
    server.stop().await;
}
