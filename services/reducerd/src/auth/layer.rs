//! The tower layer that authenticates every gRPC request before a service sees it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::codegen::http;
use tower::{Layer, Service};

use super::{Access, Authenticator, access_for};

/// Authenticates requests and checks the role their RPC needs (see the module docs).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer checking requests with `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// The service [`AuthLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    auth: Arc<Authenticator>,
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let access = access_for(request.uri().path());
        let needed = match access {
            Access::Open => return Either::Right(self.inner.call(request)),
            Access::Needs(role) => role,
        };
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes);
        let identity = match self.auth.authenticate(authorization) {
            Ok(identity) => identity,
            Err(rejection) => return Either::Left(ready(Ok(rejection.status().into_http()))),
        };
        if !identity.has(needed) {
            let held = identity.role.map_or("no role", |role| role.name());
            let status = tonic::Status::permission_denied(format!(
                "{} needs the {} role; the credential of '{}' has {held}",
                request.uri().path().trim_start_matches('/'),
                needed.name(),
                identity.subject,
            ));
            return Either::Left(ready(Ok(status.into_http())));
        }
        request.extensions_mut().insert(identity);
        Either::Right(self.inner.call(request))
    }
}
