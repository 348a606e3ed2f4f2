"""Fault-injection harness: real reducerd processes on a PostgreSQL cluster of their own,
driven over gRPC by the project's Python client, checked for "nothing lost, nothing applied
twice" once the faults are healed.

The pieces, each usable alone (`processes.py`, `load.py`, `topic.py`, `history.py`; all
importable from here):

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
  (never after a time), waits for the load, settles, verifies (each key's state, projection
  and, through GetHistory, history: `history.py`) and returns `Figures`; given
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
import dataclasses
import pathlib
import sys
import threading
import time
import zlib
from typing import Callable, Optional

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients/python/src"))

import grpc  # noqa: E402

from purereducer import PureReducerError, Status  # noqa: E402

# The processes and the topic reader live in modules of their own; tests import them from here.
from processes import (  # noqa: E402,F401
    ALL_ROLES, NO_MATERIALIZER, PG_BIN, STATE_COMMITTED_TOPIC, TANSU, WAITING_ON_COMMIT, WAITING_ON_LOCK, Broker,
    Postgres, Process, Reducerd, ReducerdConfig, broker_pg_bin, free_port, make_template_cluster,
)
from topic import check_topic, read_topic  # noqa: E402,F401
from history import HISTORY_FIGURES, check_history, verify_key_history  # noqa: E402,F401
from load import (  # noqa: E402,F401
    RETRYABLE, Conn, Ledger, Load, Sent, Settings, call_with_retry, env_float, env_int,
)

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
    # Each key's history through GetHistory (history.py).
    history_entries: int = 0  # entries read, every status (reported only)
    history_gave_up: int = 0  # GAVE_UP entries (allowed: resent or reported as given up)
    history_gaps: int = 0  # versions of 1..current with no COMMITTED entry, or two, or outside
    history_duplicated: int = 0  # an action id COMMITTED more than once in a key's history
    history_mismatch: int = 0  # committed ids != state members, a state not the one expected, unread
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
        fields += [f"{name}={getattr(self, name)}" for name in HISTORY_FIGURES]
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
                     "projection_behind", "uncompleted") + HISTORY_FIGURES[2:]:
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
    """Reads every key's state, projection and history and fills in the figures."""
    by_key: dict = collections.defaultdict(list)
    for a in load.ledger.actions.values():
        by_key[a.key].append(a)
    all_ids = {a.action_id: a.key for a in load.ledger.actions.values()}
    deadline = time.monotonic() + max(60.0, settle_s)
    history_within = max(60.0, settle_s)  # per key: its pages may be many in a long run
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
        # The history has every version once, the state's actions and, last, its state.
        def read_again() -> tuple:
            again = _read_state(conn(), key, deadline)
            return (again.version, again.state) if again else (0, {})

        found, notes = verify_key_history(conn(), key, version, state, read_again, history_within)
        f.update(found)
        for note in notes:
            example(note)
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


# --- the state-committed topic (Kafka mode; the reading is in topic.py) --------------


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
