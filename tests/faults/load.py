"""The load of a fault test: worker threads sending actions through HandleAction or
PublishAction + WaitForCompletion, each resent with its own id until answered, and the ledger
of what was acknowledged (see harness.py for how it is checked)."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import pathlib
import random
import sys
import threading
import time
import uuid
from typing import Callable, Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients/python/src"))

import grpc  # noqa: E402

from purereducer import Client, PureReducerError, Status  # noqa: E402

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
