//! `ReducerService`: the exactly-once entry point for actions.

use std::sync::Arc;

use purereducer_api::v1::reducer_service_server::ReducerService;
use purereducer_api::v1::{HandleActionRequest, HandleActionResponse, RetryActionRequest, RetryActionResponse};
use tonic::{Request, Response, Status};

use crate::convert::parse_action;
use crate::engine::{Engine, outcome_to_proto, unknown_type};
use crate::error::ApiError;

/// Serves `ReducerService`.
#[derive(Debug, Clone)]
pub struct Reducer {
    engine: Arc<Engine>,
    max_payload_bytes: usize,
    rate: crate::limits::NamespaceRate,
}

impl Reducer {
    /// A service over the engine.
    pub fn new(engine: Arc<Engine>, max_payload_bytes: usize) -> Self {
        Self {
            engine,
            max_payload_bytes,
            rate: crate::limits::NamespaceRate::new(&crate::limits::LimitsConfig::default()),
        }
    }

    /// Limits writes per namespace to `rate`.
    pub fn with_rate(mut self, rate: crate::limits::NamespaceRate) -> Self {
        self.rate = rate;
        self
    }
}

#[tonic::async_trait]
impl ReducerService for Reducer {
    async fn handle_action(
        &self,
        request: Request<HandleActionRequest>,
    ) -> Result<Response<HandleActionResponse>, Status> {
        let action = parse_action(request.get_ref().action.as_ref(), "action", self.max_payload_bytes)
            .map_err(ApiError::from)?;
        crate::auth::require_namespace(&crate::auth::identity(&request), action.namespace().as_str())?;
        self.rate.check(action.namespace().as_str())?;
        if self.engine.types().get(action.workflow_type.as_str()).is_none() {
            return Err(unknown_type(self.engine.types(), action.workflow_type.as_str()).into());
        }
        let outcome = self.engine.handle(&action).await?;
        Ok(Response::new(outcome_to_proto(&action, outcome)))
    }

    async fn retry_action(
        &self,
        request: Request<RetryActionRequest>,
    ) -> Result<Response<RetryActionResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let request = request.into_inner();
        let key = crate::convert::namespaced_key(&request.namespace, &request.workflow_key, "workflow_key")?;
        crate::auth::require_namespace(&identity, key.namespace().as_str())?;
        self.rate.check(key.namespace().as_str())?;
        let (action, outcome) = crate::admin::retry(&self.engine, &key, &request.action_id).await?;
        Ok(Response::new(RetryActionResponse {
            outcome: Some(outcome_to_proto(&action, outcome)),
        }))
    }
}
