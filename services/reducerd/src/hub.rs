//! In-process fan-out of pipeline progress: what was committed, what the projection has
//! applied, which queued actions completed. Waiters subscribe here instead of polling the
//! database; in PostgreSQL deployments a listener forwards other replicas' notifications in.

use std::sync::Arc;

use purereducer_api::v1;
use tokio::sync::{Notify, broadcast};

/// Capacity of each broadcast channel; a slower receiver sees `Lagged` and re-reads state.
const CAPACITY: usize = 4096;

/// A committed event with the fields subscribers filter on.
#[derive(Debug, Clone)]
pub struct PublishedEvent {
    /// Workflow key.
    pub workflow_key: String,
    /// Namespace.
    pub namespace: String,
    /// Workflow type.
    pub workflow_type: String,
    /// The event.
    pub event: v1::Event,
}

/// Progress notifications of one process.
#[derive(Debug)]
pub struct Hub {
    events: broadcast::Sender<Arc<PublishedEvent>>,
    projections: broadcast::Sender<(String, u64)>,
    completions: broadcast::Sender<String>,
    outbox: Arc<Notify>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            events: broadcast::channel(CAPACITY).0,
            projections: broadcast::channel(CAPACITY).0,
            completions: broadcast::channel(CAPACITY).0,
            outbox: Arc::new(Notify::new()),
        }
    }
}

impl Hub {
    /// A new hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Tells the local pipeline that outbox rows were written.
    pub fn outbox_written(&self) {
        self.outbox.notify_one();
    }

    /// The notifier behind [`Hub::outbox_written`], for the outbox relay.
    pub fn outbox_notify(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// Waits until outbox rows may have been written.
    pub async fn outbox_wait(&self) {
        self.outbox.notified().await;
    }

    /// Announces a committed event.
    pub fn publish_event(&self, event: PublishedEvent) {
        let _ = self.events.send(Arc::new(event));
    }

    /// Follows committed events.
    pub fn events(&self) -> broadcast::Receiver<Arc<PublishedEvent>> {
        self.events.subscribe()
    }

    /// Announces that a projection reached a version.
    pub fn projection_applied(&self, key: String, version: u64) {
        let _ = self.projections.send((key, version));
    }

    /// Follows projection progress.
    pub fn projections(&self) -> broadcast::Receiver<(String, u64)> {
        self.projections.subscribe()
    }

    /// Announces that a queued action completed.
    pub fn completed(&self, correlation_id: String) {
        let _ = self.completions.send(correlation_id);
    }

    /// Follows completions.
    pub fn completions(&self) -> broadcast::Receiver<String> {
        self.completions.subscribe()
    }
}
