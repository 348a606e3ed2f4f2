//! `GetHistory` and `ListWorkflows`: what happened to a workflow, and which workflows
//! there are. Pages continue from opaque tokens that name the last entry returned.

use purereducer_api::v1;
use purereducer_core::{FieldError, Namespace, Version};
use purereducer_storage::{HistoryPage, HistoryRecord, Store, WorkflowFilter};

use crate::auth::Identity;
use crate::convert::{intents_to_proto, json_to_struct, status_to_proto};
use crate::error::ApiError;
use crate::grpc::timestamp_ms;

/// Entries or workflows per page when the request names no limit.
const DEFAULT_PAGE: u32 = 100;
/// The largest page a request may ask for.
const MAX_PAGE: u32 = 1000;

fn page_limit(limit: u32) -> Result<u32, ApiError> {
    match limit {
        0 => Ok(DEFAULT_PAGE),
        n if n <= MAX_PAGE => Ok(n),
        _ => Err(FieldError::new(
            "limit",
            format!("must be at most {MAX_PAGE}; follow next_page_token for more"),
        )
        .into()),
    }
}

/// A history page token: the direction and the (version, seq) of the last entry returned.
fn history_token(reverse: bool, last: &HistoryRecord) -> String {
    let direction = if reverse { 'r' } else { 'f' };
    format!("{direction}.{}.{}", last.entry.version.get(), last.seq)
}

fn parse_history_token(token: &str, reverse: bool) -> Result<(i64, i64), ApiError> {
    let bad = || {
        ApiError::from(FieldError::new(
            "page_token",
            "is not a token from this listing; pass next_page_token from the previous page unchanged, with the same reverse",
        ))
    };
    let mut parts = token.split('.');
    let direction = parts.next().ok_or_else(bad)?;
    let version: i64 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let seq: i64 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let expected = if reverse { "r" } else { "f" };
    if direction != expected || parts.next().is_some() || version < 0 || seq < 0 {
        return Err(bad());
    }
    Ok((version, seq))
}

/// A history entry as the API returns it.
pub fn entry_to_proto(record: &HistoryRecord) -> v1::HistoryEntry {
    let entry = &record.entry;
    v1::HistoryEntry {
        version: entry.version.get(),
        status: status_to_proto(entry.status).into(),
        action_id: entry.action_id.clone(),
        action_type: entry.action_type.clone(),
        correlation_id: entry.correlation_id.clone(),
        state: entry.state.as_ref().map(json_to_struct),
        intents: intents_to_proto(&entry.intents),
        reason: entry.reason.clone().unwrap_or_default(),
        result_hash: entry.result_hash.clone(),
        actor: entry.actor.clone(),
        recorded_at: Some(timestamp_ms(record.recorded_at_ms)),
        workflow_type: entry.workflow_type.clone(),
        payload: entry.payload.as_ref().map(json_to_struct),
        deleted: entry.is_deletion(),
    }
}

/// Serves `GetHistory`.
pub async fn get_history(
    store: &dyn Store,
    identity: &Identity,
    request: v1::GetHistoryRequest,
) -> Result<v1::GetHistoryResponse, ApiError> {
    let key = crate::convert::namespaced_key(&request.namespace, &request.workflow_key, "workflow_key")?;
    let limit = page_limit(request.limit)?;
    crate::convert::version_field(request.from_version, "from_version")?;
    let mut page = HistoryPage::starting_at(Version::new(request.from_version), request.reverse, limit + 1);
    if !request.page_token.is_empty() {
        page.after = parse_history_token(&request.page_token, request.reverse)?;
    }
    crate::auth::require_namespace(identity, key.namespace().as_str()).map_err(ApiError::Denied)?;
    let mut records = store.history(&key, page).await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_page_token = match records.last() {
        Some(last) if more => history_token(request.reverse, last),
        _ => String::new(),
    };
    Ok(v1::GetHistoryResponse {
        workflow_key: key.to_string(),
        namespace: key.namespace().to_string(),
        entries: records.iter().map(entry_to_proto).collect(),
        next_page_token,
    })
}

fn timestamp_field(value: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<i64>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    if !(0..=253_402_300_799).contains(&value.seconds) || !(0..1_000_000_000).contains(&value.nanos) {
        return Err(FieldError::new(field, "must be a valid time between 1970 and 9999"));
    }
    Ok(Some(value.seconds * 1000 + i64::from(value.nanos / 1_000_000)))
}

/// Serves `ListWorkflows`.
pub async fn list_workflows(
    store: &dyn Store,
    identity: &Identity,
    request: v1::ListWorkflowsRequest,
) -> Result<v1::ListWorkflowsResponse, ApiError> {
    let mut errors = crate::convert::FieldErrors::default();
    let namespace = errors.take(Namespace::parse_or_default(&request.namespace));
    let limit = page_limit(request.limit)?;
    let optional = |raw: &str| (!raw.is_empty()).then(|| raw.to_owned());
    for (raw, field) in [
        (&request.workflow_type, "workflow_type"),
        (&request.key_prefix, "key_prefix"),
        (&request.tag, "tag"),
    ] {
        errors.take(crate::convert::text_field(raw, field, 256));
    }
    let after_key = match request.page_token.as_str() {
        "" => None,
        token => token
            .strip_prefix("k.")
            .filter(|key| !key.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                errors.0.push(FieldError::new(
                    "page_token",
                    "is not a token from this listing; pass next_page_token from the previous page unchanged",
                ));
                None
            }),
    };
    let updated_after_ms = errors.take(timestamp_field(request.updated_after.as_ref(), "updated_after"));
    let updated_before_ms = errors.take(timestamp_field(request.updated_before.as_ref(), "updated_before"));
    errors.finish()?;
    let Some(namespace) = namespace else {
        return Err(ApiError::Internal("validated namespace missing".to_owned()));
    };
    crate::auth::require_namespace(identity, namespace.as_str()).map_err(ApiError::Denied)?;
    let filter = WorkflowFilter {
        namespace: namespace.to_string(),
        workflow_type: optional(&request.workflow_type),
        key_prefix: optional(&request.key_prefix),
        updated_after_ms: updated_after_ms.flatten(),
        updated_before_ms: updated_before_ms.flatten(),
        tag: optional(&request.tag),
        after_key,
        limit: limit + 1,
    };
    let mut found = store.list_workflows(&filter).await?;
    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next_page_token = match found.last() {
        Some(last) if more => format!("k.{}", last.workflow_key),
        _ => String::new(),
    };
    Ok(v1::ListWorkflowsResponse {
        workflows: found
            .into_iter()
            .map(|w| v1::WorkflowSummary {
                workflow_key: w.workflow_key,
                namespace: w.namespace,
                workflow_type: w.workflow_type,
                version: w.version.get(),
                updated_at: Some(timestamp_ms(w.updated_at_ms)),
                tag: w.tag.unwrap_or_default(),
            })
            .collect(),
        next_page_token,
    })
}
