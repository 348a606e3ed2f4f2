//! What every gRPC request passes through before and after the services: a deadline that
//! ends as DEADLINE_EXCEEDED (the client's `grpc-timeout`, never longer than the server's
//! own cap, so a half-sent request cannot be held open for ever), and precise codes for what
//! the transport refuses on its own — an undecodable message is the caller's error
//! (INVALID_ARGUMENT, not INTERNAL), an oversized one is RESOURCE_EXHAUSTED — without the
//! decoder's internals in the message.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic::codegen::http;
use tonic::{Code, Status};

/// When a shed caller is told to retry.
const SHED_RETRY_AFTER: Duration = Duration::from_millis(100);
use tower::{Layer, Service};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    cap: Duration,
    in_flight: Option<Arc<Semaphore>>,
    max_in_flight: usize,
}

impl EdgeLayer {
    /// Requests end after at most `cap`, whatever deadline the client asked for; beyond
    /// `max_in_flight` calls at once (0: no bound) new ones are refused at once.
    pub fn new(cap: Duration, max_in_flight: usize) -> Self {
        Self {
            cap,
            in_flight: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
            max_in_flight,
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            cap: self.cap,
            in_flight: self.in_flight.clone(),
            max_in_flight: self.max_in_flight,
        }
    }
}

/// The service [`EdgeLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    cap: Duration,
    in_flight: Option<Arc<Semaphore>>,
    max_in_flight: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Edge<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // Health checks are never shed: an overloaded server is still alive.
        let permit = match &self.in_flight {
            Some(slots) if !request.uri().path().starts_with("/grpc.health.") => {
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        let status = crate::limits::exhausted(
                            format!(
                                "the server is serving its limit of {} calls (limits.max_in_flight); retry after the delay in RetryInfo",
                                self.max_in_flight
                            ),
                            SHED_RETRY_AFTER,
                        );
                        return Box::pin(std::future::ready(Ok(status.into_http())));
                    }
                }
            }
            _ => None,
        };
        // Enforced here rather than by the transport, which would answer CANCELLED.
        let asked = request
            .headers_mut()
            .remove("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()));
        let deadline = asked.map_or(self.cap, |asked| asked.min(self.cap));
        let by_client = asked.is_some_and(|asked| asked <= self.cap);
        let cap = self.cap;
        let call = self.inner.call(request);
        Box::pin(async move {
            let _permit = permit;
            match tokio::time::timeout(deadline, call).await {
                Ok(Ok(mut response)) => {
                    rewrite_transport_status(response.headers_mut());
                    Ok(response)
                }
                Ok(Err(err)) => Err(err),
                Err(_) => {
                    let message = if by_client {
                        format!("the call's deadline of {} ms passed", deadline.as_millis())
                    } else {
                        format!(
                            "the server ends every call after {} s; ask for less (a shorter wait) or retry",
                            cap.as_secs()
                        )
                    };
                    Ok(Status::deadline_exceeded(message).into_http())
                }
            }
        })
    }
}

/// Parses a `grpc-timeout` value: up to eight digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Replaces the transport's own refusals (carried in the response headers) with the codes
/// and messages the caller should see.
fn rewrite_transport_status(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let replacement = match status.code() {
        Code::Internal if status.message().starts_with("failed to decode Protobuf message") => {
            Status::invalid_argument(
                "the request is not a valid protobuf message for this RPC, or nests deeper than 100 levels; check that the client was generated from this server's proto",
            )
        }
        Code::OutOfRange if status.message().contains("message length too large") => Status::resource_exhausted(
            "the request message is larger than this server accepts (server.max_message_bytes); send a smaller one",
        ),
        _ => return,
    };
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    let _ = replacement.add_header(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_protocol_spells_them() {
        assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parse_grpc_timeout(b"5000u"), Some(Duration::from_millis(5)));
        for bad in [&b""[..], b"m", b"123456789m", b"12x", b"-1S", b"1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn transport_refusals_get_the_callers_codes_without_decoder_internals() {
        let mut headers = http::HeaderMap::new();
        Status::internal("failed to decode Protobuf message: Action.payload: invalid wire type")
            .add_header(&mut headers)
            .expect("headers");
        rewrite_transport_status(&mut headers);
        let status = Status::from_header_map(&headers).expect("status");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(!status.message().contains("wire type"));

        let mut headers = http::HeaderMap::new();
        Status::out_of_range("Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes")
            .add_header(&mut headers)
            .expect("headers");
        rewrite_transport_status(&mut headers);
        assert_eq!(
            Status::from_header_map(&headers).expect("status").code(),
            Code::ResourceExhausted
        );

        let mut headers = http::HeaderMap::new();
        Status::internal("internal error; the server log has the details")
            .add_header(&mut headers)
            .expect("headers");
        rewrite_transport_status(&mut headers);
        assert_eq!(
            Status::from_header_map(&headers).expect("status").code(),
            Code::Internal
        );
    }
}
