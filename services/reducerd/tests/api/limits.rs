//! Size and shape limits on what a commit may produce: a state too large for the pipeline
//! or nested too deeply for its decoders is refused, and nothing of it is written.

use purereducer_api::v1::{ActionStatus, GetStateRequest, Provenance, TryCommitRequest};
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Backend, TestServer, action, bad_fields, handle, new_id, object, start, status_of};

fn nested(levels: usize) -> Value {
    let mut value = json!("leaf");
    for _ in 0..levels {
        value = json!({ "n": value });
    }
    value
}

async fn version_of(server: &TestServer, key: &str) -> u64 {
    server
        .canonical()
        .get_state(GetStateRequest {
            namespace: Default::default(),
            workflow_key: key.into(),
        })
        .await
        .map(|reply| reply.into_inner().version)
        .unwrap_or(0)
}

async fn outbox_rows(server: &TestServer, key: &str) -> usize {
    server
        .store
        .pending_events(10_000)
        .await
        .expect("outbox")
        .iter()
        .filter(|row| row.event.workflow_key == key)
        .count()
}

#[tokio::test]
async fn a_reducer_that_would_outgrow_the_state_limit_is_refused_and_writes_nothing() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        // No materializer: outbox rows stay where the test can count them.
        let server = start(backend, |config| {
            config.server.max_state_bytes = 20_000;
            config.server.roles = vec!["reducer-service".into(), "canonical-store".into()];
        })
        .await;
        let small = handle(&server, action(&new_id(), "big", "merge", "set", json!({"a": 1})))
            .await
            .expect("applied");
        assert_eq!(status_of(&small), ActionStatus::Committed);
        // Each merge adds 12 KB: the second would take the state past the limit.
        let chunk = "x".repeat(12_000);
        let first = handle(&server, action(&new_id(), "big", "merge", "set", json!({"b": chunk})))
            .await
            .expect("applied");
        assert_eq!(status_of(&first), ActionStatus::Committed, "{backend:?}");
        let refused = handle(&server, action(&new_id(), "big", "merge", "set", json!({"c": chunk})))
            .await
            .expect("answered");
        assert_eq!(status_of(&refused), ActionStatus::Rejected, "{backend:?}");
        assert!(
            refused.rejection_reason.contains("server.max_state_bytes"),
            "{}",
            refused.rejection_reason
        );
        assert_eq!(refused.version, 2, "a refusal takes no version");
        assert_eq!(version_of(&server, "big").await, 2);
        assert_eq!(
            outbox_rows(&server, "big").await,
            2,
            "{backend:?}: no event for the refused state"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_state_nested_past_the_pipelines_decoders_is_refused_on_every_path() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let server = start(backend, |config| {
            config.server.roles = vec!["reducer-service".into(), "canonical-store".into()];
        })
        .await;
        // Through a reducer: refused with the limit named, nothing written.
        // The payload itself is within the request limits; the state it makes (one level
        // more) is not.
        let deep = handle(
            &server,
            action(&new_id(), "deep", "merge", "set", json!({"d": nested(30)})),
        )
        .await
        .expect("answered");
        assert_eq!(status_of(&deep), ActionStatus::Rejected, "{backend:?}");
        assert!(
            deep.rejection_reason.contains("limit is 30 levels"),
            "{}",
            deep.rejection_reason
        );
        assert_eq!(version_of(&server, "deep").await, 0);

        // Through TryCommit: INVALID_ARGUMENT on the state field.
        let refused = server
            .canonical()
            .try_commit(TryCommitRequest {
                workflow_key: "deep-direct".into(),
                expected_version: 0,
                state: Some(object(json!({"d": nested(30)}))),
                provenance: Some(Provenance::default()),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{backend:?}: {refused:?}");
        assert!(bad_fields(&refused).contains(&"state".to_owned()), "{refused:?}");
        assert!(refused.message().contains("30 levels"), "{}", refused.message());
        assert_eq!(version_of(&server, "deep-direct").await, 0);
        assert_eq!(outbox_rows(&server, "deep-direct").await, 0);

        // Just inside the limit commits.
        let fits = handle(
            &server,
            action(&new_id(), "deep", "merge", "set", json!({"d": nested(29)})),
        )
        .await
        .expect("applied");
        assert_eq!(
            status_of(&fits),
            ActionStatus::Committed,
            "{backend:?}: {}",
            fits.rejection_reason
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_namespace_over_its_write_rate_is_told_when_to_retry_and_nothing_is_stored() {
    use tonic_types::StatusExt;

    let server = start(Backend::Sqlite, |config| {
        config.limits.namespace_rps = 1;
        config.limits.namespace_burst = 2;
    })
    .await;
    let mut refused = Vec::new();
    for i in 0..6 {
        let mut sent = action(&new_id(), &format!("rate-{i}"), "merge", "set", json!({"i": i}));
        sent.namespace = "busy".into();
        if let Err(status) = handle(&server, sent).await {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            let retry = status.get_details_retry_info().expect("RetryInfo");
            assert!(
                retry
                    .retry_delay
                    .is_some_and(|d| d <= std::time::Duration::from_secs(1))
            );
            refused.push(format!("rate-{i}"));
        }
    }
    assert!(
        !refused.is_empty(),
        "six writes within a burst of two were all accepted"
    );
    for key in &refused {
        let key = purereducer_core::WorkflowKey::parse(&purereducer_core::Namespace::default(), key).expect("key");
        assert!(
            server.store.get_state(&key).await.expect("read").is_none(),
            "a refused write was stored"
        );
    }
    let mut other = action(&new_id(), "rate-quiet", "merge", "set", json!({}));
    other.namespace = "quiet".into();
    handle(&server, other)
        .await
        .expect("another namespace keeps its own budget");
    server.stop().await;
}

#[tokio::test]
async fn calls_beyond_the_in_flight_bound_are_shed_and_health_stays_answered() {
    use purereducer_api::v1::{ListWatermarksRequest, WaitForCompletionRequest};

    let server = start(Backend::Sqlite, |config| config.limits.max_in_flight = 1).await;
    // A wait that outlasts the test holds the one slot until it is cancelled.
    let spawn_wait = || {
        let mut bus = server.event_bus();
        tokio::spawn(async move {
            bus.wait_for_completion(WaitForCompletionRequest {
                correlation_id: new_id(),
                timeout_ms: 120_000,
                ..Default::default()
            })
            .await
        })
    };
    let mut wait = spawn_wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let shed = loop {
        assert!(std::time::Instant::now() < deadline, "no call was shed");
        if wait.is_finished() {
            // The probe below held the slot when the wait arrived: the wait was shed.
            let ended = wait.await.expect("task").expect_err("nothing completes");
            assert_eq!(ended.code(), tonic::Code::ResourceExhausted, "{ended:?}");
            wait = spawn_wait();
        }
        match server.projections().list_watermarks(ListWatermarksRequest {}).await {
            Err(status) if !wait.is_finished() => break status,
            _ => tokio::task::yield_now().await,
        }
    };
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted, "{shed:?}");
    assert!(shed.message().contains("limits.max_in_flight"), "{shed:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health is never shed");
    // Cancelling the wait frees its slot.
    wait.abort();
    let _ = wait.await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Err(status) = server.projections().list_watermarks(ListWatermarksRequest {}).await {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the slot of a cancelled call was never freed"
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn calls_with_large_metadata_are_served_up_to_the_header_limit() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let mut request = tonic::Request::new(GetStateRequest {
        workflow_key: "headers-1".into(),
        ..Default::default()
    });
    // 20 KiB of metadata (a long token chain, tracing baggage): above HTTP/2's default
    // 16 KiB, within reducerd's 64 KiB, so the call reaches the service and gets its answer.
    let big = "x".repeat(20 * 1024);
    request
        .metadata_mut()
        .insert("x-baggage", big.parse().expect("ascii metadata"));
    let answer = server
        .canonical()
        .get_state(request)
        .await
        .expect_err("no such workflow");
    assert_eq!(answer.code(), Code::NotFound, "{answer:?}");
    server.stop().await;
}
