//! What the machine itself says: the PostgreSQL limit for one action per transaction (the
//! pg-limit script around pgbench) and the resident memory of the server process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cli::PgLimitPlan;

/// How much longer than its pgbench seconds the script may take (schema set-up and teardown)
/// before it is killed, so a stuck database cannot hang the report.
const PG_LIMIT_SLACK: Duration = Duration::from_secs(60);

/// Runs `pg-limit URL clients seconds keys` and returns its actions per second.
pub fn pg_limit(plan: &PgLimitPlan) -> anyhow::Result<f64> {
    let script = plan.script.display().to_string();
    let mut child = Command::new(&plan.script)
        .arg(&plan.url)
        .arg(plan.clients.to_string())
        .arg(plan.seconds.to_string())
        .arg(plan.keys.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {script} (set --pg-limit or PG_LIMIT)"))?;
    let allowed = Duration::from_secs(plan.seconds) + PG_LIMIT_SLACK;
    let deadline = Instant::now() + allowed;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{script} did not finish within {} s", allowed.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let said = format!("{} {}", stdout.trim(), String::from_utf8_lossy(&output.stderr).trim());
        // The script captures pgbench's output and exits without printing it when pgbench
        // fails outright, most often because PostgreSQL refused connections.
        let said = match said.trim() {
            "" => "no output; could pgbench connect (max_connections)?",
            said => said,
        };
        bail!("{script} failed ({}): {said}", output.status);
    }
    parse_tps(&stdout).with_context(|| format!("no tps= in the output of {script}: {}", stdout.trim()))
}

/// The number after `tps=` in a line such as `pg-limit tps=2712.4 clients=32 keys=10000`.
pub fn parse_tps(text: &str) -> Option<f64> {
    let (_, rest) = text.split_once("tps=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Resident memory of a process, in MB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// Resident set size now (VmRSS).
    pub rss_mb: f64,
    /// Largest resident set size so far (VmHWM).
    pub peak_mb: f64,
}

/// Reads `/proc/PID/status`.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_memory(&status).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_memory(status: &str) -> Option<Memory> {
    let field_mb = |name: &str| {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    let rss_mb = field_mb("VmRSS:")?;
    Some(Memory {
        rss_mb,
        peak_mb: field_mb("VmHWM:").unwrap_or(rss_mb),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tps_of_the_pg_limit_line() {
        assert_eq!(parse_tps("pg-limit tps=2712.4 clients=32 keys=10000\n"), Some(2712.4));
        assert_eq!(parse_tps("pg-limit tps=88 clients=1 keys=1"), Some(88.0));
        assert_eq!(parse_tps("pgbench: error"), None);
    }

    #[test]
    fn reads_resident_and_peak_memory_in_megabytes() {
        let status = "Name:\treducerd\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n";
        let memory = parse_memory(status).unwrap();
        assert_eq!((memory.rss_mb, memory.peak_mb), (100.0, 200.0));
        assert!(parse_memory("Name:\tkthreadd\n").is_none());
    }
}
