//! The channel to `reducerd` and the deadline every call runs under.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::error::CliError;

/// Deadline of a unary call when `--timeout-ms` is not given.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// How long to wait for the TCP connection, separately from the call's deadline, so an
/// unreachable address fails fast with UNAVAILABLE instead of eating the whole deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How to secure the connection: TLS, the CA that signed the server's certificate, a
/// client certificate for servers that require one, and a bearer token.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Speak TLS even though the address has no `https://`.
    pub tls: bool,
    /// PEM CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM client private key.
    pub client_key: Option<PathBuf>,
    /// Bearer token sent with every call.
    pub token: Option<String>,
}

/// A lazily connected channel plus the user's `--timeout-ms` and token.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The channel every service client shares.
    pub channel: Channel,
    timeout: Option<Duration>,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Connection {
    /// Prepares a channel to `addr`. Nothing is dialled yet: connection failures surface as
    /// UNAVAILABLE from the first call, so they are reported (and retried) like any other.
    pub fn new(addr: &str, timeout_ms: Option<u64>, security: &Security) -> Result<Self, CliError> {
        let wants_tls = security.tls || security.ca_file.is_some() || security.client_cert.is_some();
        let uri = match addr.split_once("://") {
            Some(("http", _)) if wants_tls => {
                return Err(CliError::Usage(format!(
                    "--addr {addr:?} says http:// but TLS options were given; use https://, or drop --tls/--ca-file/--client-cert"
                )));
            }
            Some(_) => addr.to_owned(),
            None if wants_tls => format!("https://{addr}"),
            None => format!("http://{addr}"),
        };
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|err| CliError::Usage(format!("--addr {addr:?} is not a valid address: {err}")))?
            .connect_timeout(CONNECT_TIMEOUT);
        if uri.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tls_config(security)?)
                .map_err(|err| CliError::Usage(format!("TLS options: {err}")))?;
        }
        let authorization = match &security.token {
            None => None,
            Some(token) => Some(
                format!("Bearer {}", token.trim())
                    .parse()
                    .map_err(|_| CliError::Usage("--token must be printable ASCII".to_owned()))?,
            ),
        };
        Ok(Self {
            channel: endpoint.connect_lazy(),
            timeout: timeout_ms.map(Duration::from_millis),
            authorization,
        })
    }

    /// Wraps `message` in a request carrying the token, whose `grpc-timeout` tells the server
    /// when to give up too.
    pub fn request<T>(&self, message: T, deadline: Option<Duration>) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        request
    }

    /// The user's `--timeout-ms`, if given.
    pub fn explicit_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The deadline of a unary call that may legitimately take `server_wait` on the server
    /// (a projection wait, for example): `--timeout-ms` when given, else the default plus it.
    pub fn deadline(&self, server_wait: Duration) -> Duration {
        self.timeout.unwrap_or(DEFAULT_DEADLINE + server_wait)
    }
}

fn tls_config(security: &Security) -> Result<ClientTlsConfig, CliError> {
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|err| CliError::Usage(format!("{flag} {}: {err}", path.display())))
    };
    let mut config = ClientTlsConfig::new().with_native_roots();
    if let Some(path) = &security.ca_file {
        config = config.ca_certificate(Certificate::from_pem(read("--ca-file", path)?));
    }
    match (&security.client_cert, &security.client_key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read("--client-cert", cert)?,
                read("--client-key", key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(CliError::Usage("--client-cert and --client-key go together".to_owned()));
        }
    }
    Ok(config)
}

/// Runs `call`, turning a missed `deadline` into DEADLINE_EXCEEDED on the client side as well:
/// the server's own timeout does not help when the server cannot be reached at all.
pub async fn within<T>(deadline: Option<Duration>, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    let Some(deadline) = deadline else {
        return call.await;
    };
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {} ms (raise --timeout-ms)",
            deadline.as_millis()
        ))),
    }
}
