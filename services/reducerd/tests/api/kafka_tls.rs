//! reducerd against a Kafka-protocol broker reached only over TLS (tansu behind TLS made here,
//! with certificates made here). SASL is not exercised against a broker: tansu 0.6.0 closes
//! the connection at librdkafka's SASL handshake, so only its configuration is tested.

use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use purereducer_api::v1::{ActionStatus, GetProjectionRequest, PublishActionRequest, WaitForCompletionRequest};
use serde_json::json;

use crate::certs::Ca;
use crate::support::{Backend, action, handle, new_id, start};

/// The tansu the test command installs (`~/.cargo/bin/tansu`), or `$TANSU`.
fn tansu_path() -> PathBuf {
    let path = std::env::var_os("TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo/bin/tansu"));
    assert!(
        path.exists(),
        "tansu not found at {}; scripts/test.sh installs it (or set TANSU)",
        path.display()
    );
    path
}

/// A broker reached only over TLS, killed on drop. tansu 0.6.0's command line
/// refuses `--cert` together with `--key`, so TLS is terminated in front of it by a rustls
/// acceptor here, and the broker advertises that TLS address: every byte a client sends or
/// receives crosses TLS.
struct TlsBroker {
    child: Child,
    addr: String,
    proxy: tokio::task::JoinHandle<()>,
}

impl TlsBroker {
    async fn start(ca: &Ca) -> Self {
        let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tls_listener.local_addr().expect("addr").to_string();
        let plain_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let plain = format!("127.0.0.1:{plain_port}");
        let child = Command::new(tansu_path())
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &format!("tcp://{plain}")])
            .args(["--advertised-listener-url", &format!("tcp://{addr}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&plain).await.is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {plain}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let leaf = ca.server();
        let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert")];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key");
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let proxy = tokio::spawn(async move {
            while let Ok((client, _)) = tls_listener.accept().await {
                let (acceptor, plain) = (acceptor.clone(), plain.clone());
                tokio::spawn(async move {
                    // A handshake the client refuses (an untrusted CA) just ends here.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut broker) = tokio::net::TcpStream::connect(&plain).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                });
            }
        });
        Self { child, addr, proxy }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        self.proxy.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn secure_kafka(config: &mut reducerd::config::Config, brokers: &str, ca_file: &std::path::Path, run: &str) {
    let kafka = &mut config.kafka;
    kafka.brokers = brokers.to_owned();
    kafka.partitions = 1;
    kafka.security_protocol = "ssl".into();
    kafka.ssl_ca_file = Some(ca_file.to_owned());
    kafka.state_committed_topic = format!("s-{run}-state");
    kafka.reducer_gave_up_topic = format!("s-{run}-gave-up");
    kafka.intents_topic = format!("s-{run}-intents");
    kafka.actions_topic = format!("s-{run}-actions");
    kafka.dead_letter_topic = format!("s-{run}-dlq");
    config.projection.consumer_group = format!("materializer-{run}");
    config.projection.batch_timeout_ms = 50;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_and_queued_actions_travel_through_a_tls_broker() {
    let ca = Ca::new("broker ca");
    let broker = TlsBroker::start(&ca).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("broker-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca file");
    let run = new_id();
    let server = start(Backend::Postgres, |config| {
        secure_kafka(config, &broker.addr, &ca_file, &run)
    })
    .await;

    let reply = handle(
        &server,
        action(&new_id(), "kafka-tls-1", "merge", "set", json!({"over": "ssl"})),
    )
    .await
    .expect("handled");
    assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
    // Materialized from the topic: the relay produced over TLS and the consumer read it back.
    let projection = server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: "kafka-tls-1".into(),
            min_version: 1,
            max_wait_ms: 30_000,
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(
        !projection.from_canonical,
        "the event never came back through the TLS broker"
    );

    let published = server
        .event_bus()
        .publish_action(PublishActionRequest {
            action: Some(action(
                &new_id(),
                "kafka-tls-2",
                "merge",
                "set",
                json!({"queued": true}),
            )),
        })
        .await
        .expect("published")
        .into_inner();
    let done = server
        .event_bus()
        .wait_for_completion(WaitForCompletionRequest {
            correlation_id: published.correlation_id,
            timeout_ms: 30_000,
            ..Default::default()
        })
        .await
        .expect("the queued action was consumed from the TLS broker")
        .into_inner();
    assert_eq!(ActionStatus::try_from(done.status), Ok(ActionStatus::Committed));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_certificate_from_an_untrusted_ca_publishes_nothing() {
    let ca = Ca::new("broker ca");
    let broker = TlsBroker::start(&ca).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let stranger = dir.path().join("stranger.pem");
    std::fs::write(&stranger, Ca::new("not the broker's ca").pem()).expect("ca file");
    let run = new_id();
    let server = start(Backend::Postgres, |config| {
        secure_kafka(config, &broker.addr, &stranger, &run)
    })
    .await;

    let reply = handle(
        &server,
        action(&new_id(), "untrusted-1", "merge", "set", json!({"n": 1})),
    )
    .await
    .expect("the commit itself needs no broker");
    assert_eq!(ActionStatus::try_from(reply.status), Ok(ActionStatus::Committed));
    let projection = server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: "untrusted-1".into(),
            min_version: 1,
            max_wait_ms: 2_000,
        })
        .await
        .expect("answered from the canonical state")
        .into_inner();
    assert!(
        projection.from_canonical,
        "an event went through a broker whose certificate is untrusted"
    );
    let (unpublished,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM event_outbox WHERE workflow_key = 'untrusted-1' AND published_at IS NULL")
            .fetch_one(server.pg())
            .await
            .expect("outbox");
    assert!(unpublished >= 1, "the event left the outbox");
    server.stop().await;
}
