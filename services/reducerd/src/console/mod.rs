//! The web console: a small page (checked in under `assets/`, embedded in the binary) and the
//! JSON API under `/api/v1/` that it and curl use, served on the HTTP port beside `/metrics`
//! and behind the same credentials as the gRPC API.
//!
//! The HTTP port starts before the store is open; the API answers 503 until [`Slot`] holds
//! what it reads.

mod api;
mod health;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use purereducer_storage::Store;

use crate::auth::{Authenticator, Identity, Role};
use crate::engine::Engine;
use crate::error::ApiError;

/// What the console reads, set once the process has opened its store.
#[derive(Debug)]
pub struct ConsoleState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The engine, for retries.
    pub engine: Arc<Engine>,
    /// The roles this process runs.
    pub roles: Vec<String>,
    /// `kafka` or `in-process`.
    pub mode: &'static str,
    /// Kafka consumer groups of this process and their topics.
    pub consumer_groups: Vec<(String, Vec<String>)>,
    /// When the process started serving.
    pub started: Instant,
}

/// Where the console finds its [`ConsoleState`] once it exists.
pub type Slot = Arc<OnceLock<Arc<ConsoleState>>>;

/// A new, empty slot.
pub fn slot() -> Slot {
    Arc::new(OnceLock::new())
}

const INDEX: &str = include_str!("assets/index.html");
const STYLE: &str = include_str!("assets/console.css");
/// The page's ES modules by path: `console.js` is the entry `index.html` loads, and it imports
/// the others.
const SCRIPTS: [(&str, &str); 5] = [
    ("/console.js", include_str!("assets/console.js")),
    ("/core.js", include_str!("assets/core.js")),
    ("/view.js", include_str!("assets/view.js")),
    ("/workflows.js", include_str!("assets/workflows.js")),
    ("/ops.js", include_str!("assets/ops.js")),
];

/// The console's routes: the page (open: it holds no data) and the API (credentials).
pub fn router(slot: Slot, auth: Arc<Authenticator>, registry: prometheus::Registry) -> axum::Router {
    let shared = Arc::new(api::Shared { slot, auth, registry });
    let mut pages = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console.css",
            axum::routing::get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        );
    for (path, script) in SCRIPTS {
        pages = pages.route(
            path,
            axum::routing::get(move || async move { asset("text/javascript; charset=utf-8", script) }),
        );
    }
    pages.nest("/api/v1", api::routes(shared))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// An API failure as JSON: `{"error": "..."}` with the matching HTTP status.
#[derive(Debug)]
pub struct JsonError(StatusCode, String);

impl JsonError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<ApiError> for JsonError {
    fn from(error: ApiError) -> Self {
        let status = match &error {
            ApiError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::FailedPrecondition(_) | ApiError::AlreadyExists(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Denied(status) => match status.code() {
                tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            },
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "console request failed");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details",
                );
            }
        };
        Self::new(status, error.to_string())
    }
}

impl From<purereducer_storage::StorageError> for JsonError {
    fn from(error: purereducer_storage::StorageError) -> Self {
        ApiError::from(error).into()
    }
}

/// The caller, who must hold `role` (401 without a valid credential, 403 without the role).
fn caller(auth: &Authenticator, headers: &axum::http::HeaderMap, role: Role) -> Result<Arc<Identity>, JsonError> {
    let authorization = headers.get(header::AUTHORIZATION).map(|value| value.as_bytes());
    let identity = auth
        .authenticate(authorization)
        .map_err(|rejection| JsonError::new(StatusCode::UNAUTHORIZED, rejection.status().message()))?;
    if !identity.has(role) {
        return Err(JsonError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the credential of '{}' does not hold the {} role this needs",
                identity.subject,
                role.name()
            ),
        ));
    }
    Ok(identity)
}
