//! `EventBusService`: queue actions, wait for their outcomes, follow committed events.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use purereducer_api::v1::event_bus_service_server::EventBusService;
use purereducer_api::v1::{
    PublishActionRequest, PublishActionResponse, SubscribeRequest, SubscribeResponse, SubscriptionFilter,
    WaitForCompletionRequest, WaitForCompletionResponse,
};
use purereducer_core::{ActionId, FieldError, Namespace, WorkflowKey};
use purereducer_storage::{Completion, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::parse_action;
use crate::engine::{Engine, unknown_type};
use crate::error::ApiError;
use crate::hub::{Hub, PublishedEvent};
use crate::metrics::{elapsed_ms, event_labels, metrics};
use crate::pipeline::ActionQueue;

/// Serves `EventBusService`.
#[derive(Debug, Clone)]
pub struct EventBus {
    engine: Arc<Engine>,
    queue: ActionQueue,
    hub: Arc<Hub>,
    max_payload_bytes: usize,
    default_timeout: Duration,
    max_timeout: Duration,
    draining: watch::Receiver<bool>,
    rate: crate::limits::NamespaceRate,
}

/// Most entries in each list of a subscription filter, and the longest entry.
const MAX_FILTER_ENTRIES: usize = 100;
const MAX_FILTER_ENTRY_BYTES: usize = 256;

impl EventBus {
    /// A service that queues on `queue` and waits on `hub`; subscriptions end when
    /// `draining` turns true, so a graceful shutdown is not held open by endless streams.
    pub fn new(
        engine: Arc<Engine>,
        queue: ActionQueue,
        hub: Arc<Hub>,
        max_payload_bytes: usize,
        (default_timeout, max_timeout): (Duration, Duration),
        draining: watch::Receiver<bool>,
    ) -> Self {
        Self {
            engine,
            queue,
            hub,
            max_payload_bytes,
            default_timeout,
            max_timeout,
            draining,
            rate: crate::limits::NamespaceRate::new(&crate::limits::LimitsConfig::default()),
        }
    }

    /// Limits writes per namespace to `rate`.
    pub fn with_rate(mut self, rate: crate::limits::NamespaceRate) -> Self {
        self.rate = rate;
        self
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    /// Waits for the completion of `correlation_id`, feeding the event-bus wait metrics:
    /// a completion counts as a consumed event, a deadline as a timeout.
    async fn wait(
        &self,
        namespace: &Namespace,
        correlation_id: &str,
        action_id: Option<ActionId>,
        timeout: Duration,
    ) -> Result<Completion, ApiError> {
        let started = std::time::Instant::now();
        let result = self.wait_inner(namespace, correlation_id, action_id, timeout).await;
        let metrics = metrics();
        let labels = event_labels(COMPLETION_EVENT);
        metrics.wait_time_ms.record(elapsed_ms(started), &labels);
        match &result {
            Ok(_) => metrics.consumed.add(1, &labels),
            Err(ApiError::DeadlineExceeded(_)) => metrics.timeouts.add(1, &labels),
            Err(_) => {}
        }
        result
    }

    async fn wait_inner(
        &self,
        namespace: &Namespace,
        correlation_id: &str,
        action_id: Option<ActionId>,
        timeout: Duration,
    ) -> Result<Completion, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register before looking, so a completion between the two is not missed.
            let waiter = self.hub.completion_waiter(correlation_id);
            if let Some(done) = self
                .store()
                .find_completion(namespace, correlation_id, action_id)
                .await?
            {
                return Ok(done);
            }
            // A completion recorded here comes with the wake-up; one from elsewhere (or of
            // another action of the correlation id, or of another namespace's action with
            // the same correlation id) is looked up on the next turn.
            match tokio::time::timeout_at(deadline, waiter.notified(action_id)).await {
                Ok(Some(done)) if done.namespace == namespace.as_str() => return Ok(done),
                Ok(_) => {}
                Err(_) => {
                    tracing::info!(%correlation_id, timeout_ms = timeout.as_millis() as u64, "Timeout waiting for event");
                    return Err(ApiError::DeadlineExceeded(format!(
                        "action with correlation_id {correlation_id} did not complete within {} ms; wait again or check that it was published",
                        timeout.as_millis()
                    )));
                }
            }
        }
    }
}

use crate::metrics::COMPLETION_EVENT;

type EventStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventBusService for EventBus {
    async fn publish_action(
        &self,
        request: Request<PublishActionRequest>,
    ) -> Result<Response<PublishActionResponse>, Status> {
        let action = parse_action(request.get_ref().action.as_ref(), "action", self.max_payload_bytes)
            .map_err(ApiError::from)?;
        crate::auth::require_namespace(&crate::auth::identity(&request), action.namespace().as_str())?;
        self.rate.check(action.namespace().as_str())?;
        if self.engine.types().get(action.workflow_type.as_str()).is_none() {
            return Err(unknown_type(self.engine.types(), action.workflow_type.as_str()).into());
        }
        let response = PublishActionResponse {
            correlation_id: action.correlation_id.clone(),
            action_id: action.id.to_string(),
        };
        self.queue.enqueue(action).await?;
        Ok(Response::new(response))
    }

    async fn wait_for_completion(
        &self,
        request: Request<WaitForCompletionRequest>,
    ) -> Result<Response<WaitForCompletionResponse>, Status> {
        let identity = crate::auth::identity(&request);
        let request = request.into_inner();
        if request.correlation_id.is_empty() || request.correlation_id.len() > 128 {
            return Err(
                ApiError::from(FieldError::new("correlation_id", "is required, at most 128 characters")).into(),
            );
        }
        let timeout = match request.timeout_ms {
            0 => self.default_timeout,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if timeout > self.max_timeout {
            return Err(ApiError::from(FieldError::new(
                "timeout_ms",
                format!(
                    "must be at most {} (event_bus.max_wait_seconds); wait again after it ends",
                    self.max_timeout.as_millis()
                ),
            ))
            .into());
        }
        let action_id = match request.action_id.as_str() {
            "" => None,
            id => Some(ActionId::parse(id, "action_id").map_err(ApiError::from)?),
        };
        let namespace = Namespace::parse_or_default(&request.namespace).map_err(ApiError::from)?;
        crate::auth::require_namespace(&identity, namespace.as_str())?;
        let done = self
            .wait(&namespace, &request.correlation_id, action_id, timeout)
            .await?;
        let status = crate::convert::status_to_proto(done.status);
        Ok(Response::new(WaitForCompletionResponse {
            namespace: done.namespace,
            correlation_id: done.correlation_id,
            action_id: done.action_id.to_string(),
            workflow_key: done.workflow_key,
            status: status.into(),
            version: done.version.get(),
            result_hash: done.result_hash,
            rejection_reason: done.rejection_reason.unwrap_or_default(),
        }))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let identity = crate::auth::identity(&request);
        let request = request.into_inner();
        let from_version = request.from_version;
        let mut filter = request.filter.unwrap_or_default();
        let mut errors = crate::convert::FieldErrors::default();
        for (name, list) in [
            ("filter.namespaces", &filter.namespaces),
            ("filter.workflow_types", &filter.workflow_types),
            ("filter.workflow_keys", &filter.workflow_keys),
        ] {
            if list.len() > MAX_FILTER_ENTRIES || list.iter().any(|entry| entry.len() > MAX_FILTER_ENTRY_BYTES) {
                errors.0.push(FieldError::new(
                    name,
                    format!("must list at most {MAX_FILTER_ENTRIES} entries of at most {MAX_FILTER_ENTRY_BYTES} bytes"),
                ));
            }
        }
        errors.finish().map_err(ApiError::from)?;
        let replay_keys = replay_keys(&filter, from_version)?;
        if let Some(key) = replay_keys.first() {
            // A replay follows its own namespace's workflows only.
            filter.namespaces = vec![key.namespace().to_string()];
        }
        if let Some(granted) = identity.granted() {
            if filter.namespaces.is_empty() {
                filter.namespaces = granted.iter().cloned().collect();
            }
            for namespace in &filter.namespaces {
                crate::auth::require_namespace(&identity, namespace)?;
            }
        }
        // Live events are taken before history is read: nothing committed in between is lost.
        let mut events = self.hub.events();
        let mut draining = self.draining.clone();
        let (tx, rx) = mpsc::channel(256);
        let store = self.engine.store().clone();
        tokio::spawn(async move {
            let seen = if replay_keys.is_empty() {
                super::replay::Seen::default()
            } else {
                let send = |event: purereducer_api::v1::Event| {
                    let tx = tx.clone();
                    async move { tx.send(Ok(SubscribeResponse { event: Some(event) })).await.is_ok() }
                };
                let from = purereducer_core::Version::new(from_version);
                match super::replay::replay(store.as_ref(), &replay_keys, from, send).await {
                    Ok(seen) => seen,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            };
            loop {
                let received = tokio::select! {
                    received = events.recv() => received,
                    _ = draining.wait_for(|draining| *draining) => return,
                    // The client went away: end now, not at the next matching event.
                    () = tx.closed() => return,
                };
                let item = match received {
                    Ok(event) if matches(&filter, &event) && !seen.covers(&event) => Ok(SubscribeResponse {
                        event: Some(event.event.clone()),
                    }),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => Err(Status::data_loss(format!(
                        "the subscriber fell {missed} events behind and was dropped; subscribe again and re-read state"
                    ))),
                    Err(RecvError::Closed) => return,
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The workflows whose history a subscription replays: none without `from_version`;
/// otherwise every key of the filter, which must name them in at most one namespace.
fn replay_keys(filter: &SubscriptionFilter, from_version: u64) -> Result<Vec<WorkflowKey>, Status> {
    if from_version == 0 {
        return Ok(Vec::new());
    }
    crate::convert::version_field(from_version, "from_version").map_err(ApiError::from)?;
    if filter.workflow_keys.is_empty() || filter.namespaces.len() > 1 {
        return Err(ApiError::from(FieldError::new(
            "from_version",
            "replays the workflows named in filter.workflow_keys, of at most one namespace in filter.namespaces; \
             name them, or leave from_version 0 to follow live events only",
        ))
        .into());
    }
    let namespace = filter.namespaces.first().map_or("", String::as_str);
    filter
        .workflow_keys
        .iter()
        .map(|raw| crate::convert::namespaced_key(namespace, raw, "filter.workflow_keys").map_err(Status::from))
        .collect()
}

fn matches(filter: &SubscriptionFilter, event: &PublishedEvent) -> bool {
    let allows = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
    allows(&filter.namespaces, &event.namespace)
        && allows(&filter.workflow_types, &event.workflow_type)
        && allows(&filter.workflow_keys, &event.workflow_key)
}
