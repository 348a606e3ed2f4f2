//! Remote reducers: a user's own gRPC `ReducerFunction` endpoint, called with the state and
//! the action, answering in domain terms (a [`Decision`] or an [`EngineError`]). The only
//! part of the engine that speaks transport.

use std::collections::HashMap;
use std::time::Duration;

use purereducer_api::v1::reduce_response;
use purereducer_api::v1::reducer_function_client::ReducerFunctionClient;
use purereducer_api::v1::{self as api};
use purereducer_core::{Action, JsonObject, ReducerSpec, Reduction, Rejection, Version, WorkflowTypes};
use tonic::transport::{Channel, Endpoint};

use super::EngineError;
use super::plan::Decision;
use crate::convert::{json_to_struct, struct_to_json};

/// One lazily connected client per remote workflow type.
#[derive(Debug, Clone, Default)]
pub struct RemoteReducers {
    clients: HashMap<String, (String, ReducerFunctionClient<Channel>)>,
}

impl RemoteReducers {
    /// Clients for every remote type declared in `types`. Connections open on first use, so
    /// a remote reducer that is down does not stop start-up.
    pub fn new(types: &WorkflowTypes) -> Result<Self, EngineError> {
        let mut clients = HashMap::new();
        for name in types.names() {
            if let Some(ReducerSpec::Remote { endpoint, .. }) = types.get(name) {
                let mut channel = Endpoint::from_shared(endpoint.clone())
                    .map_err(|err| EngineError::Bug(format!("remote endpoint {endpoint}: {err}")))?;
                if endpoint.starts_with("https://") {
                    // The system's CA certificates (`SSL_CERT_FILE` adds one).
                    crate::tls::install_default_provider();
                    channel = channel
                        .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                        .map_err(|err| EngineError::Bug(format!("remote endpoint {endpoint}: {err}")))?;
                }
                let channel = channel.connect_lazy();
                clients.insert(name.to_owned(), (endpoint.clone(), ReducerFunctionClient::new(channel)));
            }
        }
        Ok(Self { clients })
    }

    /// Asks the workflow type's remote reducer to reduce `action` on `state` at `version`.
    pub async fn decide(
        &self,
        action: &Action,
        state: &JsonObject,
        version: Version,
        timeout: Duration,
    ) -> Result<Decision, EngineError> {
        let Some((endpoint, client)) = self.clients.get(action.workflow_type.as_str()) else {
            return Err(EngineError::Bug(format!(
                "no client for remote type {}",
                action.workflow_type
            )));
        };
        call(client.clone(), endpoint, timeout, action, state, version).await
    }
}

async fn call(
    mut client: ReducerFunctionClient<Channel>,
    endpoint: &str,
    timeout: Duration,
    action: &Action,
    state: &JsonObject,
    version: Version,
) -> Result<Decision, EngineError> {
    let mut request = tonic::Request::new(api::ReduceRequest {
        state: Some(json_to_struct(state)),
        version: version.get(),
        action: Some(api::Action {
            action_id: action.id.to_string(),
            workflow_key: action.key.to_string(),
            workflow_type: action.workflow_type.to_string(),
            action_type: action.action_type.to_string(),
            payload: Some(json_to_struct(&action.payload)),
            correlation_id: action.correlation_id.clone(),
            namespace: action.namespace().to_string(),
        }),
    });
    request.set_timeout(timeout);
    // The remote reducer's spans join the action's trace.
    for (name, value) in purereducer_bus::trace::inject_current() {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
    let answer = match tokio::time::timeout(timeout, client.reduce(request)).await {
        Err(_) => return Err(deadline(action, endpoint, timeout)),
        Ok(Err(status))
            if status.code() == tonic::Code::DeadlineExceeded || status.code() == tonic::Code::Cancelled =>
        {
            return Err(deadline(action, endpoint, timeout));
        }
        Ok(Err(status)) => return Err(failure(action, endpoint, &status)),
        Ok(Ok(response)) => response.into_inner(),
    };
    match answer.outcome {
        Some(reduce_response::Outcome::Reduced(reduced)) => {
            let state = struct_to_json(&reduced.state.unwrap_or_default(), "reduced.state").map_err(|err| {
                EngineError::BadReducer(format!(
                    "remote reducer at {endpoint} returned an unusable state: {err}"
                ))
            })?;
            let intents = reduced
                .intents
                .into_iter()
                .map(|intent| {
                    Ok(purereducer_core::Intent {
                        intent_type: intent.intent_type,
                        payload: struct_to_json(&intent.payload.unwrap_or_default(), "reduced.intents.payload")?,
                    })
                })
                .collect::<Result<Vec<_>, purereducer_core::FieldError>>()
                .map_err(|err| {
                    EngineError::BadReducer(format!(
                        "remote reducer at {endpoint} returned an unusable intent: {err}"
                    ))
                })?;
            Ok(Decision::Commit(Reduction { state, intents }))
        }
        Some(reduce_response::Outcome::Rejected(rejected)) => Ok(Decision::Reject(Rejection::new(rejected.reason))),
        None => Err(EngineError::BadReducer(format!(
            "remote reducer at {endpoint} returned neither a reduced state nor a rejection"
        ))),
    }
}

/// What a remote reducer's error status means for the action. Unreachable or overloaded:
/// retryable, nothing was decided. Anything else is the reducer's own failure (an exception
/// in its code comes back as UNKNOWN): reducers are pure, so the same action would fail the
/// same way again, and the caller is told so instead of being invited to retry. Logged here,
/// once per failed call.
fn failure(action: &Action, endpoint: &str, status: &tonic::Status) -> EngineError {
    use tonic::Code;
    let code = status.code();
    if matches!(code, Code::Unavailable | Code::ResourceExhausted | Code::Aborted) {
        return EngineError::ReducerUnavailable(format!(
            "remote reducer for workflow type {} at {endpoint} is unavailable ({}); the state is unchanged, \
             retry the action",
            action.workflow_type,
            status.message()
        ));
    }
    tracing::warn!(
        workflow_type = %action.workflow_type,
        %endpoint,
        code = ?code,
        message = status.message(),
        action_id = %action.id,
        "remote reducer failed; the action is refused"
    );
    EngineError::BadReducer(format!(
        "the remote reducer for workflow type {} failed on this action ({code:?}: {}); the state is unchanged. \
         Sending the same action again fails the same way: fix the reducer, or send a different action",
        action.workflow_type,
        status.message()
    ))
}

fn deadline(action: &Action, endpoint: &str, timeout: Duration) -> EngineError {
    EngineError::ReducerTimeout(format!(
        "remote reducer for workflow type {} at {endpoint} did not answer within {} ms; the state is unchanged, retry the action",
        action.workflow_type,
        timeout.as_millis()
    ))
}
