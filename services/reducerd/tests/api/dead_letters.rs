//! Dead letters of the in-process pipeline: an event it can never apply is kept in the
//! dead-letter table, counted, and passed, while every other key keeps flowing; an outage
//! only delays it.

use purereducer_api::v1::{ActionStatus, GetProjectionRequest};
use purereducer_core::Version;
use purereducer_storage::{OutboxEvent, Store};
use reducerd::events::{CommitContext, commit_events};
use serde_json::json;

use crate::support::{Backend, TestServer, action, handle, new_id, start, start_instrumented, status_of};

async fn projection_reaches(server: &TestServer, key: &str, version: u64) {
    let reply = server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: key.into(),
            min_version: version,
            max_wait_ms: 30_000,
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(
        !reply.from_canonical,
        "the projection of {key} reached version {version}"
    );
}

fn row(key: &str, version: u64, payload: Vec<u8>) -> OutboxEvent {
    OutboxEvent {
        namespace: "default".to_owned(),
        workflow_key: key.to_owned(),
        version: Version::new(version),
        event_type: "StateCommitted".to_owned(),
        payload,
        headers: json!({}),
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_and_counted_while_other_keys_flow() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = start(backend, |_| {}).await;
        let mut poison = vec![row("undecodable", 1, b"\xff\xffnot an event".to_vec())];
        if matches!(backend, Backend::Postgres) {
            // Decodes, but PostgreSQL refuses its projection row every time (jsonb has no NUL).
            let context = CommitContext {
                workflow_key: "refused",
                namespace: "default",
                workflow_type: "merge",
                action_id: new_id(),
                action_type: "set",
                correlation_id: "c",
            };
            let state = json!({"text": "a\u{0}b"}).as_object().expect("object").clone();
            poison.extend(commit_events(&context, Version::new(1), &state, &[], "h"));
        }
        let poisoned = poison.len();
        server
            .store
            .append_events(poison, Vec::new())
            .await
            .expect("outbox rows");
        for i in 1..=3u64 {
            let reply = handle(&server, action(&new_id(), "flowing", "merge", "set", json!({"i": i})))
                .await
                .expect("handled");
            assert_eq!(status_of(&reply), ActionStatus::Committed);
            projection_reaches(&server, "flowing", i).await;
        }
        let letters: Vec<_> = server
            .store
            .dead_letters(10)
            .await
            .expect("dead letters")
            .into_iter()
            .map(|l| l.letter)
            .collect();
        assert_eq!(letters.len(), poisoned, "{backend:?}: {letters:?}");
        let mut keys: Vec<&str> = letters.iter().map(|l| l.workflow_key.as_str()).collect();
        keys.sort_unstable();
        let expected: &[&str] = if poisoned == 2 {
            &["refused", "undecodable"]
        } else {
            &["undecodable"]
        };
        assert_eq!(keys, expected);
        assert!(
            letters
                .iter()
                .all(|l| l.source.starts_with("outbox/") && !l.error.is_empty())
        );
        assert!(
            server.store.pending_events(100).await.expect("pending").is_empty(),
            "{backend:?}: nothing left behind"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_database_outage_during_materialization_delays_but_dead_letters_nothing() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let (server, store) = start_instrumented(backend, |_| {}).await;
        store.fail_next_applies(6);
        for i in 1..=3u64 {
            let reply = handle(&server, action(&new_id(), "delayed", "merge", "set", json!({"i": i})))
                .await
                .expect("handled");
            assert_eq!(status_of(&reply), ActionStatus::Committed);
        }
        projection_reaches(&server, "delayed", 3).await;
        assert_eq!(store.applies_left_to_fail(), 0, "every injected failure was met");
        assert!(
            store.dead_letters(10).await.expect("dead letters").is_empty(),
            "{backend:?}"
        );
        server.stop().await;
    }
}
