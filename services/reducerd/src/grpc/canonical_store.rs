//! `CanonicalStoreService`: versioned reads and compare-and-set commits.

use std::sync::Arc;

use purereducer_api::v1::canonical_store_service_server::CanonicalStoreService;
use purereducer_api::v1::{
    DeleteWorkflowRequest, DeleteWorkflowResponse, GetHistoryRequest, GetHistoryResponse, GetStateRequest,
    GetStateResponse, ListWorkflowsRequest, ListWorkflowsResponse, TryCommitRequest, TryCommitResponse,
    try_commit_response,
};
use purereducer_core::{FieldError, Namespace, TypeName, Version, WorkflowKey};
use tonic::{Request, Response, Status};

use crate::convert::{FieldErrors, json_field, json_to_struct};
use crate::engine::{DirectCommit, DirectOutcome, Engine, Provenance};
use crate::error::ApiError;
use crate::grpc::timestamp_ms;

/// Serves `CanonicalStoreService`.
#[derive(Debug, Clone)]
pub struct CanonicalStore {
    engine: Arc<Engine>,
    max_payload_bytes: usize,
    rate: crate::limits::NamespaceRate,
}

impl CanonicalStore {
    /// A service over the engine's store.
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

    async fn try_commit_inner(
        &self,
        identity: &crate::auth::Identity,
        request: TryCommitRequest,
    ) -> Result<TryCommitResponse, ApiError> {
        let mut errors = FieldErrors::default();
        let namespace = errors.take(Namespace::parse_or_default(&request.namespace));
        let key = namespace
            .as_ref()
            .and_then(|namespace| errors.take(WorkflowKey::parse(namespace, &request.workflow_key)));
        let state = errors.take(json_field(
            request.state.as_ref(),
            "state",
            self.max_payload_bytes,
            true,
        ));
        let workflow_type = if request.workflow_type.is_empty() {
            None
        } else {
            errors
                .take(TypeName::parse(&request.workflow_type, "workflow_type").map(Some))
                .flatten()
        };
        let provenance = request.provenance.unwrap_or_default();
        errors.take(crate::convert::text_field(&provenance.actor, "provenance.actor", 256));
        errors.take(crate::convert::text_field(
            &provenance.reason,
            "provenance.reason",
            1024,
        ));
        errors.take(crate::convert::text_field(
            &provenance.action_id,
            "provenance.action_id",
            128,
        ));
        errors.take(crate::convert::version_field(
            request.expected_version,
            "expected_version",
        ));
        errors.finish()?;
        let (Some(key), Some(state)) = (key, state) else {
            return Err(ApiError::Internal("validated fields missing".to_owned()));
        };
        if let Some(name) = &workflow_type
            && self.engine.types().get(name.as_str()).is_none()
        {
            return Err(FieldError::new("workflow_type", format!("'{name}' is not a declared workflow type")).into());
        }

        crate::auth::require_namespace(identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
        self.rate.check(key.namespace().as_str()).map_err(ApiError::Denied)?;
        let correlation_id = crate::convert::correlation_id(&provenance.correlation_id, "provenance.correlation_id")?;
        let commit = DirectCommit {
            key,
            expected: Version::new(request.expected_version),
            state,
            workflow_type,
            provenance: Provenance {
                action_id: provenance.action_id,
                actor: provenance.actor,
                reason: provenance.reason,
                correlation_id,
            },
            delete: false,
        };
        match self.engine.try_commit(commit).await? {
            DirectOutcome::Committed(version) => Ok(TryCommitResponse {
                outcome: Some(try_commit_response::Outcome::Committed(
                    try_commit_response::Committed { version: version.get() },
                )),
            }),
            DirectOutcome::Conflict(current) => Ok(conflict(current)),
        }
    }
}

/// How often a deletion at "whatever version" is tried again after losing a race.
const DELETE_ATTEMPTS: u32 = 5;

impl CanonicalStore {
    async fn delete_workflow_inner(
        &self,
        identity: &crate::auth::Identity,
        request: DeleteWorkflowRequest,
    ) -> Result<DeleteWorkflowResponse, ApiError> {
        let key = crate::convert::namespaced_key(&request.namespace, &request.workflow_key, "workflow_key")?;
        let mut errors = FieldErrors::default();
        errors.take(crate::convert::text_field(&request.reason, "reason", 1024));
        errors.take(crate::convert::version_field(
            request.expected_version,
            "expected_version",
        ));
        errors.finish()?;
        crate::auth::require_namespace(identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
        self.rate.check(key.namespace().as_str()).map_err(ApiError::Denied)?;
        let commit = DirectCommit {
            key: key.clone(),
            expected: Version::new(request.expected_version),
            state: purereducer_core::JsonObject::new(),
            workflow_type: None,
            provenance: Provenance {
                action_id: String::new(),
                actor: identity.subject.clone(),
                reason: request.reason,
                correlation_id: uuid::Uuid::new_v4().to_string(),
            },
            delete: true,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.engine.try_commit(commit.clone()).await? {
                DirectOutcome::Committed(version) => {
                    tracing::info!(workflow = %key, %version, actor = %identity.subject, "workflow deleted");
                    return Ok(DeleteWorkflowResponse { version: version.get() });
                }
                // Whatever its version: another commit won the race, delete at the new one.
                DirectOutcome::Conflict(_) if request.expected_version == 0 && attempts < DELETE_ATTEMPTS => {}
                DirectOutcome::Conflict(current) => {
                    return Err(ApiError::FailedPrecondition(format!(
                        "workflow {key} is at version {current}, not {}; nothing was deleted. \
                         Read it again and delete at its current version (or with expected_version 0)",
                        request.expected_version
                    )));
                }
            }
        }
    }
}

fn conflict(current: Version) -> TryCommitResponse {
    TryCommitResponse {
        outcome: Some(try_commit_response::Outcome::Conflict(try_commit_response::Conflict {
            current_version: current.get(),
        })),
    }
}

#[tonic::async_trait]
impl CanonicalStoreService for CanonicalStore {
    async fn get_state(&self, request: Request<GetStateRequest>) -> Result<Response<GetStateResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let key = crate::convert::namespaced_key(
            &request.get_ref().namespace,
            &request.get_ref().workflow_key,
            "workflow_key",
        )?;
        crate::auth::require_namespace(&identity, key.namespace().as_str())?;
        let Some(stored) = self.engine.get_state(&key).await? else {
            return Err(ApiError::NotFound(format!(
                "workflow {key} does not exist; its first action, or TryCommit with expected_version 0, creates it"
            ))
            .into());
        };
        if stored.deleted {
            return Err(ApiError::NotFound(format!(
                "workflow {key} was deleted at version {}; its next action, or TryCommit with expected_version {}, \
                 starts it again (GetHistory shows what it was)",
                stored.version, stored.version
            ))
            .into());
        }
        Ok(Response::new(GetStateResponse {
            workflow_key: key.to_string(),
            version: stored.version.get(),
            state: Some(json_to_struct(&stored.state)),
            workflow_type: stored.workflow_type,
            namespace: stored.namespace,
            updated_at: Some(timestamp_ms(stored.updated_at_ms)),
        }))
    }

    async fn get_history(&self, request: Request<GetHistoryRequest>) -> Result<Response<GetHistoryResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let store = self.engine.store().as_ref();
        Ok(Response::new(
            super::history::get_history(store, &identity, request.into_inner()).await?,
        ))
    }

    async fn list_workflows(
        &self,
        request: Request<ListWorkflowsRequest>,
    ) -> Result<Response<ListWorkflowsResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let store = self.engine.store().as_ref();
        Ok(Response::new(
            super::history::list_workflows(store, &identity, request.into_inner()).await?,
        ))
    }

    async fn delete_workflow(
        &self,
        request: Request<DeleteWorkflowRequest>,
    ) -> Result<Response<DeleteWorkflowResponse>, Status> {
        let identity = crate::auth::identity(&request);
        Ok(Response::new(
            self.delete_workflow_inner(&identity, request.into_inner()).await?,
        ))
    }

    async fn try_commit(&self, request: Request<TryCommitRequest>) -> Result<Response<TryCommitResponse>, Status> {
        let identity = crate::auth::identity(&request);
        Ok(Response::new(
            self.try_commit_inner(&identity, request.into_inner()).await?,
        ))
    }
}
