//! The channel to `reducerd` and the deadline every call runs under.

use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::CliError;

/// Deadline of a unary call when `--timeout-ms` is not given.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// How long to wait for the TCP connection, separately from the call's deadline, so an
/// unreachable address fails fast with UNAVAILABLE instead of eating the whole deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A lazily connected channel plus the user's `--timeout-ms`.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The channel every service client shares.
    pub channel: Channel,
    timeout: Option<Duration>,
}

impl Connection {
    /// Prepares a channel to `addr`. Nothing is dialled yet: connection failures surface as
    /// UNAVAILABLE from the first call, so they are reported (and retried) like any other.
    pub fn new(addr: &str, timeout_ms: Option<u64>) -> Result<Self, CliError> {
        let uri = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|err| CliError::Usage(format!("--addr {addr:?} is not a valid address: {err}")))?
            .connect_timeout(CONNECT_TIMEOUT);
        Ok(Self {
            channel: endpoint.connect_lazy(),
            timeout: timeout_ms.map(Duration::from_millis),
        })
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

/// Wraps `message` in a request whose `grpc-timeout` tells the server when to give up too.
pub fn request<T>(message: T, deadline: Option<Duration>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    request
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
