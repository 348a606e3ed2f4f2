//! The database action queue and per-action completions.

use std::sync::Arc;

use purereducer_core::{ActionId, ActionStatus, Namespace, Version};
use purereducer_storage::{Completion, QueuedAction, Store};

fn new_id() -> ActionId {
    ActionId::from_uuid(uuid::Uuid::new_v4())
}

fn queued(key: &str, payload: &str) -> QueuedAction {
    QueuedAction {
        namespace: "default".to_owned(),
        workflow_key: key.to_owned(),
        payload: payload.as_bytes().to_vec(),
        headers: "{}".to_owned(),
    }
}

fn completion(correlation_id: &str, action_id: ActionId, version: u64) -> Completion {
    Completion {
        correlation_id: correlation_id.to_owned(),
        action_id,
        namespace: "default".to_owned(),
        workflow_key: "wf".to_owned(),
        status: ActionStatus::Committed,
        version: Version::new(version),
        result_hash: format!("h{version}"),
        rejection_reason: None,
    }
}

pub async fn completions_are_kept_per_action(store: Arc<dyn Store>) {
    let (a, b) = (new_id(), new_id());
    store
        .record_completion(&completion("shared", a, 1))
        .await
        .expect("record a");
    store
        .record_completion(&completion("shared", b, 2))
        .await
        .expect("record b");
    // Each action keeps its own outcome; without an action id the first recorded answers.
    let default = Namespace::default();
    let of = |id| store.find_completion(&default, "shared", Some(id));
    assert_eq!(of(a).await.expect("find").map(|c| c.version), Some(Version::new(1)));
    assert_eq!(of(b).await.expect("find").map(|c| c.version), Some(Version::new(2)));
    assert_eq!(of(new_id()).await.expect("find"), None);
    let first = store
        .find_completion(&Namespace::default(), "shared", None)
        .await
        .expect("find")
        .expect("one");
    assert_eq!(first.action_id, a);
    // The same action under another correlation id answers there too.
    store
        .record_completion(&completion("other", a, 1))
        .await
        .expect("record");
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "other", None)
            .await
            .expect("find")
            .map(|c| c.action_id),
        Some(a)
    );
}

pub async fn queued_actions_are_claimed_in_order_and_leave_when_finished(store: Arc<dyn Store>) {
    let empty = store.claim_actions(10).await.expect("claim");
    assert!(empty.actions.is_empty());
    empty.finish(&[], &[]).await.expect("finish nothing");

    store
        .enqueue_actions(&[queued("k1", "a"), queued("k2", "b")])
        .await
        .expect("enqueue");
    store.enqueue_actions(&[queued("k1", "c")]).await.expect("enqueue");
    let claim = store.claim_actions(10).await.expect("claim");
    let payloads: Vec<&[u8]> = claim.actions.iter().map(|c| c.action.payload.as_slice()).collect();
    assert_eq!(payloads, vec![b"a".as_slice(), b"b", b"c"]);
    assert_eq!(claim.actions[0].action.workflow_key, "k1");
    assert!(claim.actions.windows(2).all(|w| w[0].seq < w[1].seq));

    // The first two are done (with a completion); the third stays queued.
    let done = [claim.actions[0].seq, claim.actions[1].seq];
    let third = claim.actions[2].seq;
    let id = new_id();
    claim.finish(&[completion("c-q", id, 1)], &done).await.expect("finish");
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c-q", Some(id))
            .await
            .expect("find")
            .map(|c| c.version),
        Some(Version::new(1))
    );
    let again = store.claim_actions(10).await.expect("claim");
    assert_eq!(again.actions.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![third]);
    again.finish(&[], &[third]).await.expect("finish");
    assert!(store.claim_actions(10).await.expect("claim").actions.is_empty());
}

pub async fn an_unfinished_claim_gives_its_actions_back(store: Arc<dyn Store>) {
    store
        .enqueue_actions(&[queued("k", "a"), queued("k", "b")])
        .await
        .expect("enqueue");
    let claim = store.claim_actions(1).await.expect("claim");
    assert_eq!(claim.actions.len(), 1);
    let seq = claim.actions[0].seq;
    claim.release().await.expect("release");
    // Given back unfinished: the same action is claimed again, ahead of the later one.
    let claim = store.claim_actions(10).await.expect("claim");
    assert_eq!(claim.actions.len(), 2);
    assert_eq!(claim.actions[0].seq, seq);
}

