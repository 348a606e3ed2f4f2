//! A real `reducerd` process per test and a way to run `reducerctl` against it.
//!
//! Cargo only exposes binaries of the package under test, so the server binary is found in the
//! workspace's target directory; it must have been built (`cargo build -p reducerd`) first.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// How long a server may take to print its serving line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `reducerd` on an ephemeral port with its own SQLite file; killed on drop.
pub struct Server {
    /// `HOST:PORT` the server printed.
    pub addr: String,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

fn reducerd_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/reducerd");
    assert!(
        path.exists(),
        "{} does not exist: run cargo build -p reducerd first",
        path.display()
    );
    path
}

impl Server {
    /// A server with the default configuration.
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// A server whose config file holds `toml` (over the defaults).
    pub fn start_with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("reducerd.toml");
        std::fs::write(&config, toml).expect("write the config file");
        let mut command = Command::new(reducerd_path());
        // The developer's own settings must not leak into the test server.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("PURE_REDUCER_")) {
            command.env_remove(name);
        }
        command
            .arg("--config")
            .arg(&config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--log-format",
                "text",
            ])
            .arg("--database-url")
            .arg(format!("sqlite://{}/t.db", dir.path().display()))
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start reducerd");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines_rx) = mpsc::channel();
        // Both pipes are drained for the server's whole life, or it would block on logging.
        drain(child.stdout.take().expect("piped stdout"), logs.clone(), Some(lines_tx));
        drain(child.stderr.take().expect("piped stderr"), logs.clone(), None);
        let mut server = Self {
            addr: String::new(),
            child,
            logs,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.contains("reducerd serving gRPC") => {
                    let addr = line.split_whitespace().find_map(|token| token.strip_prefix("addr="));
                    server.addr = addr.expect("serving line has an addr= token").to_owned();
                    return server;
                }
                Ok(_) => {}
                Err(err) => panic!("reducerd did not start ({err}); its output:\n{}", server.logs()),
            }
        }
    }

    /// Everything the server printed so far, for failure messages.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|lines| lines.join("\n")).unwrap_or_default()
    }

    /// Runs `reducerctl --addr <this server> args…` to completion.
    pub fn ctl(&self, args: &[&str]) -> Run {
        Run::from(ctl_command(Some(&self.addr), args).output().expect("run reducerctl"))
    }

    /// Starts `reducerctl --addr <this server> args…` with stdin and stdout piped, without
    /// waiting.
    pub fn spawn_ctl(&self, args: &[&str]) -> Child {
        ctl_command(Some(&self.addr), args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start reducerctl")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(pipe: impl Read + Send + 'static, logs: Arc<Mutex<Vec<String>>>, lines: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(lines) = &lines {
                // Nobody listens once the server has started; that is fine.
                let _ = lines.send(line.clone());
            }
            if let Ok(mut logs) = logs.lock() {
                logs.push(line);
            }
        }
    });
}

/// The reducerctl command line; `addr` None leaves the address to the environment.
pub fn ctl_command(addr: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reducerctl"));
    command.env_remove("REDUCERCTL_ADDR").stdin(Stdio::null());
    if let Some(addr) = addr {
        command.args(["--addr", addr]);
    }
    command.args(args);
    command
}

/// The outcome of one reducerctl run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit code 0.
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "reducerctl failed: {self:#?}");
        self
    }

    /// Asserts a failure with exit code `code`.
    pub fn failure(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        self
    }

    /// Stdout as one JSON value (the `--json` form of a single answer).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }

    /// Human output as `name → value` (each line is `name  value`).
    pub fn fields(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|line| line.split_once(char::is_whitespace))
            .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
            .collect()
    }

    /// The human field `name`, which must be there.
    pub fn field(&self, name: &str) -> String {
        self.fields()
            .remove(name)
            .unwrap_or_else(|| panic!("no field {name:?} in the output: {self:#?}"))
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").to_string()
}
