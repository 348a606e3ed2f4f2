//! The outbox relay: publishes committed events to Kafka in outbox order, keyed by workflow
//! key, and marks a row published only after its delivery report.
//!
//! Rows are selected by "not yet published", never by "id above the last one sent", so a
//! row whose transaction commits after a row with a higher id is still picked up on the
//! next pass. Per key, outbox order is commit order (each commit holds the workflow's row
//! lock), and the idempotent producer keeps that order within the key's partition.

use std::sync::Arc;
use std::time::Duration;

use purereducer_storage::{PendingEvent, Store};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{Notify, watch};

use crate::Topics;

/// Called for each row after its delivery report, before it is marked.
pub type DeliveryObserver = Arc<dyn Fn(&PendingEvent) + Send + Sync>;

/// Publishes the outbox.
#[derive(Clone)]
pub struct OutboxRelay {
    store: Arc<dyn Store>,
    producer: FutureProducer,
    topics: Topics,
    batch: u32,
    idle: Duration,
    wake: Arc<Notify>,
    observer: Option<DeliveryObserver>,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("topics", &self.topics)
            .field("batch", &self.batch)
            .finish()
    }
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassStats {
    /// Rows delivered and marked.
    pub published: usize,
    /// Rows whose delivery failed; they stay pending.
    pub failed: usize,
}

impl OutboxRelay {
    /// A relay over `store`; `wake` is notified by local commits, `idle` bounds the wait for
    /// rows committed by other processes.
    pub fn new(
        store: Arc<dyn Store>,
        producer: FutureProducer,
        topics: Topics,
        batch: u32,
        idle: Duration,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            producer,
            topics,
            batch: batch.max(1),
            idle,
            wake,
            observer: None,
        }
    }

    /// Calls `observer` for every delivered row (metrics).
    pub fn with_observer(mut self, observer: DeliveryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Publishes until `stop` turns true, then drains what is pending and flushes.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = *stop.borrow();
            match self.pass().await {
                Ok(stats) if stats.published == 0 && stats.failed == 0 => {
                    if stopping {
                        return;
                    }
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.idle) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(stats) if stats.failed > 0 => {
                    tracing::warn!(failed = stats.failed, "outbox delivery failed; retrying");
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay pass failed; retrying");
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Sends one batch of pending rows and marks the delivered ones.
    pub async fn pass(&self) -> Result<PassStats, purereducer_storage::StorageError> {
        let rows = self.store.pending_events(self.batch).await?;
        if rows.is_empty() {
            return Ok(PassStats::default());
        }
        // Enqueue all first (in order), then await the reports: one round of batching.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = publish_span(row);
            let report = span.in_scope(|| self.enqueue(row, &span));
            pending.push((row, span, report));
        }
        let mut delivered = Vec::with_capacity(rows.len());
        let mut failed = 0;
        for (row, span, report) in pending {
            let ok = match report {
                Some(future) => match future.await {
                    Ok(Ok(_)) => true,
                    Ok(Err((err, _))) => {
                        span.in_scope(|| tracing::warn!(outbox_id = row.id, error = %err, "event not delivered"));
                        false
                    }
                    Err(_) => false,
                },
                None => false,
            };
            if ok {
                if let Some(observer) = &self.observer {
                    observer(row);
                }
                delivered.push(row.id);
            } else {
                failed += 1;
            }
        }
        if !delivered.is_empty() {
            self.store.mark_published(&delivered).await?;
        }
        Ok(PassStats {
            published: delivered.len(),
            failed,
        })
    }

    fn enqueue(&self, row: &PendingEvent, span: &tracing::Span) -> Option<rdkafka::producer::DeliveryFuture> {
        let topic = self.topics.for_event(&row.event.event_type);
        let mut headers = OwnedHeaders::new();
        // Consumers continue the trace from this publish span, not from the commit.
        let trace = crate::trace::inject(span);
        for (name, value) in &trace {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        if let Some(map) = row.event.headers.as_object() {
            for (name, value) in map {
                if trace.contains_key(name.as_str()) {
                    continue;
                }
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                headers = headers.insert(Header {
                    key: name,
                    value: Some(text.as_bytes()),
                });
            }
        }
        let version = row.event.version.get().to_string();
        headers = headers.insert(Header {
            key: "version",
            value: Some(version.as_bytes()),
        });
        let record = FutureRecord::to(topic)
            .key(&row.event.workflow_key)
            .payload(&row.event.payload)
            .headers(headers);
        match self.producer.send_result(record) {
            Ok(future) => Some(future),
            Err((err, _)) => {
                tracing::warn!(outbox_id = row.id, error = %err, "event not queued for delivery");
                None
            }
        }
    }
}

/// The span of one row's publish, a child of the commit that wrote the row.
fn publish_span(row: &PendingEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "outbox publish",
        otel.kind = "producer",
        messaging.system = "kafka",
        event_type = %row.event.event_type,
        outbox_id = row.id,
    );
    crate::trace::set_parent(&span, &crate::trace::from_json(&row.event.headers));
    span
}
