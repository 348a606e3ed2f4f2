"""An in-memory stand-in for reducerd, with defects on demand, that proves the checker
catches what it claims to catch (test_checker_selftest.py). It serves only what the
harness calls: HandleAction, GetState, GetHistory, PublishAction, WaitForCompletion,
GetProjection.

Defects (every n-th action, 0 = never): `lose` answers COMMITTED without applying,
`duplicate` applies twice (two versions, two history entries), `reject` answers REJECTED,
`drop_queued` acknowledges a publish and forgets it, `reject_queued` completes a queued
action as REJECTED without applying it, `unavailable` fails a call with UNAVAILABLE before
doing anything (the client retries). History defects (every n-th commit, the state is right):
`history_gap` writes no entry, `history_repeat` writes its entry twice, `history_stale`
records the state before the commit. Not a defect: `give_up` answers GAVE_UP without applying
(with a GAVE_UP entry), as a real server does after too many conflicts; the action is resent.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from concurrent import futures

import grpc

import harness  # noqa: F401  (puts the client on sys.path)
from purereducer import _json
from purereducer.pb import (
    canonical_store_pb2,
    canonical_store_pb2_grpc,
    event_bus_pb2,
    event_bus_pb2_grpc,
    projection_pb2,
    projection_pb2_grpc,
    reducer_pb2,
    reducer_pb2_grpc,
    types_pb2,
)


@dataclasses.dataclass
class Defects:
    lose: int = 0
    duplicate: int = 0
    reject: int = 0
    drop_queued: int = 0
    reject_queued: int = 0
    unavailable: int = 0
    history_gap: int = 0
    history_repeat: int = 0
    history_stale: int = 0
    give_up: int = 0


class FakeStore:
    def __init__(self, defects: Defects):
        self.d = defects
        self.lock = threading.Condition()
        self.states: dict = {}  # key -> (version, state)
        self.done: dict = {}  # action id -> (status, version)
        self.completions: dict = {}  # correlation id -> (action id, key, status, version)
        self.history: dict = collections.defaultdict(list)  # key -> [HistoryEntry], oldest first
        self.count = collections.Counter()

    def nth(self, name: str) -> bool:
        every = getattr(self.d, name)
        if not every:
            return False
        self.count[name] += 1
        return self.count[name] % every == 0

    def apply(self, action) -> tuple:
        with self.lock:
            if action.action_id in self.done:
                status, version = self.done[action.action_id]
                return ("DUPLICATE" if status == "COMMITTED" else status), version
            if self.nth("reject"):
                self.done[action.action_id] = ("REJECTED", 0)
                return "REJECTED", 0
            version, state = self.states.get(action.workflow_key, (0, {}))
            if self.nth("give_up"):
                self.record(action, version, "GAVE_UP", None)
                return "GAVE_UP", version
            if self.nth("lose"):
                self.done[action.action_id] = ("COMMITTED", version + 1)
                return "COMMITTED", version + 1
            patch = _json.from_struct(action.payload)
            members = {**state.get("m", {}), **patch.get("m", {})}
            for _ in range(2 if self.nth("duplicate") else 1):
                version += 1
                self.record(action, version, "COMMITTED", state if self.nth("history_stale") else {"m": members})
            self.states[action.workflow_key] = (version, {"m": members})
            self.done[action.action_id] = ("COMMITTED", version)
            return "COMMITTED", version

    def record(self, action, version: int, status: str, state) -> None:
        """The history entry of one outcome, with the history defects."""
        if status == "COMMITTED" and self.nth("history_gap"):
            return
        entry = canonical_store_pb2.HistoryEntry(version=version, status=_status(status), action_id=action.action_id,
                                                 action_type=action.action_type, workflow_type=action.workflow_type)
        if state is not None:
            entry.state.CopyFrom(_json.to_struct(state))
        copies = 2 if status == "COMMITTED" and self.nth("history_repeat") else 1
        self.history[action.workflow_key].extend([entry] * copies)


def _status(name: str) -> int:
    return types_pb2.ActionStatus.Value(f"ACTION_STATUS_{name}")


class Service(reducer_pb2_grpc.ReducerServiceServicer, canonical_store_pb2_grpc.CanonicalStoreServiceServicer,
              event_bus_pb2_grpc.EventBusServiceServicer, projection_pb2_grpc.ProjectionServiceServicer):
    def __init__(self, store: FakeStore):
        self.s = store

    def _gate(self, context) -> None:
        if self.s.nth("unavailable"):
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake: try again")

    def HandleAction(self, request, context):
        self._gate(context)
        status, version = self.s.apply(request.action)
        return reducer_pb2.HandleActionResponse(status=_status(status), version=version,
                                                action_id=request.action.action_id,
                                                workflow_key=request.action.workflow_key)

    def GetState(self, request, context):
        with self.s.lock:
            found = self.s.states.get(request.workflow_key)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such workflow")
        return canonical_store_pb2.GetStateResponse(workflow_key=request.workflow_key, version=found[0],
                                                    state=_json.to_struct(found[1]))

    def GetHistory(self, request, context):
        # Short pages (at most 7 entries, whatever the limit) so that the checker has to page;
        # the token is the index of the next entry.
        limit = min(request.limit or 100, 7)
        start = int(request.page_token or 0)
        with self.s.lock:
            entries = list(self.s.history.get(request.workflow_key, []))
        page = entries[start:start + limit]
        token = str(start + limit) if start + limit < len(entries) else ""
        return canonical_store_pb2.GetHistoryResponse(workflow_key=request.workflow_key, entries=page,
                                                      next_page_token=token)

    def PublishAction(self, request, context):
        self._gate(context)
        action = request.action
        if not self.s.nth("drop_queued"):
            threading.Thread(target=self._run_queued, args=(action,), daemon=True).start()
        return event_bus_pb2.PublishActionResponse(correlation_id=action.correlation_id, action_id=action.action_id)

    def _run_queued(self, action) -> None:
        if self.s.nth("reject_queued"):
            status, version = "REJECTED", 0
        else:
            status, version = self.s.apply(action)
        with self.s.lock:
            self.s.completions[action.correlation_id] = (action.action_id, action.workflow_key, status, version)
            self.s.lock.notify_all()

    def WaitForCompletion(self, request, context):
        with self.s.lock:
            got = self.s.lock.wait_for(lambda: request.correlation_id in self.s.completions,
                                       timeout=(request.timeout_ms or 30_000) / 1000)
            if not got:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "fake: not complete")
            action_id, key, status, version = self.s.completions[request.correlation_id]
        return event_bus_pb2.WaitForCompletionResponse(correlation_id=request.correlation_id, action_id=action_id,
                                                       workflow_key=key, status=_status(status), version=version)

    def GetProjection(self, request, context):
        with self.s.lock:
            version = self.s.states.get(request.workflow_key, (0, {}))[0]
        return projection_pb2.GetProjectionResponse(
            projection=projection_pb2.Projection(workflow_key=request.workflow_key, version=version))


def serve(defects: Defects):
    """Starts a fake on a free port; returns (server, address, store)."""
    store = FakeStore(defects)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    service = Service(store)
    reducer_pb2_grpc.add_ReducerServiceServicer_to_server(service, server)
    canonical_store_pb2_grpc.add_CanonicalStoreServiceServicer_to_server(service, server)
    event_bus_pb2_grpc.add_EventBusServiceServicer_to_server(service, server)
    projection_pb2_grpc.add_ProjectionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}", store
