//! Load generator for `HandleAction`: `clients` concurrent callers, each sending actions on
//! random keys out of `keys`, for `seconds`. Prints one line with actions per second.
//!
//! Usage: cargo run --release -p reducerd --example bench -- ADDR [clients] [seconds] [keys]
//! scripts/bench.sh runs it beside the machine's pg-limit baseline.

use std::time::{Duration, Instant};

use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{Action, ActionStatus, HandleActionRequest};
use rand::Rng;
use tonic::transport::Channel;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let clients: usize = args.get(1).map_or(Ok(16), |v| v.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(15), |v| v.parse())?;
    let keys: u64 = args.get(3).map_or(Ok(10_000), |v| v.parse())?;
    let channel = Channel::from_shared(addr)?.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..clients {
        let mut client = ReducerServiceClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            let (mut committed, mut other) = (0u64, 0u64);
            while Instant::now() < deadline {
                let key = rand::rng().random_range(1..=keys);
                let request = HandleActionRequest {
                    action: Some(Action {
                        action_id: uuid::Uuid::new_v4().to_string(),
                        workflow_key: format!("bench-{key}"),
                        workflow_type: "merge".to_owned(),
                        action_type: "inc".to_owned(),
                        payload: Some(reducerd::convert::json_to_struct(
                            serde_json::json!({"n": key}).as_object().expect("object"),
                        )),
                        ..Default::default()
                    }),
                };
                match client.handle_action(request).await {
                    Ok(reply) if reply.get_ref().status == ActionStatus::Committed as i32 => committed += 1,
                    _ => other += 1,
                }
            }
            (committed, other)
        }));
    }
    let started = Instant::now();
    let (mut committed, mut other) = (0, 0);
    for worker in workers {
        let (c, o) = worker.await?;
        committed += c;
        other += o;
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds as f64);
    println!(
        "reducerd tps={:.1} committed={committed} other={other} clients={clients} keys={keys} seconds={seconds}",
        committed as f64 / elapsed
    );
    Ok(())
}
