//! TLS for the gRPC server (rustls), with optional client certificates, and the accept loop
//! that hands tonic finished handshakes.
//!
//! The certificate, key and client CA files are checked for changes before each handshake:
//! a rotated certificate applies to the next connection without a restart, and a change
//! that does not load keeps the previous configuration (and says so in the log).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::reload::{Stamp, stamp_of};

/// A handshake that takes longer than this is dropped, so half-open connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[server.tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. TLS is on when this is set.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, every client must present a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
    /// Also serve the HTTP port (`/metrics` and the console) over TLS, with the same
    /// certificate and client certificate rule.
    pub metrics: bool,
}

impl TlsConfig {
    /// Whether TLS is configured.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some() || self.client_ca_file.is_some() || self.metrics
    }
}

/// The crypto provider used everywhere in the process.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes rustls' process-wide default the one [`provider`] returns, for libraries that use
/// the default (database and OTLP connections). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

type Stamps = [Stamp; 3];

/// The server's TLS configuration, rebuilt when its files change.
#[derive(Debug)]
pub struct ServerTls {
    files: Files,
    current: RwLock<(Stamps, Arc<ServerConfig>)>,
}

impl ServerTls {
    /// Loads the configured files; `None` when TLS is off. An error names the key and file.
    pub fn load(config: &TlsConfig) -> Result<Option<Arc<Self>>, crate::config::ConfigError> {
        if !config.enabled() {
            return Ok(None);
        }
        let invalid = |key: &str, message: String| crate::config::ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
            return Err(invalid(
                "server.tls",
                "cert_file and key_file are both required for TLS".to_owned(),
            ));
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.client_ca_file.clone(),
        };
        let stamps = stamps(&files);
        let built = build(&files).map_err(|(key, message)| invalid(key, message))?;
        Ok(Some(Arc::new(Self {
            files,
            current: RwLock::new((stamps, Arc::new(built))),
        })))
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The configuration for the next handshake, reloaded first if a file changed.
    pub fn config(&self) -> Arc<ServerConfig> {
        let now = stamps(&self.files);
        {
            let current = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if current.0 == now {
                return current.1.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.0 != now {
            current.0 = now;
            match build(&self.files) {
                Ok(config) => {
                    tracing::info!("server TLS files changed; new connections use the new certificate");
                    current.1 = Arc::new(config);
                }
                Err((key, message)) => tracing::warn!(
                    key,
                    %message,
                    "server TLS files changed but cannot be loaded; the previous certificate stays in use"
                ),
            }
        }
        current.1.clone()
    }
}

fn stamps(files: &Files) -> Stamps {
    [
        stamp_of(&files.cert),
        stamp_of(&files.key),
        files.client_ca.as_deref().and_then(stamp_of),
    ]
}

fn build(files: &Files) -> Result<ServerConfig, (&'static str, String)> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| ("server.tls.cert_file", format!("{}: {err}", files.cert.display())))?;
    if certs.is_empty() {
        return Err((
            "server.tls.cert_file",
            format!("{}: no PEM certificate found", files.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|err| ("server.tls.key_file", format!("{}: {err}", files.key.display())))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| ("server.tls", err.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| ("server.tls.client_ca_file", format!("{}: {err}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err((
                    "server.tls.client_ca_file",
                    format!("{}: no usable CA certificate found", path.display()),
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|err| ("server.tls.client_ca_file", err.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|err| {
        (
            "server.tls.key_file",
            format!("certificate and key do not match: {err}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Plain TCP connections from `listener`, with Nagle's algorithm off.
pub fn plain_incoming(listener: TcpListener) -> ReceiverStream<io::Result<TcpStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    if tx.send(Ok(stream)).await.is_err() {
                        return;
                    }
                }
                Err(err) => accept_failed(&err).await,
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Connections from `listener` whose TLS handshake finished, offering HTTP/2 (gRPC).
pub fn tls_incoming(listener: TcpListener, tls: Arc<ServerTls>) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    tls_incoming_for(listener, tls, b"h2")
}

/// Connections from `listener` whose TLS handshake finished, offering `protocol` by ALPN;
/// handshakes run concurrently, and one that fails (a refused client certificate, say) is
/// logged and dropped.
fn tls_incoming_for(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    protocol: &'static [u8],
) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let mut config = tls.config();
            if config.alpn_protocols != [protocol.to_vec()] {
                let mut other = (*config).clone();
                other.alpn_protocols = vec![protocol.to_vec()];
                config = Arc::new(other);
            }
            let acceptor = TlsAcceptor::from(config);
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(err)) => tracing::info!(%peer, error = %err, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// An accept that failed (out of file descriptors, say) is logged, and the loop pauses
/// briefly instead of spinning on the same error.
async fn accept_failed(err: &io::Error) {
    tracing::warn!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The HTTP port's listener when it speaks TLS: finished HTTP/1.1 handshakes, for axum.
#[derive(Debug)]
pub struct HttpsListener {
    connections: ReceiverStream<io::Result<TlsStream<TcpStream>>>,
    addr: std::net::SocketAddr,
}

impl HttpsListener {
    /// Serves TLS on `listener` with the server's certificate (reloaded like the gRPC one's).
    pub fn new(listener: TcpListener, tls: Arc<ServerTls>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        Ok(Self {
            connections: tls_incoming_for(listener, tls, b"http/1.1"),
            addr,
        })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt;
        loop {
            match self.connections.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.get_ref().0.peer_addr().unwrap_or(self.addr);
                    return (stream, peer);
                }
                Some(Err(_)) => continue,
                // The accept loop ended (its listener failed for good): accept nothing more.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
