//! `reducer-bench` drives a running reducerd over gRPC the way its users do: concurrent
//! callers send `merge` actions through HandleAction, or through PublishAction and
//! WaitForCompletion, in a closed loop or on an open-loop schedule, over a chosen key
//! distribution. It reports throughput, statuses, errors, latency percentiles, conflict
//! retries, commit-to-projection lag and server memory, and, with `--pg-url`, every
//! throughput also as a ratio to this machine's PostgreSQL limit measured in the same run.
//!
//! Layout:
//! - [`cli`]: flags, validated into a [`cli::Plan`].
//! - [`keys`]: key distributions, including the Zipf sampler.
//! - [`schedule`]: open-loop send times.
//! - [`load`]: connections and the callers.
//! - [`lag`]: the Subscribe stream that measures projection lag.
//! - [`stats`]: per-caller tallies and percentiles.
//! - [`machine`]: the pg-limit baseline and server memory.
//! - [`report`]: the text block and the JSON record.

mod cli;
mod keys;
mod lag;
mod load;
mod machine;
mod report;
mod schedule;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use clap::Parser;
use tokio::sync::watch;

use crate::cli::{Cli, Lag, Plan};
use crate::load::Run;
use crate::report::{Measured, Report};

/// Exit status after Ctrl-C, as a shell reports a process ended by SIGINT, so scripts stop.
const INTERRUPTED: u8 = 130;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let plan = Arc::new(Cli::parse().plan()?);
    let channels = load::connect(&plan.target, plan.channels).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let interrupted = Arc::new(AtomicBool::new(false));
    tokio::spawn(stop_on_ctrl_c(stop_tx.clone(), interrupted.clone()));

    let memory_at_start = plan.server_pid.and_then(|pid| machine::memory_of(pid).ok());
    let lag_follower = match plan.lag {
        Lag::None => None,
        Lag::Subscribe => {
            let channel = load::connect(&plan.target, 1).await?.remove(0);
            let from = SystemTime::now() + Duration::from_secs_f64(plan.warmup_s);
            let until = plan.duration_s.map(|seconds| from + Duration::from_secs_f64(seconds));
            Some(lag::follow(channel, &plan.key_prefix, (from, until), stop_rx.clone()).await?)
        }
    };

    let run = Arc::new(Run::new(plan.clone(), stop_rx.clone()));
    let driven = load::drive(&run, &channels, &stop_tx).await?;
    stop_tx.send_replace(true);
    let was_interrupted = interrupted.load(Ordering::SeqCst);
    let window_end = run.window_end(driven.last_done, was_interrupted);
    let schedule_missed = run.schedule_missed(window_end);
    let lag = match lag_follower {
        Some(follower) => Some(follower.await?),
        None => None,
    };
    let memory = plan
        .server_pid
        .map(|pid| machine::memory_of(pid).map_err(|e| format!("{e:#}")));
    let pg_limit = baseline(&plan, was_interrupted).await;

    let interrupted = was_interrupted || interrupted.load(Ordering::SeqCst);
    let report = Report::new(
        &plan,
        Measured {
            tally: driven.tally,
            window: window_end.saturating_duration_since(run.measure_from),
            schedule_missed,
            lag,
            memory_at_start,
            memory,
            pg_limit,
            interrupted,
        },
    );
    print!("{}", report.text());
    if let Some(path) = &plan.json {
        report.append_json(path)?;
    }
    Ok(if interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the machine-limit script after the measurement, unless the run was interrupted.
async fn baseline(plan: &Arc<Plan>, interrupted: bool) -> Option<Result<f64, String>> {
    let pg = plan.pg_limit.clone()?;
    if interrupted {
        return Some(Err("skipped: interrupted".to_owned()));
    }
    eprintln!(
        "reducer-bench: measuring pg-limit ({} clients, {} keys, {} s)",
        pg.clients, pg.keys, pg.seconds
    );
    let outcome = tokio::task::spawn_blocking(move || machine::pg_limit(&pg)).await;
    Some(match outcome {
        Ok(Ok(tps)) => Ok(tps),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(join) => Err(format!("pg-limit task failed: {join}")),
    })
}

/// The first Ctrl-C stops the callers; the run then reports what it measured so far.
async fn stop_on_ctrl_c(stop: Arc<watch::Sender<bool>>, interrupted: Arc<AtomicBool>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        interrupted.store(true, Ordering::SeqCst);
        stop.send_replace(true);
        eprintln!("reducer-bench: interrupted, reporting what was measured");
    }
}
