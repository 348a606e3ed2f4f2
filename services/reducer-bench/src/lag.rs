//! Commit-to-projection lag: a Subscribe stream on `merge` events, keeping those of this run's
//! keys, each measured as receive time minus the event's `committed_at`. Server and bench run
//! on one machine, so both times come from the same clock.

use std::time::{Duration, SystemTime};

use purereducer_api::v1::event::Kind;
use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::{SubscribeRequest, SubscribeResponse, SubscriptionFilter};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long the stream is still read after the load stops, for the last commits' events.
const GRACE: Duration = Duration::from_secs(1);

/// What the subscriber saw.
#[derive(Debug, Default)]
pub struct LagResult {
    /// Lag of every event of this run committed inside the window, in microseconds.
    pub samples_us: Vec<u64>,
    /// Times the server dropped the subscriber for falling behind (it subscribed again).
    pub resubscribed: u64,
    /// Why the stream ended early, if it did.
    pub error: Option<String>,
}

/// The commit times whose events count: from, and until when the run has a set duration.
pub type Window = (SystemTime, Option<SystemTime>);

/// Subscribes now, so no commit of the run is missed, then follows the stream in a task until
/// `stop` turns true and [`GRACE`] has passed.
pub async fn follow(
    channel: Channel,
    key_prefix: &str,
    window: Window,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<LagResult>> {
    let mut client = EventBusServiceClient::new(channel);
    let stream = subscribe(&mut client).await?;
    let own_keys = format!("{key_prefix}-");
    Ok(tokio::spawn(read(client, stream, own_keys, window, stop)))
}

async fn subscribe(client: &mut EventBusServiceClient<Channel>) -> Result<Streaming<SubscribeResponse>, tonic::Status> {
    // The filter matches whole keys only; the run's keys are picked out by prefix below.
    let request = SubscribeRequest {
        filter: Some(SubscriptionFilter {
            workflow_types: vec!["merge".to_owned()],
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(client.subscribe(request).await?.into_inner())
}

async fn read(
    mut client: EventBusServiceClient<Channel>,
    mut stream: Streaming<SubscribeResponse>,
    own_keys: String,
    window: Window,
    mut stop: watch::Receiver<bool>,
) -> LagResult {
    let mut result = LagResult::default();
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            None => tokio::select! {
                next = stream.message() => next,
                _ = stop.wait_for(|stopped| *stopped) => {
                    deadline = Some(Instant::now() + GRACE);
                    continue;
                }
            },
            Some(at) => match tokio::time::timeout_at(at, stream.message()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let received = SystemTime::now();
        match next {
            Ok(Some(response)) => {
                if let Some(lag) = lag_of(&response, &own_keys, window, received) {
                    result.samples_us.push(lag);
                }
            }
            Ok(None) => {
                result.error = Some("the server ended the stream".to_owned());
                break;
            }
            // The server drops a subscriber that fell behind; follow again and count it.
            Err(status) if status.code() == tonic::Code::DataLoss => {
                result.resubscribed += 1;
                match subscribe(&mut client).await {
                    Ok(again) => stream = again,
                    Err(status) => {
                        result.error = Some(format!("{:?}: {}", status.code(), status.message()));
                        break;
                    }
                }
            }
            Err(status) => {
                result.error = Some(format!("{:?}: {}", status.code(), status.message()));
                break;
            }
        }
    }
    result
}

/// The lag of a `StateCommitted` event of this run committed inside `window`.
fn lag_of(response: &SubscribeResponse, own_keys: &str, window: Window, received: SystemTime) -> Option<u64> {
    let Some(Kind::StateCommitted(committed)) = response.event.as_ref()?.kind.as_ref() else {
        return None;
    };
    if !committed.workflow_key.starts_with(own_keys) {
        return None;
    }
    let committed_at = SystemTime::try_from(committed.committed_at?).ok()?;
    let (from, until) = window;
    if committed_at < from || until.is_some_and(|until| committed_at > until) {
        return None;
    }
    // A clock step between the two readings would make this negative; count that as zero.
    let lag = received.duration_since(committed_at).unwrap_or_default();
    Some(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use purereducer_api::v1::{Event, StateCommitted};

    use super::*;

    fn committed(key: &str, at: SystemTime) -> SubscribeResponse {
        SubscribeResponse {
            event: Some(Event {
                kind: Some(Kind::StateCommitted(StateCommitted {
                    workflow_key: key.to_owned(),
                    committed_at: Some(at.into()),
                    ..Default::default()
                })),
            }),
        }
    }

    #[test]
    fn lag_counts_only_this_runs_keys_inside_the_window() {
        let from = SystemTime::now();
        let window = (from, Some(from + Duration::from_secs(1)));
        let at = from + Duration::from_millis(5);
        let received = at + Duration::from_millis(12);
        assert_eq!(
            lag_of(&committed("run1-7", at), "run1-", window, received),
            Some(12_000)
        );
        assert_eq!(lag_of(&committed("run2-7", at), "run1-", window, received), None);
        let warmup = from - Duration::from_millis(1);
        assert_eq!(lag_of(&committed("run1-7", warmup), "run1-", window, received), None);
        let after = from + Duration::from_secs(2);
        assert_eq!(lag_of(&committed("run1-7", after), "run1-", window, received), None);
        assert_eq!(
            lag_of(&committed("run1-7", after), "run1-", (from, None), after),
            Some(0)
        );
        assert_eq!(lag_of(&SubscribeResponse::default(), "run1-", window, received), None);
    }
}
