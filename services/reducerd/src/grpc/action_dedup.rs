//! `ActionDedupService`: processed action ids and their cleanup.

use std::sync::Arc;
use std::time::Duration;

use purereducer_api::v1::action_dedup_service_server::ActionDedupService;
use purereducer_api::v1::{
    CleanupExpiredRequest, CleanupExpiredResponse, ProcessedAction, RecordProcessedRequest, RecordProcessedResponse,
    ShouldProcessRequest, ShouldProcessResponse,
};
use purereducer_core::{ActionId, ActionStatus, FieldError, Namespace, Version, WorkflowKey};
use purereducer_storage::{NewRecord, ProcessedRecord, RecordResult, Store};
use tonic::{Request, Response, Status};

use crate::auth::Identity;
use crate::convert::FieldErrors;
use crate::error::ApiError;
use crate::grpc::timestamp_ms;
use crate::metrics::metrics;

/// Serves `ActionDedupService`.
#[derive(Debug, Clone)]
pub struct ActionDedup {
    store: Arc<dyn Store>,
    default_ttl: Duration,
}

impl ActionDedup {
    /// A service over `store`; records live `default_ttl` unless a request says otherwise.
    pub fn new(store: Arc<dyn Store>, default_ttl: Duration) -> Self {
        Self { store, default_ttl }
    }
}

/// The key and action id of a request, once its namespace is granted to the caller.
fn parse_ids(
    identity: &Identity,
    namespace: &str,
    workflow_key: &str,
    action_id: &str,
) -> Result<(WorkflowKey, ActionId), ApiError> {
    let mut errors = FieldErrors::default();
    let namespace = errors.take(Namespace::parse_or_default(namespace));
    let key = namespace
        .as_ref()
        .and_then(|namespace| errors.take(WorkflowKey::parse(namespace, workflow_key)));
    let id = errors.take(ActionId::parse(action_id, "action_id"));
    errors.finish()?;
    match (key, id) {
        (Some(key), Some(id)) => {
            crate::auth::require_namespace(identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
            Ok((key, id))
        }
        _ => Err(ApiError::Internal("validated fields missing".to_owned())),
    }
}

fn to_proto(key: &WorkflowKey, record: ProcessedRecord) -> ProcessedAction {
    let status = crate::convert::status_to_proto(record.status);
    ProcessedAction {
        workflow_key: key.to_string(),
        action_id: record.action_id.to_string(),
        result_hash: record.result_hash,
        version: record.version.get(),
        status: status.into(),
        expires_at: Some(timestamp_ms(record.expires_at_ms)),
        namespace: key.namespace().to_string(),
    }
}

#[tonic::async_trait]
impl ActionDedupService for ActionDedup {
    async fn should_process(
        &self,
        request: Request<ShouldProcessRequest>,
    ) -> Result<Response<ShouldProcessResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let request = request.into_inner();
        let (key, id) = parse_ids(&identity, &request.namespace, &request.workflow_key, &request.action_id)?;
        let found = self.store.find_processed(&key, id).await.map_err(ApiError::from)?;
        let metrics = metrics();
        metrics.dedup_checks.add(1, &[]);
        if found.is_some() {
            metrics.dedup_hits.add(1, &[]);
        }
        Ok(Response::new(ShouldProcessResponse {
            should_process: found.is_none(),
            previous: found.map(|record| to_proto(&key, record)),
        }))
    }

    async fn record_processed(
        &self,
        request: Request<RecordProcessedRequest>,
    ) -> Result<Response<RecordProcessedResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let request = request.into_inner();
        let (key, id) = parse_ids(&identity, &request.namespace, &request.workflow_key, &request.action_id)?;
        let mut errors = FieldErrors::default();
        if request.result_hash.is_empty() {
            errors.0.push(FieldError::new("result_hash", "is required"));
        }
        errors.take(crate::convert::text_field(&request.result_hash, "result_hash", 128));
        errors.take(crate::convert::version_field(request.version, "version"));
        errors.finish().map_err(ApiError::from)?;
        let ttl = match request.ttl_seconds {
            0 => self.default_ttl,
            seconds => Duration::from_secs(u64::from(seconds)),
        };
        let record = NewRecord {
            action_id: id,
            // Recorded from outside HandleAction: no request fingerprint to compare.
            request_hash: String::new(),
            result_hash: request.result_hash,
            version: Version::new(request.version),
            status: ActionStatus::Committed,
            intents: Vec::new(),
            rejection_reason: None,
            ttl,
        };
        let (recorded, record) = match self
            .store
            .record_processed(&key, record)
            .await
            .map_err(ApiError::from)?
        {
            RecordResult::Recorded(record) => {
                metrics().dedup_records.add(1, &[]);
                (true, record)
            }
            RecordResult::Exists(record) => (false, record),
        };
        Ok(Response::new(RecordProcessedResponse {
            recorded,
            record: Some(to_proto(&key, record)),
        }))
    }

    async fn cleanup_expired(
        &self,
        request: Request<CleanupExpiredRequest>,
    ) -> Result<Response<CleanupExpiredResponse>, Status> {
        let identity = crate::auth::identity(&request);
        if identity.granted().is_some() {
            return Err(Status::permission_denied(format!(
                "CleanupExpired removes expired records of every namespace; the credential of '{}' is limited to some",
                identity.subject
            )));
        }
        let deleted = self.store.cleanup_expired().await.map_err(ApiError::from)?;
        metrics().dedup_cleanup_deleted.add(deleted, &[]);
        tracing::info!(deleted, "expired dedup records removed on request");
        Ok(Response::new(CleanupExpiredResponse { deleted }))
    }
}
