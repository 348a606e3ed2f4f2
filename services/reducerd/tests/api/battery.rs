//! A generated battery of bad requests against the running server, on both backends: each
//! request breaks one rule (on top of random content elsewhere), and every answer must be a
//! precise client-error code — never INTERNAL or UNKNOWN, never a panic — with no stored row
//! changed. `PURE_REDUCER_BATTERY_CASES` sets the number of requests (10,000 by default).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRng, TestRunner};
use prost_types::value::Kind;
use purereducer_api::v1::{
    self as api, GetProjectionRequest, GetStateRequest, HandleActionRequest, Provenance, PublishActionRequest,
    RecordProcessedRequest, ShouldProcessRequest, SubscribeRequest, SubscriptionFilter, TryCommitRequest,
    WaitForCompletionRequest,
};
use purereducer_core::WorkflowKey;
use serde_json::json;
use tonic::Code;

use crate::support::{Backend, TestServer, action, new_id, start};

const KEYS: [&str; 3] = ["battery-1", "battery-2", "battery-seed"];
const MAX_PAYLOAD: usize = 4096;

fn cases() -> usize {
    std::env::var("PURE_REDUCER_BATTERY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

struct Gen {
    runner: TestRunner,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes);
        Self {
            runner: TestRunner::new_with_rng(RunnerConfig::default(), rng),
        }
    }

    fn sample<S: Strategy>(&mut self, strategy: S) -> S::Value {
        strategy.new_tree(&mut self.runner).expect("value").current()
    }

    fn pick(&mut self, n: usize) -> usize {
        self.sample(0..n)
    }

    /// Any string at all: control characters, NULs, every plane of Unicode.
    fn text(&mut self, max: usize) -> String {
        self.sample(proptest::collection::vec(any::<char>(), 0..max))
            .into_iter()
            .collect()
    }

    fn key(&mut self) -> String {
        KEYS[self.pick(KEYS.len())].to_owned()
    }

    /// A JSON-like value, nested up to `depth`.
    fn value(&mut self, depth: usize) -> prost_types::Value {
        let kind = match self.pick(if depth == 0 { 4 } else { 6 }) {
            0 => Kind::StringValue(self.text(12)),
            1 => Kind::NumberValue(self.sample(-1e9f64..1e9)),
            2 => Kind::BoolValue(self.sample(any::<bool>())),
            3 => Kind::NullValue(0),
            4 => Kind::StructValue(self.structure(depth - 1)),
            _ => Kind::ListValue(prost_types::ListValue {
                values: (0..self.pick(3)).map(|_| self.value(depth - 1)).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }

    fn structure(&mut self, depth: usize) -> prost_types::Struct {
        let fields = (0..self.pick(4)).map(|_| (self.text(8), self.value(depth))).collect();
        prost_types::Struct { fields }
    }

    fn nested(&mut self, levels: usize) -> prost_types::Struct {
        let mut inner = prost_types::Struct::default();
        for _ in 0..levels {
            let mut outer = prost_types::Struct::default();
            outer.fields.insert(
                "n".into(),
                prost_types::Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            );
            inner = outer;
        }
        inner
    }

    /// A payload or state that breaks exactly one rule.
    fn bad_object(&mut self) -> prost_types::Struct {
        let mut base = self.structure(2);
        let (key, value) = match self.pick(4) {
            0 => (
                format!("k{}", self.text(4)),
                Kind::StringValue(format!("a\0{}", self.text(4))),
            ),
            1 => (format!("nul\0{}", self.text(4)), Kind::BoolValue(true)),
            2 => ("big".to_owned(), Kind::StringValue("x".repeat(MAX_PAYLOAD + 1))),
            _ => {
                let levels = 40 + self.pick(80);
                return self.nested(levels);
            }
        };
        base.fields.insert(key, prost_types::Value { kind: Some(value) });
        base
    }

    /// A valid action on one of the battery's keys, then one rule broken.
    fn bad_action(&mut self) -> api::Action {
        let mut sent = action(&new_id(), &self.key(), "merge", "set", json!({}));
        sent.payload = Some(self.structure(2));
        match self.pick(9) {
            0 => sent.workflow_key = format!("{} {}", self.text(6), self.text(6)),
            1 => sent.workflow_key = "k".repeat(257 + self.pick(300)),
            2 => sent.action_id = self.text(40),
            3 => sent.workflow_type = format!("undeclared-{}", self.pick(1000)),
            4 => sent.action_type = format!("{}\n", self.text(6)),
            5 => sent.namespace = format!("UPPER{}", self.text(4)),
            6 => sent.correlation_id = format!("{}\u{7}", self.text(130)),
            _ => sent.payload = Some(self.bad_object()),
        }
        sent
    }
}

/// Sends one generated bad request; returns the RPC and the code it was answered with.
async fn send(server: &TestServer, generator: &mut Gen) -> (&'static str, Code) {
    let code = |result: Result<(), tonic::Status>| result.err().map_or(Code::Ok, |status| status.code());
    match generator.pick(10) {
        0 | 1 => {
            let request = HandleActionRequest {
                action: Some(generator.bad_action()),
            };
            (
                "HandleAction",
                code(server.reducer().handle_action(request).await.map(drop)),
            )
        }
        2 => {
            let request = PublishActionRequest {
                action: Some(generator.bad_action()),
            };
            (
                "PublishAction",
                code(server.event_bus().publish_action(request).await.map(drop)),
            )
        }
        3 => {
            let mut request = TryCommitRequest {
                workflow_key: generator.key(),
                expected_version: generator.sample(0u64..3),
                state: Some(generator.structure(2)),
                provenance: Some(Provenance::default()),
                ..Default::default()
            };
            match generator.pick(6) {
                0 => request.state = None,
                1 => request.state = Some(generator.bad_object()),
                2 => request.expected_version = generator.sample(i64::MAX as u64 + 1..=u64::MAX),
                3 => {
                    request.provenance = Some(Provenance {
                        action_id: "a".repeat(129 + generator.pick(2000)),
                        ..Default::default()
                    })
                }
                4 => request.namespace = format!("Bad {}", generator.text(4)),
                _ => request.workflow_key = format!("{}\0", generator.text(8)),
            }
            (
                "TryCommit",
                code(server.canonical().try_commit(request).await.map(drop)),
            )
        }
        4 => {
            let mut request = RecordProcessedRequest {
                namespace: Default::default(),
                workflow_key: generator.key(),
                action_id: new_id(),
                result_hash: "h".into(),
                version: 1,
                ttl_seconds: 0,
            };
            match generator.pick(4) {
                0 => request.version = generator.sample(i64::MAX as u64 + 1..=u64::MAX),
                1 => request.result_hash = format!("{}\0", generator.text(8)),
                2 => request.result_hash = String::new(),
                _ => request.action_id = generator.text(30),
            }
            (
                "RecordProcessed",
                code(server.dedup().record_processed(request).await.map(drop)),
            )
        }
        5 => {
            let request = ShouldProcessRequest {
                namespace: Default::default(),
                workflow_key: format!("{}\t", generator.text(8)),
                action_id: generator.text(36),
            };
            (
                "ShouldProcess",
                code(server.dedup().should_process(request).await.map(drop)),
            )
        }
        6 => {
            let key = format!("{} ", generator.text(20));
            let state = server
                .canonical()
                .get_state(GetStateRequest {
                    namespace: Default::default(),
                    workflow_key: key.clone(),
                })
                .await;
            let projection = server
                .projections()
                .get_projection(GetProjectionRequest {
                    workflow_key: key,
                    ..Default::default()
                })
                .await;
            let (state, projection) = (code(state.map(drop)), code(projection.map(drop)));
            (
                "GetState+GetProjection",
                if state == Code::InvalidArgument {
                    projection
                } else {
                    state
                },
            )
        }
        7 => {
            let mut request = WaitForCompletionRequest {
                correlation_id: new_id(),
                timeout_ms: 1,
                ..Default::default()
            };
            match generator.pick(3) {
                0 => request.correlation_id = "c".repeat(129 + generator.pick(500)),
                1 => request.timeout_ms = generator.sample(300_001u32..=u32::MAX),
                _ => request.action_id = format!("not-a-uuid-{}", generator.text(20)),
            }
            (
                "WaitForCompletion",
                code(server.event_bus().wait_for_completion(request).await.map(drop)),
            )
        }
        8 => {
            let many = (0..101 + generator.pick(50)).map(|i| format!("k{i}")).collect();
            let long = vec!["x".repeat(257 + generator.pick(1000))];
            let filter = if generator.pick(2) == 0 {
                SubscriptionFilter {
                    workflow_keys: many,
                    ..Default::default()
                }
            } else {
                SubscriptionFilter {
                    namespaces: long,
                    ..Default::default()
                }
            };
            let request = SubscribeRequest {
                filter: Some(filter),
                ..Default::default()
            };
            ("Subscribe", code(server.event_bus().subscribe(request).await.map(drop)))
        }
        _ => {
            let paths = [
                "/purereducer.v1.ReducerService/HandleAction",
                "/purereducer.v1.CanonicalStoreService/TryCommit",
                "/purereducer.v1.EventBusService/PublishAction",
                "/purereducer.v1.ActionDedupService/RecordProcessed",
            ];
            let path = paths[generator.pick(paths.len())];
            let mut garbage = generator.sample(proptest::collection::vec(any::<u8>(), 1..600));
            // A first byte that is an invalid wire type makes the message undecodable.
            garbage[0] = 0x07 | (garbage[0] & 0xf8);
            (
                "garbage",
                code(crate::bad_input::send_raw(server, path, garbage).await.map(drop)),
            )
        }
    }
}

async fn snapshot(server: &TestServer) -> Vec<Option<u64>> {
    let mut versions = Vec::new();
    for key in KEYS {
        let key = WorkflowKey::parse(&purereducer_core::Namespace::default(), key).expect("key");
        versions.push(
            server
                .store
                .get_state(&key)
                .await
                .expect("read")
                .map(|s| s.version.get()),
        );
    }
    versions
}

async fn pg_counts(server: &TestServer) -> Option<Vec<i64>> {
    let pg = server.pg.as_ref()?;
    let mut counts = Vec::new();
    for table in [
        "workflow_state",
        "action_dedup_log",
        "event_outbox",
        "action_queue",
        "action_completions",
    ] {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(pg)
            .await
            .expect("count");
        counts.push(n);
    }
    Some(counts)
}

async fn battery(backend: Backend, seed: u64) {
    let server = start(backend, |config| config.server.max_payload_bytes = MAX_PAYLOAD).await;
    // One stored workflow, so bad requests have something they must not change.
    let seeded = server
        .reducer()
        .handle_action(HandleActionRequest {
            action: Some(action(&new_id(), "battery-seed", "merge", "set", json!({"seed": true}))),
        })
        .await
        .expect("seed");
    assert_eq!(seeded.into_inner().version, 1);
    let before = (snapshot(&server).await, pg_counts(&server).await);

    let mut generator = Gen::new(seed);
    let mut bad = Vec::new();
    let total = cases();
    for _ in 0..total {
        let (rpc, code) = send(&server, &mut generator).await;
        let precise = matches!(
            code,
            Code::InvalidArgument
                | Code::NotFound
                | Code::FailedPrecondition
                | Code::AlreadyExists
                | Code::ResourceExhausted
                | Code::PermissionDenied
        );
        if !precise {
            bad.push(format!("{rpc}: {code:?}"));
        }
    }
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "{total} requests; answers that are not precise client errors: {bad:?}"
    );
    assert_eq!(
        (snapshot(&server).await, pg_counts(&server).await),
        before,
        "a bad request changed stored data"
    );
    server.stop().await;
}

#[tokio::test]
async fn generated_bad_requests_get_precise_codes_and_change_nothing_on_sqlite() {
    battery(Backend::Sqlite, 1).await;
}

#[tokio::test]
async fn generated_bad_requests_get_precise_codes_and_change_nothing_on_postgres() {
    battery(Backend::Postgres, 2).await;
}
