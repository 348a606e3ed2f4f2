//! `/api/v1/`: JSON over the same reads and repairs as the gRPC API, with the same checks
//! (the list and history go through the gRPC handlers' own validation).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use prost_types::Timestamp;
use purereducer_api::v1;
use purereducer_storage::Replayed;
use serde_json::{Value, json};

use super::{ConsoleState, JsonError, Slot, caller};
use crate::auth::{Authenticator, Role};
use crate::error::ApiError;

/// What every handler reads.
#[derive(Debug)]
pub struct Shared {
    pub slot: Slot,
    pub auth: Arc<Authenticator>,
    pub registry: prometheus::Registry,
}

type Api = State<Arc<Shared>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Json<Value>, JsonError>;

/// The API's routes.
pub fn routes(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/workflows", get(list))
        .route("/workflows/{namespace}/{key}", get(workflow))
        .route("/workflows/{namespace}/{key}/history", get(history))
        .route("/workflows/{namespace}/{key}/dedup", get(dedup))
        .route("/workflows/{namespace}/{key}/retry/{action_id}", post(retry))
        .route("/pipeline", get(pipeline))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}/replay", post(replay))
        .route("/gave-up", get(gave_up))
        .route("/health", get(health))
        .fallback(|| async { JsonError::new(StatusCode::NOT_FOUND, "no such API path; see docs/console.md") })
        .with_state(shared)
}

fn state(shared: &Shared) -> Result<&Arc<ConsoleState>, JsonError> {
    shared.slot.get().ok_or_else(|| {
        JsonError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reducerd is starting; try again shortly",
        )
    })
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map_or("", String::as_str)
}

fn number<T: std::str::FromStr + Default>(params: &HashMap<String, String>, name: &str) -> Result<T, JsonError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(T::default()),
        Some(raw) => raw.parse().map_err(|_| {
            JsonError::new(
                StatusCode::BAD_REQUEST,
                format!("query parameter {name} must be a number"),
            )
        }),
    }
}

fn time(value: Option<&Timestamp>) -> Value {
    value.map_or(Value::Null, |ts| Value::String(ts.to_string()))
}

fn time_ms(ms: i64) -> Value {
    Value::String(crate::grpc::timestamp_ms(ms).to_string())
}

fn object(value: Option<&prost_types::Struct>) -> Value {
    value
        .and_then(|s| crate::convert::struct_to_json(s, "state").ok())
        .map_or(Value::Null, Value::Object)
}

fn status_name(status: i32) -> String {
    v1::ActionStatus::try_from(status)
        .map(|s| s.as_str_name().trim_start_matches("ACTION_STATUS_").to_owned())
        .unwrap_or_else(|_| format!("UNKNOWN({status})"))
}

async fn list(State(shared): Api, headers: HeaderMap, Query(params): Params) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    let request = v1::ListWorkflowsRequest {
        namespace: param(&params, "namespace").to_owned(),
        workflow_type: param(&params, "type").to_owned(),
        key_prefix: param(&params, "prefix").to_owned(),
        tag: param(&params, "status").to_owned(),
        limit: number(&params, "limit")?,
        page_token: param(&params, "page_token").to_owned(),
        ..Default::default()
    };
    let page = crate::grpc::history::list_workflows(state.store.as_ref(), &identity, request).await?;
    let workflows: Vec<Value> = page
        .workflows
        .iter()
        .map(|w| {
            json!({
                "workflow_key": w.workflow_key, "namespace": w.namespace, "workflow_type": w.workflow_type,
                "version": w.version, "updated_at": time(w.updated_at.as_ref()), "status": w.tag,
            })
        })
        .collect();
    Ok(Json(
        json!({ "workflows": workflows, "next_page_token": page.next_page_token }),
    ))
}

fn key_of(namespace: &str, key: &str) -> Result<purereducer_core::WorkflowKey, JsonError> {
    Ok(crate::convert::namespaced_key(namespace, key, "workflow_key")?)
}

async fn workflow(State(shared): Api, headers: HeaderMap, Path((namespace, key)): Path<(String, String)>) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    let key = key_of(&namespace, &key)?;
    crate::auth::require_namespace(&identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
    let Some(stored) = state.engine.get_state(&key).await.map_err(ApiError::from)? else {
        return Err(ApiError::NotFound(format!(
            "workflow {key} does not exist in namespace {}",
            key.namespace()
        ))
        .into());
    };
    Ok(Json(json!({
        "workflow_key": key.to_string(), "namespace": stored.namespace, "workflow_type": stored.workflow_type,
        "version": stored.version.get(), "updated_at": time_ms(stored.updated_at_ms), "state": stored.state,
        "deleted": stored.deleted,
    })))
}

