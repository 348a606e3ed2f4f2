//! The callers: one task each, sending `merge` actions through HandleAction, or through
//! PublishAction and WaitForCompletion, back to back (closed loop) or when the open-loop
//! schedule says (latency from the due time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{Action, HandleActionRequest, PublishActionRequest, WaitForCompletionRequest};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::cli::{Mode, Plan};
use crate::keys::KeyPicker;
use crate::schedule::Schedule;
use crate::stats::{Outcome, Tally};

/// How long a caller pauses after a failed RPC in closed loop, so a server that refuses at
/// once is not hammered by a busy loop that would also starve the other callers of CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Opens `count` HTTP/2 connections to `target`, failing fast when it does not answer.
pub async fn connect(target: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(target.to_owned())
        .with_context(|| format!("invalid --target {target}"))?
        .connect_timeout(Duration::from_secs(5));
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {target}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The shared state of one load run.
#[derive(Debug)]
pub struct Run {
    /// What to send.
    pub plan: Arc<Plan>,
    /// Key choice, shared so `sequential` hands out each key once.
    keys: KeyPicker,
    /// Completions from here on count.
    pub measure_from: Instant,
    /// No send starts at or after this (duration runs only).
    send_until: Option<Instant>,
    /// The open-loop schedule, or None for closed loop.
    schedule: Option<Schedule>,
    /// Actions claimed so far; the open-loop slot number and the --actions count.
    tickets: AtomicU64,
    /// Actions actually sent, to tell how far the open loop fell behind its schedule.
    sent: AtomicU64,
    /// Turns true on Ctrl-C or at the end of the duration: callers drop what is in flight.
    stop: watch::Receiver<bool>,
}

impl Run {
    /// A run starting now.
    pub fn new(plan: Arc<Plan>, stop: watch::Receiver<bool>) -> Self {
        let started = Instant::now();
        let measure_from = started + Duration::from_secs_f64(plan.warmup_s);
        Self {
            keys: KeyPicker::new(plan.dist, plan.keys, plan.zipf_s),
            measure_from,
            send_until: plan.duration_s.map(|d| measure_from + Duration::from_secs_f64(d)),
            schedule: plan.rate.map(|rate| Schedule::new(started, rate)),
            tickets: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            stop,
            plan,
        }
    }

    /// When the measured window ends: a duration run measures its whole window; a run that
    /// sent its action count, or was interrupted, ends with its last completion.
    pub fn window_end(&self, last_done: Option<Instant>, interrupted: bool) -> Instant {
        let all_sent = self
            .plan
            .actions
            .is_some_and(|limit| self.sent.load(Ordering::Relaxed) >= limit);
        match self.send_until {
            Some(end) if !interrupted && !all_sent => end,
            _ => last_done.unwrap_or_else(Instant::now),
        }
    }

    /// Open-loop slots due before `window_end` that no caller was free to send.
    pub fn schedule_missed(&self, window_end: Instant) -> Option<u64> {
        let sent = self.sent.load(Ordering::Relaxed);
        self.schedule
            .map(|schedule| schedule.due_before(window_end).saturating_sub(sent))
    }

    /// Whether an action completed at `done` belongs to the measured window.
    fn measures(&self, done: Instant) -> bool {
        done >= self.measure_from && self.send_until.is_none_or(|end| done <= end)
    }
}

/// What one caller, or all of them merged, saw.
#[derive(Debug, Default)]
pub struct CallerResult {
    /// Actions completed inside the window.
    pub tally: Tally,
    /// When the last action completed, for runs that end after an action count.
    pub last_done: Option<Instant>,
}

/// Runs every caller until the action count is sent, the duration ends (then `stop` is
/// raised, dropping what is in flight) or Ctrl-C, and merges what they saw.
pub async fn drive(
    run: &Arc<Run>,
    channels: &[Channel],
    stop: &Arc<watch::Sender<bool>>,
) -> anyhow::Result<CallerResult> {
    let mut callers = spawn(run, channels);
    let timer = run.send_until.map(|end| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(end).await;
            stop.send_replace(true);
        })
    });
    let mut merged = CallerResult::default();
    while let Some(joined) = callers.join_next().await {
        let result = joined?;
        merged.tally.merge(result.tally);
        merged.last_done = merged.last_done.max(result.last_done);
    }
    if let Some(timer) = timer {
        timer.abort();
    }
    Ok(merged)
}

