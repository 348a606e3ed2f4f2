//! In-process fan-out of pipeline progress: what was committed, what the projection has
//! applied, which queued actions completed. Waiters subscribe here instead of polling the
//! database; in PostgreSQL deployments a listener forwards other replicas' notifications in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use purereducer_api::v1;
use purereducer_core::ActionId;
use purereducer_storage::Completion;
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
    /// Waiters by correlation id: a completion wakes its own waiters only, not every one.
    completions: Mutex<HashMap<String, Vec<Arc<Registration>>>>,
    outbox: Arc<Notify>,
    queue: Notify,
    /// This hub's name in announcements to other processes (`pipeline::fanout`).
    origin: String,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            events: broadcast::channel(CAPACITY).0,
            projections: broadcast::channel(CAPACITY).0,
            completions: Mutex::new(HashMap::new()),
            outbox: Arc::new(Notify::new()),
            queue: Notify::new(),
            origin: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl Hub {
    /// A new hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// This hub's name among the processes on one database.
    pub fn origin(&self) -> &str {
        &self.origin
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

    /// Tells the queue worker that actions were queued (here or, by notification, elsewhere).
    pub fn actions_queued(&self) {
        self.queue.notify_one();
    }

    /// Waits until actions may have been queued since the last wait.
    pub async fn queue_wait(&self) {
        self.queue.notified().await;
    }

    /// Wakes every completion waiter to look again: notifications may have been missed.
    pub fn resync(&self) {
        let waiters = std::mem::take(&mut *self.waiters());
        for waiter in waiters.into_values().flatten() {
            waiter.notify.notify_one();
        }
        self.queue.notify_one();
        let _ = self.projections.send((String::new(), u64::MAX));
    }

    /// Announces a committed event.
    pub fn publish_event(&self, event: PublishedEvent) {
        let _ = self.events.send(Arc::new(event));
    }

    /// Follows committed events.
    pub fn events(&self) -> broadcast::Receiver<Arc<PublishedEvent>> {
        self.events.subscribe()
    }

    /// Announces that a projection reached a version; `key` is [`projection_key`].
    pub fn projection_applied(&self, key: String, version: u64) {
        let _ = self.projections.send((key, version));
    }

    /// Follows projection progress.
    pub fn projections(&self) -> broadcast::Receiver<(String, u64)> {
        self.projections.subscribe()
    }

    /// Announces that a queued action completed (in another process): wakes the waiters of
    /// that correlation id to look it up.
    pub fn completed(&self, correlation_id: String) {
        let waiters = self.waiters().remove(&correlation_id);
        for waiter in waiters.into_iter().flatten() {
            waiter.notify.notify_one();
        }
    }

    /// Announces a completion this process recorded, handing it to the waiters of its
    /// correlation id so they need not read it back.
    pub fn completed_here(&self, completion: &Completion) {
        let waiters = self.waiters().remove(&completion.correlation_id);
        for waiter in waiters.into_iter().flatten() {
            waiter
                .handed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(completion.clone());
            waiter.notify.notify_one();
        }
    }

    /// Registers interest in one correlation id's completion; register before looking in
    /// the database, so a completion between the two is not missed. Each registration is
    /// woken at most once; register again to keep waiting.
    pub fn completion_waiter(&self, correlation_id: &str) -> CompletionWaiter<'_> {
        let registration = Arc::new(Registration::default());
        self.waiters()
            .entry(correlation_id.to_owned())
            .or_default()
            .push(registration.clone());
        CompletionWaiter {
            hub: self,
            correlation_id: correlation_id.to_owned(),
            registration,
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<Registration>>>> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.completions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a waiter is woken with.
#[derive(Debug, Default)]
struct Registration {
    notify: Notify,
    /// Completions recorded by this process, handed over with the wake-up.
    handed: Mutex<Vec<Completion>>,
}

/// One registration for a completion; dropping it unregisters.
#[derive(Debug)]
pub struct CompletionWaiter<'a> {
    hub: &'a Hub,
    correlation_id: String,
    registration: Arc<Registration>,
}

impl CompletionWaiter<'_> {
    /// Resolves once a completion of the correlation id was announced after the
    /// registration. Returns it when this process recorded it and it is of `action_id` (any
    /// action when `None`); otherwise the caller looks it up.
    pub async fn notified(&self, action_id: Option<ActionId>) -> Option<Completion> {
        self.registration.notify.notified().await;
        let handed = self
            .registration
            .handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        handed
            .iter()
            .find(|done| action_id.is_none_or(|id| done.action_id == id))
            .cloned()
    }
}

impl Drop for CompletionWaiter<'_> {
    fn drop(&mut self) {
        let mut waiters = self.hub.waiters();
        if let Some(list) = waiters.get_mut(&self.correlation_id) {
            list.retain(|w| !Arc::ptr_eq(w, &self.registration));
            if list.is_empty() {
                waiters.remove(&self.correlation_id);
            }
        }
    }
}

/// How projection progress names a workflow: `namespace/workflow_key` (a namespace has no
/// `/`), as the database notification carries it.
pub fn projection_key(namespace: &str, workflow_key: &str) -> String {
    format!("{namespace}/{workflow_key}")
}
