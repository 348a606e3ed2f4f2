//! Exactly-once and gap-free versions under concurrency, on PostgreSQL.

use std::collections::HashSet;

use futures::future::join_all;
use purereducer_api::v1::ActionStatus;
use serde_json::json;

use crate::support::{Backend, action, handle, new_id, start, status_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_actions_on_one_key_all_commit_without_gaps() {
    let server = start(Backend::Postgres, |config| {
        config.reducer.max_attempts = 100_000;
        config.reducer.backoff_base_ms = 1;
        config.reducer.backoff_cap_ms = 20;
    })
    .await;
    let ids: Vec<String> = (0..200).map(|_| new_id()).collect();
    let replies = join_all(ids.iter().enumerate().map(|(i, id)| {
        handle(
            &server,
            action(id, "hot", "merge", "inc", json!({ format!("a{i}"): i })),
        )
    }))
    .await;
    let mut versions: Vec<u64> = replies
        .iter()
        .map(|reply| {
            let reply = reply.as_ref().expect("handled");
            assert_eq!(status_of(reply), ActionStatus::Committed);
            reply.version
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=200).collect::<Vec<u64>>(),
        "each commit took its own version"
    );

    let final_version: i64 = sqlx::query_scalar("SELECT version FROM workflow_state WHERE workflow_key = 'hot'")
        .fetch_one(server.pg())
        .await
        .expect("state row");
    assert_eq!(final_version, 200);
    let recorded: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT action_id, version FROM action_dedup_log WHERE workflow_key = 'hot' ORDER BY version")
            .fetch_all(server.pg())
            .await
            .expect("dedup rows");
    assert_eq!(recorded.len(), 200, "each action recorded exactly once");
    assert_eq!(
        recorded.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<i64>>()
    );
    let recorded_ids: HashSet<String> = recorded.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(recorded_ids, ids.iter().cloned().collect::<HashSet<_>>());
    let events: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM event_outbox WHERE workflow_key = 'hot' AND event_type = 'StateCommitted' ORDER BY version",
    )
    .fetch_all(server.pg())
    .await
    .expect("outbox rows");
    assert_eq!(
        events,
        (1..=200).collect::<Vec<i64>>(),
        "one StateCommitted per version"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_copies_of_one_action_apply_once() {
    let server = start(Backend::Postgres, |_| {}).await;
    let id = new_id();
    let replies =
        join_all((0..50).map(|_| handle(&server, action(&id, "once", "merge", "set", json!({"n": 1}))))).await;
    let replies: Vec<_> = replies.into_iter().map(|r| r.expect("handled")).collect();
    let committed = replies
        .iter()
        .filter(|r| status_of(r) == ActionStatus::Committed)
        .count();
    assert_eq!(committed, 1, "exactly one copy applies");
    assert!(
        replies
            .iter()
            .all(|r| matches!(status_of(r), ActionStatus::Committed | ActionStatus::Duplicate))
    );
    assert!(replies.iter().all(|r| r.version == 1), "all agree on the version");
    assert!(
        replies.iter().all(|r| r.result_hash == replies[0].result_hash),
        "all agree on result_hash"
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox WHERE workflow_key = 'once'")
        .fetch_one(server.pg())
        .await
        .expect("outbox count");
    assert_eq!(events, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_never_gives_up_on_a_hot_key_under_default_retries() {
    // Inside one server a key has one owner: its actions queue and fold instead of racing,
    // so the default three attempts are never exhausted. (Giving up across servers is
    // covered in `engine`.)
    let server = start(Backend::Postgres, |_| {}).await;
    let replies =
        join_all((0..120).map(|i| handle(&server, action(&new_id(), "contended", "merge", "set", json!({"i": i})))))
            .await;
    let statuses: Vec<ActionStatus> = replies
        .iter()
        .map(|r| status_of(r.as_ref().expect("handled")))
        .collect();
    assert!(statuses.iter().all(|s| *s == ActionStatus::Committed), "{statuses:?}");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_outbox WHERE workflow_key = 'contended' AND event_type = 'ReducerGaveUp'",
    )
    .fetch_one(server.pg())
    .await
    .expect("outbox count");
    assert_eq!(events, 0);
    let version: i64 = sqlx::query_scalar("SELECT version FROM workflow_state WHERE workflow_key = 'contended'")
        .fetch_one(server.pg())
        .await
        .expect("state");
    assert_eq!(version, 120, "every action took one version");
    server.stop().await;
}
