"""A Python reducer served with serve_reducer drives a `reducer = "remote"` workflow type."""

import time
import uuid

import grpc
import pytest
from conftest import Reducerd

from purereducer import Client, Intent, PureReducerError, Status
from purereducer.reducer_function import Reduced, Rejected, serve_reducer

TIMEOUT_MS = 300


def pricing(state, version, action):
    kind = action["action_type"]
    if kind == "add":
        total = state.get("total", 0) + action["payload"]["amount"]
        return Reduced({**state, "total": total, "seen": version + 1},
                       intents=[Intent("price-changed", {"total": total})])
    if kind == "hang":
        time.sleep(TIMEOUT_MS / 1000 * 5)  # far past timeout_ms: reducerd must give up on it
        return Reduced({**state, "total": -1})
    return Rejected(f"pricing does not know {kind}")


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    reducer, port = serve_reducer(pricing)
    config = (f'[workflow_types.pricing]\nreducer = "remote"\n'
              f'endpoint = "http://127.0.0.1:{port}"\ntimeout_ms = {TIMEOUT_MS}\n')
    srv = Reducerd(tmp_path_factory.mktemp("remote"), config)
    with Client(srv.addr) as client:
        yield client
    srv.stop()
    reducer.stop(None)


def test_remote_reducer_commits(remote):
    k = f"price-{uuid.uuid4().hex[:8]}"
    first = remote.handle_action(k, "pricing", "add", {"amount": 5})
    assert first.status == Status.COMMITTED
    assert (first.version, first.state) == (1, {"total": 5, "seen": 1})
    assert first.intents == [Intent("price-changed", {"total": 5})]

    second = remote.handle_action(k, "pricing", "add", {"amount": 3})
    assert (second.status, second.version, second.state["total"]) == (Status.COMMITTED, 2, 8)
    assert remote.get_state(k).state == {"total": 8, "seen": 2}


def test_remote_reducer_rejects(remote):
    k = f"price-{uuid.uuid4().hex[:8]}"
    remote.handle_action(k, "pricing", "add", {"amount": 5})
    refused = remote.handle_action(k, "pricing", "refund", {"amount": 5})
    assert refused.status == Status.REJECTED
    assert refused.rejection_reason == "pricing does not know refund"
    assert refused.version == 1
    assert remote.get_state(k).state["total"] == 5


def test_hanging_remote_reducer_times_out_and_changes_nothing(remote):
    k = f"price-{uuid.uuid4().hex[:8]}"
    remote.handle_action(k, "pricing", "add", {"amount": 5})
    before = remote.get_state(k)

    started = time.monotonic()
    with pytest.raises(PureReducerError) as err:
        remote.handle_action(k, "pricing", "hang", {}, retries=0)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    # reducerd's timeout_ms cut it short, not the reducer finishing or our 10 s deadline.
    assert time.monotonic() - started < TIMEOUT_MS / 1000 * 4

    after = remote.get_state(k)
    assert (after.version, after.state) == (before.version, before.state)
