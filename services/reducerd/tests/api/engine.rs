//! The engine through the API, on both backends: a hot key's actions fold into fewer
//! commits than actions and stay gap-free; refusals and duplicates inside and across
//! batches; two servers on one database; giving up when another server always writes first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use purereducer_api::v1::{ActionStatus, GetStateRequest, TryCommitRequest};
use purereducer_core::{ActionId, WorkflowKey};
use purereducer_storage::Store;
use serde_json::json;

use crate::support::{Backend, TestServer, action, handle, new_id, object, serve_on, start_instrumented, status_of};

/// Every role but the projection materializer, so outbox rows stay pending for inspection.
pub(crate) fn without_materializer(config: &mut reducerd::config::Config) {
    config.server.roles = ["canonical-store", "action-dedup", "reducer-service"]
        .map(String::from)
        .to_vec();
}

/// The StateCommitted versions of `key` in outbox order.
async fn committed_versions(store: &Arc<dyn Store>, key: &str) -> Vec<u64> {
    store
        .pending_events(100_000)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|e| e.event.workflow_key == key && e.event.event_type == "StateCommitted")
        .map(|e| e.event.version.get())
        .collect()
}

async fn two_hundred_actions_on_one_key_fold_and_stay_gap_free(backend: Backend) {
    // Default retry settings: within one server a hot key never conflicts.
    let (server, recorded) = start_instrumented(backend, without_materializer).await;
    let ids: Vec<String> = (0..200).map(|_| new_id()).collect();
    let replies = join_all(ids.iter().enumerate().map(|(i, id)| {
        handle(
            &server,
            action(id, "hot", "merge", "set", json!({ format!("a{i}"): i })),
        )
    }))
    .await;
    let mut by_version = HashMap::new();
    for (id, reply) in ids.iter().zip(&replies) {
        let reply = reply.as_ref().expect("handled");
        assert_eq!(status_of(reply), ActionStatus::Committed, "{id}");
        assert_eq!(reply.attempts, 1, "no conflicts inside one server");
        assert_eq!(&reply.action_id, id, "each caller gets its own outcome");
        assert!(
            by_version.insert(reply.version, id.clone()).is_none(),
            "versions are not shared"
        );
    }
    let mut versions: Vec<u64> = by_version.keys().copied().collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=200).collect::<Vec<u64>>());

    let commits = recorded
        .batches()
        .iter()
        .flat_map(|b| b.requests.iter().filter(|(k, _)| k == "hot").map(|(_, s)| s.clone()))
        .collect::<Vec<_>>();
    assert!(commits.len() < 200, "200 actions folded into {} commits", commits.len());
    assert!(
        commits.iter().any(|c| c.records.len() > 1),
        "at least one commit folded several actions"
    );

    let store = server.store.clone();
    let key = WorkflowKey::parse(&purereducer_core::Namespace::default(), "hot").expect("key");
    let pairs: Vec<(WorkflowKey, ActionId)> = ids
        .iter()
        .map(|id| (key.clone(), ActionId::parse(id, "id").expect("uuid")))
        .collect();
    let records = store.find_processed_many(&pairs).await.expect("records");
    assert_eq!(records.len(), 200, "one dedup record per action");
    for (_, record) in &records {
        assert_eq!(
            by_version.get(&record.version.get()),
            Some(&record.action_id.to_string()),
            "each record holds its own action's version"
        );
    }
    assert_eq!(
        committed_versions(&store, "hot").await,
        (1..=200).collect::<Vec<u64>>(),
        "200 StateCommitted events in version order"
    );

    // Duplicates across batches: every repeat answers with the first outcome.
    let again = join_all(ids.iter().take(50).enumerate().map(|(i, id)| {
        handle(
            &server,
            action(id, "hot", "merge", "set", json!({ format!("a{i}"): i })),
        )
    }))
    .await;
    for (reply, first) in again.iter().zip(&replies) {
        let (reply, first) = (reply.as_ref().expect("handled"), first.as_ref().expect("handled"));
        assert_eq!(status_of(reply), ActionStatus::Duplicate);
        assert_eq!((reply.version, &reply.result_hash), (first.version, &first.result_hash));
    }
    assert_eq!(
        committed_versions(&store, "hot").await.len(),
        200,
        "duplicates wrote nothing"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_actions_on_one_key_fold_and_stay_gap_free_on_postgres() {
    two_hundred_actions_on_one_key_fold_and_stay_gap_free(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_actions_on_one_key_fold_and_stay_gap_free_on_sqlite() {
    two_hundred_actions_on_one_key_fold_and_stay_gap_free(Backend::Sqlite).await;
}

async fn refusals_and_repeats_inside_concurrent_folds(backend: Backend) {
    let (server, recorded) = start_instrumented(backend, without_materializer).await;
    // Every fifth action's JSON Patch tests for a value that is never there: refused.
    let ids: Vec<String> = (0..100).map(|_| new_id()).collect();
    let payload = |i: usize| {
        if i % 5 == 4 {
            json!({"patch": [{"op": "test", "path": "/never", "value": true}, {"op": "add", "path": "/x", "value": i}]})
        } else {
            json!({"patch": [{"op": "add", "path": format!("/a{i}"), "value": i}]})
        }
    };
    // Each action is sent twice at once, so copies meet inside folds and across them.
    let sends = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| [(i, id.clone()), (i, id.clone())])
        .map(|(i, id)| {
            let server = &server;
            async move {
                (
                    i,
                    handle(server, action(&id, "doc", "json-patch", "edit", payload(i))).await,
                )
            }
        });
    let replies = join_all(sends).await;
    let mut first_of: HashMap<usize, (ActionStatus, u64, String)> = HashMap::new();
    let mut committed = HashSet::new();
    for (i, reply) in &replies {
        let reply = reply.as_ref().expect("handled");
        let status = status_of(reply);
        let seen = (reply.version, reply.result_hash.clone());
        match first_of.get(i) {
            None if status != ActionStatus::Duplicate => {
                first_of.insert(*i, (status, seen.0, seen.1));
            }
            _ => {}
        }
        if status == ActionStatus::Committed {
            assert!(committed.insert(reply.version), "version {} taken twice", reply.version);
        }
    }
    for (i, reply) in &replies {
        let reply = reply.as_ref().expect("handled");
        let (status, version, hash) = first_of.get(i).expect("one copy applied");
        if status_of(reply) == ActionStatus::Duplicate {
            assert_eq!(
                (reply.version, &reply.result_hash),
                (*version, hash),
                "a copy answers with the first outcome"
            );
        }
        let expected = if i % 5 == 4 {
            ActionStatus::Rejected
        } else {
            ActionStatus::Committed
        };
        assert_eq!(*status, expected, "action {i}");
    }
    let applied = (0..100).filter(|i| i % 5 != 4).count() as u64;
    assert_eq!(
        committed,
        (1..=applied).collect::<HashSet<u64>>(),
        "refusals take no version"
    );
    let store = server.store.clone();
    assert_eq!(
        committed_versions(&store, "doc").await,
        (1..=applied).collect::<Vec<u64>>()
    );
    let folded_refusal = recorded
        .batches()
        .iter()
        .flat_map(|b| b.requests.clone())
        .any(|(_, s)| {
            s.records.len() > 1
                && s.records
                    .iter()
                    .any(|(_, st, _)| *st == purereducer_core::ActionStatus::Rejected)
                && s.records
                    .iter()
                    .any(|(_, st, _)| *st == purereducer_core::ActionStatus::Committed)
        });
    assert!(folded_refusal, "some commit folded a refusal between applied actions");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_repeats_inside_concurrent_folds_on_postgres() {
    refusals_and_repeats_inside_concurrent_folds(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_repeats_inside_concurrent_folds_on_sqlite() {
    refusals_and_repeats_inside_concurrent_folds(Backend::Sqlite).await;
}

/// Two servers (two engines, each with its own owners) on one database.
pub(crate) async fn pair(
    backend: Backend,
    max_attempts: u32,
) -> (TestServer, TestServer, Arc<purereducer_storage::testing::Instrumented>) {
    let tune = move |config: &mut reducerd::config::Config| {
        without_materializer(config);
        config.reducer.max_attempts = max_attempts;
        config.reducer.backoff_base_ms = 1;
        config.reducer.backoff_cap_ms = 20;
    };
    let (first, recorded) = start_instrumented(backend, tune).await;
    let inner: Arc<dyn Store> = match backend {
        Backend::Postgres => Arc::new(purereducer_storage::postgres::PgStore::from_pool(first.pg().clone())),
        Backend::Sqlite => recorded.inner(),
    };
    let second = serve_on(inner, first.pg.clone(), tune).await;
    (first, second, recorded)
}

async fn two_servers_hammering_the_same_keys_stay_gap_free(backend: Backend) {
    let (first, second, _) = pair(backend, 100_000).await;
    let keys = ["p0", "p1", "p2", "p3"];
    let sends = (0..400).map(|i| {
        let server = if i % 2 == 0 { &first } else { &second };
        let key = keys[i % keys.len()];
        async move {
            handle(
                server,
                action(&new_id(), key, "merge", "set", json!({ format!("a{i}"): i })),
            )
            .await
        }
    });
    let replies = join_all(sends).await;
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    let mut retried = 0;
    for reply in &replies {
        let reply = reply.as_ref().expect("handled");
        assert_eq!(status_of(reply), ActionStatus::Committed);
        retried += u32::from(reply.attempts > 1);
        versions
            .entry(reply.workflow_key.clone())
            .or_default()
            .push(reply.version);
    }
    let store = first.store.clone();
    for key in keys {
        let mut got = versions.remove(key).unwrap_or_default();
        got.sort_unstable();
        assert_eq!(
            got,
            (1..=100).collect::<Vec<u64>>(),
            "{key}: each action its own version"
        );
        assert_eq!(
            committed_versions(&store, key).await,
            (1..=100).collect::<Vec<u64>>(),
            "{key}: events"
        );
    }
    // Only a commit that lost a compare-and-set to the other server is retried.
    println!("{retried} of 400 actions retried after the other server wrote first");
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_hammering_the_same_keys_stay_gap_free_on_postgres() {
    two_servers_hammering_the_same_keys_stay_gap_free(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_hammering_the_same_keys_stay_gap_free_on_sqlite() {
    two_servers_hammering_the_same_keys_stay_gap_free(Backend::Sqlite).await;
}

async fn losing_every_attempt_to_another_server_gives_up_and_is_accounted(backend: Backend) {
    let (first, second, recorded) = pair(backend, 3).await;
    let created = handle(&first, action(&new_id(), "contested", "merge", "set", json!({"n": 0})))
        .await
        .expect("created");
    assert_eq!(created.version, 1);
    // Before each of the first server's commits, the second server writes the key first.
    let channel = second.channel.clone();
    recorded.interfere(Arc::new(move |keys| {
        let channel = channel.clone();
        Box::pin(async move {
            if !keys.iter().any(|k| k == "contested") {
                return;
            }
            let mut canonical =
                purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient::new(channel);
            let current = canonical
                .get_state(GetStateRequest {
                    namespace: Default::default(),
                    workflow_key: "contested".to_owned(),
                })
                .await
                .expect("state")
                .into_inner()
                .version;
            canonical
                .try_commit(TryCommitRequest {
                    workflow_key: "contested".to_owned(),
                    expected_version: current,
                    state: Some(object(json!({"n": "other"}))),
                    ..Default::default()
                })
                .await
                .expect("the other server commits");
        })
    }));
    let lost = handle(&first, action(&new_id(), "contested", "merge", "set", json!({"n": 1})))
        .await
        .expect("an outcome");
    assert_eq!(status_of(&lost), ActionStatus::GaveUp);
    assert_eq!((lost.attempts, lost.version), (3, 4));
    let store = first.store.clone();
    let events = store.pending_events(1000).await.expect("outbox");
    let gave_up = events.iter().filter(|e| e.event.event_type == "ReducerGaveUp").count();
    assert_eq!(gave_up, 1, "a ReducerGaveUp event per GAVE_UP");
    assert_eq!(
        committed_versions(&store, "contested").await,
        vec![1, 2, 3, 4],
        "only the other server's commits took versions"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_every_attempt_to_another_server_gives_up_and_is_accounted_on_postgres() {
    losing_every_attempt_to_another_server_gives_up_and_is_accounted(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_every_attempt_to_another_server_gives_up_and_is_accounted_on_sqlite() {
    losing_every_attempt_to_another_server_gives_up_and_is_accounted(Backend::Sqlite).await;
}
