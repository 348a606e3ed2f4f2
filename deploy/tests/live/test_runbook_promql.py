"""A real Prometheus server scrapes a real reducerd (on PostgreSQL) during a short load, then
every PromQL expression of the operations runbook, and every recording rule we ship, is
evaluated through Prometheus's HTTP API and must return data.

Needs: target/debug/reducerd (REDUCERD_BIN), `prometheus` on PATH (Debian package), the
Python client's dependencies, PostgreSQL at PURE_REDUCER_TEST_DATABASE_URL.
"""

import json
import os
import pathlib
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "deploy/tests"))
sys.path.insert(0, str(ROOT / "clients/python/src"))

import check_observability as runbook  # noqa: E402
from purereducer import Client, PureReducerError  # noqa: E402

REDUCERD = os.environ.get("REDUCERD_BIN", str(ROOT / "target/debug/reducerd"))
ADMIN_URL = os.environ.get("PURE_REDUCER_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
RULES = ROOT / "deploy/prometheus/rules.yml"


def runbook_queries(text):
    """The runbook's PromQL: ```promql blocks, inline spans naming a metric, and the query=
    arguments of its curl commands (URL-decoded). A bare histogram name (in a symptom line)
    names the histogram whose quantile queries are already in the list, and is left out."""
    found = []
    for block in runbook.fenced_blocks(text, "promql"):
        found.extend(runbook.promql_expressions(block))
    for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text):
        words = span.split()
        if runbook.METRIC_RE.search(span) and words[0] not in ("SELECT", "docker", "kafka-consumer-groups", "curl"):
            found.append(span)
    found.extend(urllib.parse.unquote(q) for q in re.findall(r"query=([^'&\s]+)", text))
    histograms = set(re.findall(r"(\w+)_bucket", text))
    unique = []
    for query in found:
        if query not in unique and query not in histograms:
            unique.append(query)
    return unique


def test_runbook_queries_are_found():
    queries = runbook_queries(runbook.runbook_text())
    assert "reducer_gave_up_total" in queries
    assert any(q.startswith("rate(canonical_store_state_conflicts_total[5m]) /") for q in queries)
    assert "rate(reducer_conflict_attempts_total[5m])" in queries
    assert "canonical_store_commit_latency_ms" not in queries
    assert len(queries) >= 25, queries


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, url=ADMIN_URL):
    subprocess.run(["psql", url, "-qtAc", sql], check=True, capture_output=True)


class Process:
    """A child process whose output is collected on a thread; `wait_for` reads lines."""

    def __init__(self, args, **kw):
        self.lines = queue.Queue()
        self.log = []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, needle, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no '{needle}' within {timeout}s:\n{''.join(self.log)}")
            if not line:
                pytest.fail(f"exited before '{needle}':\n{''.join(self.log)}")
            if needle in line:
                return line

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def addr_in(line):
    return next(t for t in line.split() if t.startswith("addr=")).removeprefix("addr=")


def load(addr, replica, seconds):
    """Drives every path the runbook measures: keys contended by two replicas on one database
    (conflicts, retries and, with max_attempts 2, give-ups; inside one replica a key's actions
    queue at its owner and never conflict), repeats (dedup hits), queued actions with waits
    (consumed events) and waits for nothing (timeouts), reads and projection reads."""
    stop = time.monotonic() + seconds
    errors = []

    def contended(worker):
        with Client(addr if worker % 2 == 0 else replica) as client:
            n = 0
            while time.monotonic() < stop:
                n += 1
                key = f"hot-{n % 2}"
                try:
                    result = client.handle_action(key, "merge", "set", {"w": worker, "n": n})
                    if n % 5 == 0:
                        client.handle_action(key, "merge", "set", {"w": worker, "n": n}, action_id=result.action_id)
                except PureReducerError as err:
                    errors.append(err)

    def queued():
        with Client(addr) as client:
            n = 0
            while time.monotonic() < stop:
                n += 1
                published = client.publish_action(f"queued-{n % 10}", "merge", "set", {"n": n})
                client.wait_for_completion(published.correlation_id, timeout_ms=10_000)
                client.get_state(f"queued-{n % 10}")
                client.get_projection(f"queued-{n % 10}", min_version=1, max_wait_ms=1000)
                if n % 4 == 0:
                    with pytest.raises(PureReducerError):
                        client.wait_for_completion(f"nothing-{uuid.uuid4()}", timeout_ms=20)

    threads = [threading.Thread(target=contended, args=(w,)) for w in range(6)]
    threads.append(threading.Thread(target=queued))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def query(prom, expr):
    url = f"http://{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]["result"]