/// PostgreSQL only: several processes share the queue. A key whose earlier action another
/// claim holds waits for it; other keys are claimed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_keep_each_keys_order_across_processes() {
    let (store, _) = purereducer_storage::testing::fresh_postgres(10)
        .await
        .expect("postgres test database");
    store
        .enqueue_actions(&[queued("k1", "a"), queued("k2", "b"), queued("k1", "c")])
        .await
        .expect("enqueue");
    let first = store.claim_actions(1).await.expect("claim");
    assert_eq!(first.actions[0].action.payload, b"a");
    // As another process: k1's next action waits behind the held one.
    let second = store.claim_actions(10).await.expect("claim");
    let payloads: Vec<&[u8]> = second.actions.iter().map(|c| c.action.payload.as_slice()).collect();
    assert_eq!(payloads, vec![b"b".as_slice()]);
    let a = first.actions[0].seq;
    first.finish(&[], &[a]).await.expect("finish");
    second.release().await.expect("release");
    let third = store.claim_actions(10).await.expect("claim");
    let payloads: Vec<&[u8]> = third.actions.iter().map(|c| c.action.payload.as_slice()).collect();
    assert_eq!(payloads, vec![b"b".as_slice(), b"c"]);
}

/// PostgreSQL only: a claim whose database session is killed (as when its process dies or
/// the server restarts) fails to finish and gives its actions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_whose_session_dies_gives_its_actions_back() {
    use sqlx::Connection;
    let (store, url) = purereducer_storage::testing::fresh_postgres(10)
        .await
        .expect("postgres test database");
    store.enqueue_actions(&[queued("k", "a")]).await.expect("enqueue");
    let claim = store.claim_actions(10).await.expect("claim");
    let seq = claim.actions[0].seq;
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    let database = url.rsplit('/').next().expect("database name").to_owned();
    sqlx::query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database)
    .execute(&mut admin)
    .await
    .expect("terminate");
    let id = new_id();
    let finished = claim.finish(&[completion("c", id, 1)], &[seq]).await;
    assert!(finished.is_err(), "a dead session cannot finish its claim");
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c", None)
            .await
            .expect("find"),
        None
    );
    let again = store.claim_actions(10).await.expect("claim again");
    assert_eq!(again.actions.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![seq]);
}

/// PostgreSQL only: the relay singleton notices when its session is killed, and another
/// process can take it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_singleton_whose_session_dies_knows_it_is_lost() {
    let (store, _) = purereducer_storage::testing::fresh_postgres(10)
        .await
        .expect("postgres test database");
    let mut held = store.try_singleton("relay").await.expect("try").expect("free");
    assert!(held.still_held().await);
    assert!(
        store.try_singleton("relay").await.expect("try").is_none(),
        "held elsewhere"
    );
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_all(store.pool())
    .await
    .expect("terminate");
    assert_eq!(killed, vec![true]);
    assert!(!held.still_held().await, "the hold died with its session");
    let mut taken = store.try_singleton("relay").await.expect("try").expect("free again");
    assert!(taken.still_held().await);
}

pub async fn retention_prunes_only_published_rows_and_old_completions(store: Arc<dyn Store>) {
    use purereducer_core::Version;
    use std::time::Duration;
    let event = |version: u64| purereducer_storage::OutboxEvent {
        namespace: "default".to_owned(),
        workflow_key: "kept".to_owned(),
        version: Version::new(version),
        event_type: "StateCommitted".to_owned(),
        payload: vec![1, 2, 3],
        headers: serde_json::json!({}),
    };
    store
        .append_events((1..=4).map(event).collect(), Vec::new())
        .await
        .expect("append");
    let pending = store.pending_events(10).await.expect("pending");
    let published: Vec<i64> = pending.iter().take(3).map(|row| row.id).collect();
    store.mark_published(&published).await.expect("mark");
    store
        .record_completion(&completion("old", new_id(), 1))
        .await
        .expect("record");

    // Nothing is old enough yet.
    let day = Duration::from_secs(86_400);
    assert_eq!(store.prune(day, day, 100).await.expect("prune"), (0, 0));
    // With no retention, published rows go (in batches) and the unpublished one stays.
    assert_eq!(
        store.prune(Duration::ZERO, Duration::ZERO, 2).await.expect("prune"),
        (2, 1)
    );
    assert_eq!(
        store.prune(Duration::ZERO, Duration::ZERO, 2).await.expect("prune"),
        (1, 0)
    );
    let left = store.pending_events(10).await.expect("pending");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.version, Version::new(4));
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "old", None)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.prune(Duration::ZERO, Duration::ZERO, 2).await.expect("prune"),
        (0, 0)
    );
}