async fn history(
    State(shared): Api,
    headers: HeaderMap,
    Path((namespace, key)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    let request = v1::GetHistoryRequest {
        workflow_key: key,
        namespace,
        from_version: number(&params, "from_version")?,
        limit: number(&params, "limit")?,
        reverse: param(&params, "reverse") == "true",
        page_token: param(&params, "page_token").to_owned(),
    };
    let page = crate::grpc::history::get_history(state.store.as_ref(), &identity, request).await?;
    let entries: Vec<Value> = page
        .entries
        .iter()
        .map(|e| {
            json!({
                "version": e.version, "status": status_name(e.status), "action_id": e.action_id,
                "action_type": e.action_type, "correlation_id": e.correlation_id,
                "state": object(e.state.as_ref()), "payload": object(e.payload.as_ref()),
                "intents": e.intents.iter().map(|i| json!({"type": i.intent_type})).collect::<Vec<_>>(),
                "reason": e.reason, "result_hash": e.result_hash, "actor": e.actor,
                "recorded_at": time(e.recorded_at.as_ref()), "workflow_type": e.workflow_type,
                "deleted": e.deleted,
            })
        })
        .collect();
    Ok(Json(
        json!({ "entries": entries, "next_page_token": page.next_page_token }),
    ))
}

async fn dedup(State(shared): Api, headers: HeaderMap, Path((namespace, key)): Path<(String, String)>) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    let key = key_of(&namespace, &key)?;
    crate::auth::require_namespace(&identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
    let records = state.store.processed_of(&key, 100).await?;
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "action_id": r.action_id.to_string(), "status": r.status.as_str(), "version": r.version.get(),
                "expires_at": time_ms(r.expires_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "records": records })))
}

async fn retry(
    State(shared): Api,
    headers: HeaderMap,
    Path((namespace, key, action_id)): Path<(String, String, String)>,
) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Admin)?;
    let state = state(&shared)?;
    let key = key_of(&namespace, &key)?;
    crate::auth::require_namespace(&identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
    let (_, outcome) = crate::admin::retry(&state.engine, &key, &action_id).await?;
    let message = match &outcome.rejection_reason {
        Some(reason) => format!("action {action_id} was retried and refused: {reason}"),
        None => format!(
            "action {action_id} was retried: {} at version {}",
            outcome.status.as_str(),
            outcome.version
        ),
    };
    Ok(Json(json!({
        "status": outcome.status.as_str(), "version": outcome.version.get(), "message": message,
    })))
}

async fn pipeline(State(shared): Api, headers: HeaderMap) -> Answer {
    caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    let (pending, oldest) = state.store.outbox_backlog().await?;
    let marks = state.store.list_watermarks().await?;
    let watermarks: Vec<Value> = marks
        .iter()
        .map(|w| {
            json!({"topic": w.topic, "partition": w.partition, "offset": w.offset, "updated_at": time_ms(w.updated_at_ms)})
        })
        .collect();
    let groups: Vec<Value> = state
        .consumer_groups
        .iter()
        .map(|(group, topics)| json!({"group": group, "topics": topics}))
        .collect();
    Ok(Json(json!({
        "mode": state.mode,
        "outbox": {"pending": pending, "oldest_pending_age_ms": oldest},
        "watermarks": watermarks,
        "consumer_groups": groups,
    })))
}

async fn dead_letters(State(shared): Api, headers: HeaderMap, Query(params): Params) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Admin)?;
    let state = state(&shared)?;
    let limit = match number::<u32>(&params, "limit")? {
        0 => 100,
        n => n.min(1000),
    };
    let letters = state.store.dead_letters(limit).await?;
    let letters: Vec<Value> = letters
        .iter()
        .filter(|l| identity.may_use(&l.letter.namespace))
        .map(|l| {
            json!({
                "id": l.id, "source": l.letter.source, "namespace": l.letter.namespace,
                "workflow_key": l.letter.workflow_key, "version": l.letter.version.get(),
                "event_type": l.letter.event_type, "error": l.letter.error,
                "created_at": time_ms(l.created_at_ms), "replayed_at": l.replayed_at_ms.map(time_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": letters })))
}

async fn replay(State(shared): Api, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Admin)?;
    let state = state(&shared)?;
    let id: i64 = id
        .parse()
        .map_err(|_| JsonError::new(StatusCode::BAD_REQUEST, "a dead letter id is a number"))?;
    let (replayed, message) = crate::admin::replay(state.store.as_ref(), &identity, id).await?;
    Ok(Json(
        json!({ "replayed": replayed != Replayed::NotFound, "applied": replayed == Replayed::Applied, "message": message }),
    ))
}

async fn gave_up(State(shared): Api, headers: HeaderMap, Query(params): Params) -> Answer {
    let identity = caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    let limit = match number::<u32>(&params, "limit")? {
        0 => 100,
        n => n.min(1000),
    };
    let records = state.store.recent_gave_up(limit).await?;
    let entries: Vec<Value> = records
        .iter()
        .filter(|r| identity.may_use(&r.entry.namespace))
        .map(|r| {
            let e = &r.entry;
            json!({
                "namespace": e.namespace, "workflow_key": e.workflow_key, "version": e.version.get(),
                "action_id": e.action_id, "action_type": e.action_type, "correlation_id": e.correlation_id,
                "reason": e.reason, "recorded_at": time_ms(r.recorded_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "gave_up": entries })))
}

async fn health(State(shared): Api, headers: HeaderMap) -> Answer {
    caller(&shared.auth, &headers, Role::Reader)?;
    let state = state(&shared)?;
    Ok(Json(json!({
        "backend": state.store.backend(),
        "roles": state.roles,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "sla": super::health::sla(&shared.registry),
    })))
}
