//! TLS on the HTTP port (`server.tls.metrics`): the binary serves `/metrics` and the console
//! over HTTPS with the gRPC port's certificate, and plain HTTP there gets no answer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::certs::Ca;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with the HTTP port's address from its log.
fn start(config: &std::path::Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reducerd"))
        .args(["--config", config.to_str().expect("utf-8 path")])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start reducerd");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("log line");
        if line.contains("reducerd serving metrics") {
            let addr = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("addr="))
                .expect("addr= in the log line")
                .to_owned();
            assert!(line.contains("tls=true"), "{line}");
            return (running, addr);
        }
    }
    panic!("reducerd ended before serving metrics");
}

async fn https_get(addr: &str, ca_pem: &str, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(ca_pem) {
        roots.add(cert).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(reducerd::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

#[tokio::test]
async fn the_http_port_serves_metrics_and_the_console_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("http port test CA");
    let server = ca.server();
    std::fs::write(dir.path().join("server.pem"), &server.cert).expect("cert");
    std::fs::write(dir.path().join("server.key"), &server.key).expect("key");
    let config = dir.path().join("reducerd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
             [server.tls]\ncert_file = \"{0}/server.pem\"\nkey_file = \"{0}/server.key\"\nmetrics = true\n\
             [storage]\ndatabase_url = \"sqlite://{0}/tls.db\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let (_running, addr) = start(&config);
    let metrics = https_get(&addr, &ca.pem(), "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("canonical_store_get_state_total"), "{metrics}");
    let console = https_get(&addr, &ca.pem(), "/").await;
    assert!(
        console.starts_with("HTTP/1.1 200") && console.contains("<html"),
        "{console}"
    );
    // Plain HTTP on the TLS port is not answered as HTTP.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(15), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP must not be served"
    );
}
