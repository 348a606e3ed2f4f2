//! Subscribe streams a client opens and abandons leave nothing behind in the server: after
//! repeated cycles of 2,000 streams opened and cancelled, the process's memory stops growing.

use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::{SubscribeRequest, SubscriptionFilter};
use tonic::transport::Channel;

use crate::grpcurl::Reducerd;

/// Resident memory of `pid`, in KiB (Linux /proc).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

/// Opens `count` subscriptions spread over `channels`, waits until the server answered each,
/// then drops them all.
async fn open_and_cancel(channels: &[Channel], count: usize) {
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = EventBusServiceClient::new(channels[i % channels.len()].clone());
        let filter = SubscriptionFilter {
            workflow_keys: vec![format!("stream-{i}")],
            ..Default::default()
        };
        let stream = client
            .subscribe(SubscribeRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        streams.push(stream);
    }
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_subscriptions_leave_no_memory_behind() {
    let server = Reducerd::start();
    let mut channels = Vec::new();
    // 512 streams per connection at most: eight connections carry 2,000.
    for _ in 0..8 {
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        channels.push(channel);
    }
    // The first cycle grows the allocator and the connections to their working size.
    open_and_cancel(&channels, 2_000).await;
    let after_first = rss_kib(server.pid());
    for _ in 0..4 {
        open_and_cancel(&channels, 2_000).await;
    }
    let after_five = rss_kib(server.pid());
    // A stream kept after its client left costs about 6 KiB, so 8,000 leaked would add ~48 MiB.
    let growth = after_five.saturating_sub(after_first);
    assert!(
        growth < 16 * 1024,
        "resident memory grew by {growth} KiB over four more cycles of 2,000 cancelled streams ({after_first} → {after_five} KiB)"
    );
}