def recording_rules():
    import yaml

    rules = yaml.safe_load(RULES.read_text())
    return [r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    db = f"prt_live_{uuid.uuid4().hex}"
    psql(f"CREATE DATABASE {db}")
    base = ADMIN_URL.rsplit("/", 1)[0]
    config = tmp / "reducerd.toml"
    config.write_text("[reducer]\nmax_attempts = 2\nbackoff_base_ms = 1\nbackoff_cap_ms = 5\n")
    reducerd = Process([REDUCERD, "--config", str(config), "--listen", "127.0.0.1:0",
                        "--metrics-listen", "127.0.0.1:0", "--database-url", f"{base}/{db}"],
                       env={**os.environ, "RUST_LOG": "info"})
    metrics = addr_in(reducerd.wait_for("reducerd serving metrics"))
    grpc_addr = addr_in(reducerd.wait_for("reducerd serving gRPC"))
    # A second replica on the same database, without the in-process materializer (one per
    # database without Kafka), so that keys see real cross-replica conflicts.
    replica = Process([REDUCERD, "--config", str(config), "--listen", "127.0.0.1:0",
                       "--metrics-listen", "127.0.0.1:0", "--database-url", f"{base}/{db}",
                       "--roles", "canonical-store,action-dedup,reducer-service"],
                      env={**os.environ, "RUST_LOG": "info"})
    replica_addr = addr_in(replica.wait_for("reducerd serving gRPC"))
    prom_addr = f"127.0.0.1:{free_port()}"
    (tmp / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        f"scrape_configs:\n  - job_name: reducerd\n    static_configs:\n      - targets: ['{metrics}']\n"
    )
    prometheus = Process(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                          f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address={prom_addr}"])
    prometheus.wait_for("Server is ready to receive web requests")
    try:
        yield grpc_addr, replica_addr, prom_addr
    finally:
        prometheus.stop()
        replica.stop()
        reducerd.stop()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_every_runbook_query_and_recording_rule_returns_data(stack):
    grpc_addr, replica_addr, prom = stack
    load(grpc_addr, replica_addr, seconds=8)
    expressions = runbook_queries(runbook.runbook_text()) + recording_rules()
    # Scrapes land every second and rules evaluate every second: wait until each expression
    # has data, woken by nothing but the clock, and report the ones that never do.
    deadline = time.monotonic() + 60
    missing = expressions
    while missing and time.monotonic() < deadline:
        missing = [e for e in missing if not query(prom, e)]
        if missing:
            time.sleep(1)
    assert not missing, f"no data from Prometheus for: {missing}"
    # The load gave up at least once and never moved a watermark back.
    assert float(query(prom, "sum(reducer_gave_up_total)")[0]["value"][1]) > 0
    assert float(query(prom, "sum(projection_materializer_wm_regressions_total)")[0]["value"][1]) == 0
    # Once the load is over the materializer finds nothing waiting and its lag gauge reads 0
    # (only the materializing process exports it), so ProjectionLagHigh cannot fire on an
    # idle system.
    deadline = time.monotonic() + 30
    while True:
        lag = query(prom, "projection_materializer_wm_lag_ms")
        if len(lag) == 1 and float(lag[0]["value"][1]) == 0:
            break
        assert time.monotonic() < deadline, f"the lag gauge did not return to 0 when idle: {lag}"
        time.sleep(1)


def test_every_runbook_metric_is_exported_at_zero_before_the_first_action(tmp_path):
    """A process that has done nothing yet already exports every metric the runbook names,
    at 0, so its rates and the dashboard read 0 rather than "no data"."""
    names = set()
    for expression in runbook_queries(runbook.runbook_text()):
        for name in runbook.METRIC_RE.findall(expression):
            names.add(name if isinstance(name, str) else name[0])
    # Histograms are named in PromQL by their series.
    series = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert len(series) >= 15, series
    config = tmp_path / "reducerd.toml"
    config.write_text(f'[storage]\ndatabase_url = "sqlite://{tmp_path}/fresh.db"\n')
    fresh = Process([REDUCERD, "--config", str(config), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
                    env={**os.environ, "RUST_LOG": "info"})
    try:
        metrics = addr_in(fresh.wait_for("reducerd serving metrics"))
        fresh.wait_for("reducerd serving gRPC")
        text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    finally:
        fresh.stop()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_and_labels, value = line.rsplit(" ", 1)
            samples.setdefault(re.split(r"[{ ]", name_and_labels)[0], []).append(float(value))
    exported = {re.sub(r"_(bucket|sum|count)$", "", n) for n in samples}
    missing = sorted(s for s in series if s not in exported)
    assert not missing, f"not exported before the first action: {missing}"
    nonzero = sorted(n for n, values in samples.items() if re.sub(r"_(bucket|sum|count)$", "", n) in series
                     and any(v != 0 for v in values))
    assert not nonzero, f"not 0 before the first action: {nonzero}"
