//! The README's run command, exercised as a user would: the `reducerd` binary with no
//! configuration, driven by grpcurl 1.8.6 (which only speaks v1alpha reflection).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The grpcurl the test command installs (`.tools/venv/bin/grpcurl`), or `$GRPCURL`.
pub fn grpcurl_path() -> PathBuf {
    if let Ok(path) = std::env::var("GRPCURL") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let installed = root.join(".tools/venv/bin/grpcurl");
    assert!(
        installed.exists(),
        "grpcurl not found at {}; run scripts/test.sh, which installs it",
        installed.display()
    );
    installed
}

/// A `reducerd` process in its own empty directory, stopped on drop.
pub struct Reducerd {
    child: Child,
    pub addr: String,
    pub metrics_addr: String,
    /// Every line the process has written to stdout so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: PathBuf,
}

impl Reducerd {
    /// Starts the binary with only listen address overrides (the embedded default).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the binary with extra environment variables, and waits for its "serving"
    /// log lines, which carry the bound addresses.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("reducerd-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_reducerd"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .env_remove("PURE_REDUCER_DATABASE_URL")
            .env_remove("PURE_REDUCER_CONFIG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn reducerd");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // `addr=HOST:PORT` in text logs, `"addr":"HOST:PORT"` in JSON logs.
        let addr_in = |line: &str| {
            if let Ok(json) = serde_json::from_str::<Value>(line) {
                return json["fields"]["addr"].as_str().expect("addr field").to_owned();
            }
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("addr="))
                .expect("addr= in the serving line")
                .to_owned()
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut metrics_addr = None;
        let addr = loop {
            let line = lines.next().expect("reducerd exited before serving").expect("log line");
            log.lock().expect("log").push(line.clone());
            if line.contains("reducerd serving metrics") {
                metrics_addr = Some(addr_in(&line));
            }
            if line.contains("reducerd serving gRPC") {
                break addr_in(&line);
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().expect("log").push(line);
            }
        });
        Self {
            child,
            addr,
            log,
            metrics_addr: metrics_addr.expect("the metrics endpoint starts before gRPC"),
            _dir: dir,
        }
    }
}

impl Reducerd {
    /// The process id, to read its resource use from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Reducerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs grpcurl against the server; returns stdout, or panics with its stderr.
pub fn grpcurl(addr: &str, args: &[&str]) -> String {
    let output = Command::new(grpcurl_path())
        .arg("-plaintext")
        .args(args.iter().take(args.len().saturating_sub(1)))
        .arg(addr)
        .args(args.last())
        .output()
        .expect("run grpcurl");
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn embedded_default_serves_grpcurl_with_v1alpha_reflection() {
    let server = Reducerd::start();
    let listed = grpcurl(&server.addr, &["list"]);
    for service in [
        "purereducer.v1.ReducerService",
        "purereducer.v1.CanonicalStoreService",
        "purereducer.v1.ActionDedupService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            listed.lines().any(|l| l == service),
            "{service} missing from:\n{listed}"
        );
    }
    let health: Value = serde_json::from_str(&grpcurl(&server.addr, &["grpc.health.v1.Health/Check"])).expect("json");
    assert_eq!(health["status"], "SERVING");

    let request = format!(
        r#"{{"action": {{"action_id": "{}", "workflow_key": "order-1", "workflow_type": "merge", "action_type": "set", "payload": {{"n": 1}}}}}}"#,
        uuid::Uuid::new_v4()
    );
    let call = |body: &str| -> Value {
        serde_json::from_str(&grpcurl(
            &server.addr,
            &["-d", body, "purereducer.v1.ReducerService/HandleAction"],
        ))
        .expect("json reply")
    };
    let first = call(&request);
    assert_eq!(first["status"], "ACTION_STATUS_COMMITTED");
    assert_eq!(first["version"], "1");
    let second = call(&request);
    assert_eq!(second["status"], "ACTION_STATUS_DUPLICATE");
    assert_eq!(second["version"], "1");
    assert_eq!(second["resultHash"], first["resultHash"]);
}
