//! Operator repairs through the real server on both backends: retrying an action that gave
//! up applies it exactly once; replaying a dead letter writes its projection once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use purereducer_api::v1::{
    self as api, ActionStatus, GetProjectionRequest, GetStateRequest, ListDeadLettersRequest, ReplayDeadLetterRequest,
    RetryActionRequest, TryCommitRequest,
};
use purereducer_storage::DeadLetter;
use serde_json::json;
use tonic::Code;

use crate::engine::{pair, without_materializer};
use crate::support::{Backend, action, handle, json, new_id, object, start, status_of};

async fn a_retried_give_up_applies_exactly_once(backend: Backend) {
    let (first, second, recorded) = pair(backend, 2).await;
    let key = "retried-1";
    handle(&first, action(&new_id(), key, "merge", "set", json!({"n": 0})))
        .await
        .expect("created");
    let interfering = Arc::new(AtomicBool::new(true));
    let (on, channel) = (interfering.clone(), second.channel.clone());
    recorded.interfere(Arc::new(move |keys| {
        let (on, channel) = (on.clone(), channel.clone());
        Box::pin(async move {
            if !on.load(Ordering::SeqCst) || !keys.iter().any(|k| k == "retried-1") {
                return;
            }
            let mut canonical = api::canonical_store_service_client::CanonicalStoreServiceClient::new(channel);
            let current = canonical
                .get_state(GetStateRequest {
                    workflow_key: "retried-1".into(),
                    ..Default::default()
                })
                .await
                .expect("state")
                .into_inner()
                .version;
            canonical
                .try_commit(TryCommitRequest {
                    workflow_key: "retried-1".into(),
                    expected_version: current,
                    state: Some(object(json!({"n": "other"}))),
                    ..Default::default()
                })
                .await
                .expect("the other server commits");
        })
    }));
    let id = new_id();
    let sent = action(&id, key, "merge", "set", json!({"retried": true}));
    let lost = handle(&first, sent.clone()).await.expect("gave up");
    assert_eq!(status_of(&lost), ActionStatus::GaveUp);
    interfering.store(false, Ordering::SeqCst);

    let mut reducer = first.reducer();
    let retry = |action_id: &str| RetryActionRequest {
        workflow_key: key.into(),
        action_id: action_id.into(),
        ..Default::default()
    };
    let retried = reducer
        .retry_action(retry(&id))
        .await
        .expect("retried")
        .into_inner()
        .outcome
        .expect("an outcome");
    assert_eq!(status_of(&retried), ActionStatus::Committed);
    assert_eq!(retried.version, lost.version + 1);
    assert_eq!(
        json(retried.state.as_ref().expect("state")),
        json!({"n": "other", "retried": true})
    );
    // Applied once: the same action sent again is a duplicate, a second retry is refused.
    let again = handle(&first, sent).await.expect("resent");
    assert_eq!(
        (status_of(&again), again.version),
        (ActionStatus::Duplicate, retried.version)
    );
    let refused = reducer.retry_action(retry(&id)).await.expect_err("applied already");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("COMMITTED"), "{}", refused.message());
    let unknown = reducer
        .retry_action(retry(&new_id()))
        .await
        .expect_err("no such action");
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = reducer.retry_action(retry("not-a-uuid")).await.expect_err("bad id");
    assert_eq!(bad.code(), Code::InvalidArgument);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_give_up_applies_exactly_once_on_postgres() {
    a_retried_give_up_applies_exactly_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_give_up_applies_exactly_once_on_sqlite() {
    a_retried_give_up_applies_exactly_once(Backend::Sqlite).await;
}

async fn a_replayed_dead_letter_writes_its_projection_once(backend: Backend) {
    // No materializer: the commit's event stays in the outbox, as if it had failed to apply.
    let server = start(backend, without_materializer).await;
    let reply = handle(
        &server,
        action(&new_id(), "lettered", "merge", "set", json!({"status": "open"})),
    )
    .await
    .expect("committed");
    let pending = server.store.pending_events(10).await.expect("outbox");
    let event = pending
        .iter()
        .find(|e| e.event.workflow_key == "lettered" && e.event.event_type == "StateCommitted")
        .expect("the commit's event");
    let letter = |source: &str, payload: Vec<u8>| DeadLetter {
        source: source.into(),
        namespace: "default".into(),
        workflow_key: "lettered".into(),
        version: event.event.version,
        event_type: "StateCommitted".into(),
        payload,
        error: "simulated apply failure".into(),
    };
    server
        .store
        .record_dead_letters(&[
            letter("test/1", event.event.payload.clone()),
            letter("test/2", b"\x07junk".to_vec()),
        ])
        .await
        .expect("dead letters");
    let mut projections = server.projections();
    let listed = projections
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .dead_letters;
    let (junk, good) = (&listed[0], &listed[1]);
    assert_eq!((good.source.as_str(), junk.source.as_str()), ("test/1", "test/2"));
    assert!(good.replayed_at.is_none());

    let replayed = projections
        .replay_dead_letter(ReplayDeadLetterRequest { id: good.id })
        .await
        .expect("replayed")
        .into_inner();
    assert!(replayed.applied, "{replayed:?}");
    let answer = projections
        .get_projection(GetProjectionRequest {
            workflow_key: "lettered".into(),
            ..Default::default()
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(!answer.from_canonical, "the row the replay wrote");
    let projection = answer.projection.expect("a projection row");
    assert_eq!((projection.version, projection.tag.as_str()), (reply.version, "open"));
    let twice = projections
        .replay_dead_letter(ReplayDeadLetterRequest { id: good.id })
        .await
        .expect_err("replayed before");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let undecodable = projections
        .replay_dead_letter(ReplayDeadLetterRequest { id: junk.id })
        .await
        .expect_err("undecodable");
    assert_eq!(undecodable.code(), Code::FailedPrecondition);
    assert!(
        undecodable.message().contains("stays for inspection"),
        "{}",
        undecodable.message()
    );
    let missing = projections
        .replay_dead_letter(ReplayDeadLetterRequest { id: 999_999 })
        .await
        .expect_err("no such letter");
    assert_eq!(missing.code(), Code::NotFound);
    let after = projections
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .dead_letters;
    assert!(
        after[1].replayed_at.is_some() && after[0].replayed_at.is_none(),
        "{after:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_writes_its_projection_once_on_postgres() {
    a_replayed_dead_letter_writes_its_projection_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_writes_its_projection_once_on_sqlite() {
    a_replayed_dead_letter_writes_its_projection_once(Backend::Sqlite).await;
}
