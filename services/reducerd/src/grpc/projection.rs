//! `ProjectionService`: read-optimised views, with read-your-writes waits.

use std::sync::Arc;
use std::time::Duration;

use purereducer_api::v1::projection_service_server::ProjectionService;
use purereducer_api::v1::{
    DeadLetter, GetProjectionRequest, GetProjectionResponse, ListDeadLettersRequest, ListDeadLettersResponse,
    ListWatermarksRequest, ListWatermarksResponse, Projection, ReplayDeadLetterRequest, ReplayDeadLetterResponse,
    Watermark,
};
use purereducer_core::WorkflowKey;
use purereducer_storage::{Store, StoredProjection};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::convert::json_to_struct;
use crate::error::ApiError;
use crate::grpc::timestamp_ms;
use crate::hub::Hub;

/// Serves `ProjectionService`.
#[derive(Debug, Clone)]
pub struct Projections {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    max_wait: Duration,
}

impl Projections {
    /// A service over `store`, woken by `hub`; waits are capped at `max_wait`.
    pub fn new(store: Arc<dyn Store>, hub: Arc<Hub>, max_wait: Duration) -> Self {
        Self { store, hub, max_wait }
    }

    /// The projection once it reaches `min_version`, or `None` when `wait` passes first.
    async fn await_version(
        &self,
        key: &WorkflowKey,
        min_version: u64,
        wait: Duration,
    ) -> Result<Option<StoredProjection>, ApiError> {
        let mut applied = self.hub.projections();
        let reached =
            |row: &Option<StoredProjection>| row.as_ref().is_some_and(|p| p.row.version.get() >= min_version.max(1));
        let current = self.store.get_projection(key).await?;
        if reached(&current) {
            return Ok(current);
        }
        let wanted = crate::hub::projection_key(key.namespace().as_str(), key.as_str());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let relevant = match tokio::time::timeout_at(deadline, applied.recv()).await {
                Err(_) => return Ok(None),
                // An empty key is a resync: notifications may have been missed, look again.
                Ok(Ok((applied_key, version))) => {
                    (applied_key == wanted || applied_key.is_empty()) && version >= min_version
                }
                Ok(Err(RecvError::Lagged(_))) => true,
                Ok(Err(RecvError::Closed)) => return Ok(None),
            };
            if relevant {
                let current = self.store.get_projection(key).await?;
                if reached(&current) {
                    return Ok(current);
                }
            }
        }
    }
}

fn to_proto(stored: StoredProjection) -> Projection {
    let object = |value: Value| match value {
        Value::Object(map) => Some(json_to_struct(&map)),
        _ => None,
    };
    Projection {
        workflow_key: stored.row.workflow_key,
        version: stored.row.version.get(),
        tag: stored.row.tag.unwrap_or_default(),
        last_action: stored.row.last_action,
        namespace: stored.row.namespace,
        updated_at: Some(timestamp_ms(stored.updated_at_ms)),
        indices: object(stored.row.indices),
        extras: object(stored.row.extras),
    }
}

#[tonic::async_trait]
impl ProjectionService for Projections {
    async fn get_projection(
        &self,
        request: Request<GetProjectionRequest>,
    ) -> Result<Response<GetProjectionResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let request = request.into_inner();
        let key = crate::convert::namespaced_key(&request.namespace, &request.workflow_key, "workflow_key")?;
        crate::auth::require_namespace(&identity, key.namespace().as_str())?;
        let missing = || ApiError::NotFound(format!("workflow {key} has no projection and no state"));
        let wait = Duration::from_millis(u64::from(request.max_wait_ms)).min(self.max_wait);
        let deleted = |version: purereducer_core::Version| {
            ApiError::NotFound(format!(
                "workflow {key} was deleted at version {version}; its next action starts it again"
            ))
        };
        if let Some(found) = self.await_version(&key, request.min_version, wait).await? {
            if found.row.deleted {
                return Err(deleted(found.row.version).into());
            }
            return Ok(Response::new(GetProjectionResponse {
                projection: Some(to_proto(found)),
                from_canonical: false,
            }));
        }
        // Not there in time: answer from the source of truth and say so.
        let found = self.store.get_state(&key).await.map_err(ApiError::from)?;
        let Some(state) = found else {
            return Err(missing().into());
        };
        if state.deleted {
            return Err(deleted(state.version).into());
        }
        let tag = state.state.get("status").and_then(Value::as_str).map(str::to_owned);
        let projection = Projection {
            workflow_key: key.to_string(),
            version: state.version.get(),
            tag: tag.clone().unwrap_or_default(),
            last_action: String::new(),
            namespace: state.namespace,
            updated_at: Some(timestamp_ms(state.updated_at_ms)),
            indices: json!({"workflow_type": state.workflow_type, "status": tag})
                .as_object()
                .map(json_to_struct),
            extras: Some(json_to_struct(&state.state)),
        };
        Ok(Response::new(GetProjectionResponse {
            projection: Some(projection),
            from_canonical: true,
        }))
    }

    async fn list_watermarks(
        &self,
        _request: Request<ListWatermarksRequest>,
    ) -> Result<Response<ListWatermarksResponse>, Status> {
        let marks = self.store.list_watermarks().await.map_err(ApiError::from)?;
        Ok(Response::new(ListWatermarksResponse {
            watermarks: marks
                .into_iter()
                .map(|w| Watermark {
                    topic: w.topic,
                    partition: w.partition,
                    offset: w.offset,
                    updated_at: Some(timestamp_ms(w.updated_at_ms)),
                })
                .collect(),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let limit = match request.get_ref().limit {
            0 => 100,
            n if n <= 1000 => n,
            _ => {
                return Err(ApiError::from(purereducer_core::FieldError::new("limit", "must be at most 1000")).into());
            }
        };
        let letters = self.store.dead_letters(limit).await.map_err(ApiError::from)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: letters
                .into_iter()
                .filter(|l| identity.may_use(&l.letter.namespace))
                .map(|l| DeadLetter {
                    id: l.id,
                    source: l.letter.source,
                    namespace: l.letter.namespace,
                    workflow_key: l.letter.workflow_key,
                    version: l.letter.version.get(),
                    event_type: l.letter.event_type,
                    error: l.letter.error,
                    created_at: Some(timestamp_ms(l.created_at_ms)),
                    replayed_at: l.replayed_at_ms.map(timestamp_ms),
                })
                .collect(),
        }))
    }

    async fn replay_dead_letter(
        &self,
        request: Request<ReplayDeadLetterRequest>,
    ) -> Result<Response<ReplayDeadLetterResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let id = request.get_ref().id;
        let (replayed, message) = crate::admin::replay(self.store.as_ref(), &identity, id).await?;
        Ok(Response::new(ReplayDeadLetterResponse {
            applied: replayed == purereducer_storage::Replayed::Applied,
            message,
        }))
    }
}