/// Starts every caller, spread over `channels`.
fn spawn(run: &Arc<Run>, channels: &[Channel]) -> JoinSet<CallerResult> {
    let mut callers = JoinSet::new();
    for index in 0..run.plan.clients {
        let channel = channels[index % channels.len()].clone();
        let rng = match run.plan.seed {
            Some(seed) => SmallRng::seed_from_u64(seed.wrapping_add(index as u64)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        callers.spawn(caller(run.clone(), index, channel, rng));
    }
    callers
}

async fn caller(run: Arc<Run>, index: usize, channel: Channel, mut rng: SmallRng) -> CallerResult {
    let mut result = CallerResult::default();
    let mut stop = run.stop.clone();
    let mut reducer = ReducerServiceClient::new(channel.clone());
    let mut bus = EventBusServiceClient::new(channel);
    loop {
        if *stop.borrow() {
            break;
        }
        let ticket = run.tickets.fetch_add(1, Ordering::Relaxed);
        if run.plan.actions.is_some_and(|limit| ticket >= limit) {
            break;
        }
        let planned = match run.schedule {
            Some(schedule) => {
                let due = schedule.due(ticket);
                if run.send_until.is_some_and(|end| due >= end) {
                    break;
                }
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    () = tokio::time::sleep_until(due) => due,
                }
            }
            None => Instant::now(),
        };
        let key = format!("{}-{}", run.plan.key_prefix, run.keys.pick(&mut rng));
        let action = merge_action(key, index, ticket);
        run.sent.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            outcome = send(run.plan.mode, &mut reducer, &mut bus, action, run.plan.timeout) => outcome,
        };
        let done = Instant::now();
        if run.measures(done) {
            result.tally.record(&outcome, done - planned);
        }
        result.last_done = Some(done);
        if matches!(outcome, Outcome::Failed(_)) && run.schedule.is_none() {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    result
}

/// A `merge` action with a fresh id whose payload says who sent it and which it was.
fn merge_action(workflow_key: String, client: usize, n: u64) -> Action {
    let number = |value: f64| prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(value)),
    };
    let fields = BTreeMap::from([
        ("n".to_owned(), number(n as f64)),
        ("client".to_owned(), number(client as f64)),
    ]);
    Action {
        action_id: uuid::Uuid::new_v4().to_string(),
        workflow_key,
        workflow_type: "merge".to_owned(),
        action_type: "set".to_owned(),
        payload: Some(prost_types::Struct { fields }),
        ..Default::default()
    }
}

async fn send(
    mode: Mode,
    reducer: &mut ReducerServiceClient<Channel>,
    bus: &mut EventBusServiceClient<Channel>,
    action: Action,
    timeout: Duration,
) -> Outcome {
    match mode {
        Mode::Handle => handle(reducer, action, timeout).await,
        Mode::Publish => publish_and_wait(bus, action, timeout).await,
    }
}

async fn handle(client: &mut ReducerServiceClient<Channel>, action: Action, timeout: Duration) -> Outcome {
    let mut request = tonic::Request::new(HandleActionRequest { action: Some(action) });
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.handle_action(request)).await {
        Err(_) => Outcome::Failed("timeout".to_owned()),
        Ok(Err(status)) => Outcome::Failed(code_name(&status)),
        Ok(Ok(reply)) => {
            let reply = reply.into_inner();
            Outcome::Done {
                status: reply.status(),
                attempts: Some(reply.attempts),
            }
        }
    }
}

async fn publish_and_wait(client: &mut EventBusServiceClient<Channel>, action: Action, timeout: Duration) -> Outcome {
    let mut publish = tonic::Request::new(PublishActionRequest { action: Some(action) });
    publish.set_timeout(timeout);
    let (correlation_id, action_id) = match tokio::time::timeout(timeout, client.publish_action(publish)).await {
        Err(_) => return Outcome::Failed("timeout".to_owned()),
        Ok(Err(status)) => return Outcome::Failed(code_name(&status)),
        Ok(Ok(reply)) => {
            let reply = reply.into_inner();
            (reply.correlation_id, reply.action_id)
        }
    };
    // The server ends the wait itself after timeout_ms; our own deadline is only a backstop.
    let backstop = timeout + Duration::from_secs(1);
    let mut wait = tonic::Request::new(WaitForCompletionRequest {
        namespace: String::new(),
        correlation_id,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        action_id,
    });
    wait.set_timeout(backstop);
    match tokio::time::timeout(backstop, client.wait_for_completion(wait)).await {
        Err(_) => Outcome::Failed("timeout".to_owned()),
        Ok(Err(status)) => Outcome::Failed(code_name(&status)),
        Ok(Ok(reply)) => Outcome::Done {
            status: reply.into_inner().status(),
            attempts: None,
        },
    }
}

/// The gRPC code as its Rust name (`Unavailable`, `DeadlineExceeded`, ...), or "timeout"
/// when the request deadline passed.
fn code_name(status: &tonic::Status) -> String {
    // tonic reports its own expired grpc-timeout as CANCELLED with this message, on the
    // client as on the server; it is the deadline, not a cancellation by either side.
    if status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired" {
        return "timeout".to_owned();
    }
    format!("{:?}", status.code())
}
