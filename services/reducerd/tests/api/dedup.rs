//! ShouldProcess, RecordProcessed and CleanupExpired.

use std::time::Duration;

use purereducer_api::v1::{CleanupExpiredRequest, RecordProcessedRequest, ShouldProcessRequest};
use purereducer_core::{ActionId, ActionStatus, Version, WorkflowKey};
use purereducer_storage::NewRecord;

use crate::support::{Backend, new_id, start};

#[tokio::test]
async fn record_then_should_process_then_cleanup() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = start(backend, |_| {}).await;
        let mut dedup = server.dedup();
        let id = new_id();
        let ask = || ShouldProcessRequest {
            namespace: Default::default(),
            workflow_key: "wf".into(),
            action_id: id.clone(),
        };
        assert!(
            dedup
                .should_process(ask())
                .await
                .expect("ask")
                .into_inner()
                .should_process
        );

        let record = RecordProcessedRequest {
            namespace: Default::default(),
            workflow_key: "wf".into(),
            action_id: id.clone(),
            result_hash: "h1".into(),
            version: 3,
            ttl_seconds: 0,
        };
        let first = dedup
            .record_processed(record.clone())
            .await
            .expect("record")
            .into_inner();
        assert!(first.recorded);
        let again = dedup
            .record_processed(RecordProcessedRequest {
                result_hash: "h2".into(),
                ..record
            })
            .await
            .expect("record again")
            .into_inner();
        assert!(!again.recorded, "the first record is kept");
        assert_eq!(again.record.expect("existing").result_hash, "h1");

        let answer = dedup.should_process(ask()).await.expect("ask").into_inner();
        assert!(!answer.should_process);
        let previous = answer.previous.expect("previous outcome");
        assert_eq!((previous.result_hash.as_str(), previous.version), ("h1", 3));

        // An already-expired record, written through the store: only it is cleaned up.
        let expired = NewRecord {
            action_id: ActionId::from_uuid(uuid::Uuid::new_v4()),
            request_hash: String::new(),
            result_hash: "old".into(),
            version: Version::new(1),
            status: ActionStatus::Committed,
            intents: Vec::new(),
            rejection_reason: None,
            ttl: Duration::ZERO,
        };
        server
            .store
            .record_processed(
                &WorkflowKey::parse(&purereducer_core::Namespace::default(), "wf").expect("key"),
                expired,
            )
            .await
            .expect("store");
        let cleaned = dedup
            .cleanup_expired(CleanupExpiredRequest {})
            .await
            .expect("cleanup")
            .into_inner();
        assert_eq!(cleaned.deleted, 1);
        assert!(
            !dedup
                .should_process(ask())
                .await
                .expect("ask")
                .into_inner()
                .should_process
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn periodic_cleanup_removes_expired_records() {
    let server = start(Backend::Postgres, |config| config.dedup.cleanup_interval_seconds = 1).await;
    let key = WorkflowKey::parse(&purereducer_core::Namespace::default(), "wf").expect("key");
    let expired = NewRecord {
        action_id: ActionId::from_uuid(uuid::Uuid::new_v4()),
        request_hash: String::new(),
        result_hash: "old".into(),
        version: Version::new(1),
        status: ActionStatus::Committed,
        intents: Vec::new(),
        rejection_reason: None,
        ttl: Duration::ZERO,
    };
    let stored = server.store.record_processed(&key, expired).await.expect("store");
    assert!(
        matches!(stored, purereducer_storage::RecordResult::Recorded(_)),
        "the row was written"
    );
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM action_dedup_log")
            .fetch_one(server.pg())
            .await
            .expect("count")
    };
    // Nothing but the server's own periodic task deletes rows here; wait for it, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count().await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count().await, 0, "the periodic cleanup removed the expired record");
    server.stop().await;
}
