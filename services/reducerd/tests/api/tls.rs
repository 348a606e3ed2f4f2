//! TLS and client certificates on the gRPC port, with certificates made in the test.

use std::path::{Path, PathBuf};

use purereducer_api::v1::HandleActionRequest;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use reducerd::config::Config;
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::certs::{Ca, Leaf};
use crate::support::{Backend, TestServer, action, new_id, start};

/// Replaces a file in one step.
fn put(path: &Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).expect("write");
    std::fs::rename(&staged, path).expect("replace");
}

struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

fn files(server: &Leaf, client_ca: Option<&Ca>) -> Files {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = Files {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        client_ca: dir.path().join("clients.pem"),
        _dir: dir,
    };
    put(&files.cert, &server.cert);
    put(&files.key, &server.key);
    if let Some(ca) = client_ca {
        put(&files.client_ca, &ca.pem());
    }
    files
}

async fn start_tls(files: &Files, require_client_certificates: bool) -> TestServer {
    let (cert, key, client_ca) = (files.cert.clone(), files.key.clone(), files.client_ca.clone());
    start(Backend::Sqlite, move |config| {
        config.server.tls.cert_file = Some(cert);
        config.server.tls.key_file = Some(key);
        config.server.tls.client_ca_file = require_client_certificates.then_some(client_ca);
    })
    .await
}

/// A TLS channel to `server` trusting `ca`, presenting `client` when given.
async fn tls_channel(server: &TestServer, ca: &Ca, client: Option<&Leaf>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem()));
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(&client.cert, &client.key));
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{}", server.addr.port()))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
}

/// Whether a health check over `channel` (when there is one) answers.
async fn healthy(channel: Result<Channel, tonic::transport::Error>) -> bool {
    let Ok(channel) = channel else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .is_ok()
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_ca_and_nobody_else() {
    let ca = Ca::new("server ca");
    let files = files(&ca.server(), None);
    let server = start_tls(&files, false).await;

    let channel = tls_channel(&server, &ca, None).await.expect("TLS handshake");
    let answer = ReducerServiceClient::new(channel.clone())
        .handle_action(HandleActionRequest {
            action: Some(action(&new_id(), "tls-1", "merge", "set", json!({"over": "tls"}))),
        })
        .await
        .expect("an action over TLS")
        .into_inner();
    assert_eq!(answer.version, 1);

    let stranger = Ca::new("another ca");
    assert!(
        !healthy(tls_channel(&server, &stranger, None).await).await,
        "an untrusted certificate was accepted"
    );
    let plain = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest::default())
        .await;
    assert!(plain.is_err(), "plaintext was served on a TLS port");
    server.stop().await;
}

#[tokio::test]
async fn client_certificates_from_the_client_ca_are_required_when_configured() {
    let server_ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let files = files(&server_ca.server(), Some(&client_ca));
    let server = start_tls(&files, true).await;

    assert!(healthy(tls_channel(&server, &server_ca, Some(&client_ca.client("billing"))).await).await);
    assert!(
        !healthy(tls_channel(&server, &server_ca, None).await).await,
        "no client certificate was accepted"
    );
    let rogue = Ca::new("rogue ca").client("billing");
    assert!(
        !healthy(tls_channel(&server, &server_ca, Some(&rogue)).await).await,
        "a foreign client certificate was accepted"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_without_a_restart() {
    let old_ca = Ca::new("old ca");
    let files = files(&old_ca.server(), None);
    let server = start_tls(&files, false).await;
    let kept = tls_channel(&server, &old_ca, None).await.expect("first handshake");
    assert!(healthy(Ok(kept.clone())).await);

    let new_ca = Ca::new("new ca");
    let rotated = new_ca.server();
    put(&files.key, &rotated.key);
    put(&files.cert, &rotated.cert);
    assert!(
        healthy(tls_channel(&server, &new_ca, None).await).await,
        "the new certificate is not served"
    );
    assert!(
        !healthy(tls_channel(&server, &old_ca, None).await).await,
        "the old certificate is still served"
    );
    assert!(
        healthy(Ok(kept)).await,
        "an open connection was dropped by the rotation"
    );

    // A broken replacement keeps the last good certificate in use.
    put(&files.cert, "not a certificate");
    assert!(healthy(tls_channel(&server, &new_ca, None).await).await);
    server.stop().await;
}

#[test]
fn incomplete_or_mismatched_tls_files_stop_start_up_naming_the_key() {
    let ca = Ca::new("ca");
    let server = ca.server();
    let other = ca.server();
    let files = files(&server, None);
    let error_of = |tune: &dyn Fn(&mut Config)| {
        let mut config = Config::default();
        tune(&mut config);
        config.validate().expect_err("invalid").to_string()
    };
    let only_cert = error_of(&|config| config.server.tls.cert_file = Some(files.cert.clone()));
    assert!(
        only_cert.contains("server.tls") && only_cert.contains("key_file"),
        "{only_cert}"
    );
    put(&files.key, &other.key);
    let mismatched = error_of(&|config| {
        config.server.tls.cert_file = Some(files.cert.clone());
        config.server.tls.key_file = Some(files.key.clone());
    });
    assert!(mismatched.contains("server.tls.key_file"), "{mismatched}");
    let missing = error_of(&|config| {
        config.server.tls.cert_file = Some(files.cert.with_extension("absent"));
        config.server.tls.key_file = Some(files.key.clone());
    });
    assert!(missing.contains("server.tls.cert_file"), "{missing}");
}

#[tokio::test]
async fn postgres_urls_asking_for_tls_connect_over_tls_and_verify_the_server() {
    let url = purereducer_storage::testing::fresh_postgres_url()
        .await
        .expect("a test database");
    let database = url.rsplit_once('/').expect("database in url").1.to_owned();
    let mut config = Config::default();
    config.storage.database_url = format!("{url}?sslmode=require");
    config.storage.min_pool_size = 2;
    config.storage.max_pool_size = 2;
    let app = reducerd::App::build(config)
        .await
        .expect("reducerd connects with sslmode=require");
    let key = purereducer_core::WorkflowKey::parse(&purereducer_core::Namespace::default(), "tls-db-1").expect("key");
    assert!(app.store().get_state(&key).await.expect("a query over TLS").is_none());

    let checker = sqlx::PgPool::connect(&format!("{url}?sslmode=disable"))
        .await
        .expect("checker");
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&database)
    .fetch_one(&checker)
    .await
    .expect("pg_stat_ssl");
    assert!(encrypted >= 1, "no TLS session from reducerd");
    assert_eq!(plain, 0, "a plaintext session from reducerd");

    // verify-ca against a CA that did not sign the server's certificate must refuse.
    let dir = tempfile::tempdir().expect("temp dir");
    let stranger = dir.path().join("stranger.pem");
    put(&stranger, &Ca::new("not the database's ca").pem());
    let mut config = Config::default();
    config.storage.database_url = format!("{url}?sslmode=verify-ca&sslrootcert={}", stranger.display());
    config.storage.min_pool_size = 0;
    config.storage.max_pool_size = 1;
    assert!(
        reducerd::App::build(config).await.is_err(),
        "a server certificate from an untrusted CA was accepted"
    );
}
