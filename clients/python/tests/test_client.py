"""The Python client against a live reducerd."""

import threading
import time
import uuid
from concurrent import futures

import grpc
import pytest

from purereducer import Client, PureReducerError, Status
from purereducer.pb import reducer_pb2, reducer_pb2_grpc, types_pb2


def key(name: str) -> str:
    # Keys are unique per test run: the session server is shared by every test.
    return f"py-{name}-{uuid.uuid4().hex[:8]}"


def test_handle_action_commits_then_repeats_as_duplicate(client):
    k = key("order")
    first = client.handle_action(k, "merge", "set", {"customer": "ana", "total": 42})
    assert first.status == Status.COMMITTED
    assert first.version == 1
    assert first.state == {"customer": "ana", "total": 42}
    assert isinstance(first.state["total"], int)  # Struct numbers are doubles; 42 stays 42
    assert first.result_hash

    again = client.handle_action(k, "merge", "set", {"customer": "ana", "total": 42},
                                 action_id=first.action_id, correlation_id=first.correlation_id)
    assert again.status == Status.DUPLICATE
    assert (again.version, again.result_hash) == (first.version, first.result_hash)


def test_same_action_id_with_another_payload_is_refused(client):
    k = key("reuse")
    first = client.handle_action(k, "merge", "set", {"n": 1})
    with pytest.raises(PureReducerError) as err:
        client.handle_action(k, "merge", "set", {"n": 2}, action_id=first.action_id)
    assert err.value.code == grpc.StatusCode.ALREADY_EXISTS


def test_get_state_reads_what_was_committed(client):
    k = key("state")
    client.handle_action(k, "merge", "set", {"a": 1, "nested": {"b": [1, 2.5, None]}})
    client.handle_action(k, "merge", "set", {"a": None, "c": "x"})
    got = client.get_state(k)
    assert got.version == 2
    assert got.state == {"nested": {"b": [1, 2.5, None]}, "c": "x"}
    assert (got.workflow_type, got.namespace) == ("merge", "default")
    assert got.updated_at is not None


def test_get_state_of_unknown_key_is_not_found(client):
    with pytest.raises(PureReducerError) as err:
        client.get_state(key("missing"))
    assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_same_key_in_two_namespaces_is_two_workflows(client):
    k = key("tenant")
    for ns in ("tenant-a", "tenant-b"):
        done = client.handle_action(k, "merge", "set", {"owner": ns}, namespace=ns)
        assert (done.status, done.version) == (Status.COMMITTED, 1)

    for ns in ("tenant-a", "tenant-b"):
        got = client.get_state(k, namespace=ns)
        assert (got.version, got.state, got.namespace) == (1, {"owner": ns}, ns)

    with pytest.raises(PureReducerError) as err:
        client.get_state(k)  # the "default" namespace holds no such workflow
    assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_try_commit_conflict_reports_current_version(client):
    k = key("cas")
    assert client.try_commit(k, 0, {"v": 1}, workflow_type="merge").version == 1
    second = client.try_commit(k, 1, {"v": 2}, provenance={"actor": "test", "reason": "cas"})
    assert second.committed and second.version == 2

    stale = client.try_commit(k, 1, {"v": "late"})
    assert not stale.committed
    assert stale.current_version == 2
    assert client.get_state(k).state == {"v": 2}


def test_dedup_should_process_and_cleanup(client):
    k = key("dedup")
    fresh = str(uuid.uuid4())
    assert client.should_process(k, fresh).should_process

    done = client.handle_action(k, "merge", "set", {"x": 1})
    check = client.should_process(k, done.action_id)
    assert not check.should_process
    assert check.previous.result_hash == done.result_hash
    assert check.previous.status == Status.COMMITTED
    assert client.cleanup_expired() >= 0


class _FlakyReducer(reducer_pb2_grpc.ReducerServiceServicer):
    """Fails the first call with UNAVAILABLE, like a restarting server, and records calls."""

    def __init__(self):
        self.calls = []

    def HandleAction(self, request, context):
        self.calls.append((request.action.action_id, request.action.correlation_id,
                           dict(context.invocation_metadata())))
        if len(self.calls) == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return reducer_pb2.HandleActionResponse(
            status=types_pb2.ACTION_STATUS_COMMITTED, version=1, action_id=request.action.action_id)


@pytest.fixture()
def flaky():
    servicer = _FlakyReducer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    reducer_pb2_grpc.add_ReducerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def test_handle_action_retries_unavailable_with_the_same_ids_and_sends_the_token(flaky):
    servicer, addr = flaky
    with Client(addr, token="s3cret") as c:
        result = c.handle_action("k-1", "merge", "set", {"x": 1})
    assert result.status == Status.COMMITTED
    assert len(servicer.calls) == 2
    (id1, corr1, meta1), (id2, corr2, _) = servicer.calls
    assert id1 == id2 == result.action_id
    assert corr1 == corr2
    assert meta1["authorization"] == "Bearer s3cret"


def test_handle_action_does_not_retry_other_errors(flaky):
    servicer, addr = flaky
    with Client(addr) as c, pytest.raises(PureReducerError) as err:
        c.handle_action("k-1", "merge", "set", {"x": 1}, retries=0)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(servicer.calls) == 1


# --- event pipeline (EventBusService, ProjectionService) --------------------------------


def test_get_projection_waits_for_min_version(client):
    k = key("proj")
    client.handle_action(k, "fsm", "PENDING")
    client.handle_action(k, "fsm", "PROCESSING")
    proj = client.get_projection(k, min_version=2, max_wait_ms=5000)
    assert proj.version >= 2
    assert not proj.from_canonical
    assert proj.last_action == "PROCESSING"

    # A version that never comes: after max_wait_ms the answer is built from the canonical state.
    started = time.monotonic()
    late = client.get_projection(k, min_version=99, max_wait_ms=300)
    assert late.from_canonical and late.version == 2
    assert time.monotonic() - started >= 0.25
    assert isinstance(client.list_watermarks(), list)


def test_publish_action_then_wait_for_completion(client):
    k = key("bus")
    published = client.publish_action(k, "merge", "set", {"queued": True})
    done = client.wait_for_completion(published.correlation_id, timeout_ms=10000)
    assert done.status == Status.COMMITTED
    assert (done.workflow_key, done.version, done.action_id) == (k, 1, published.action_id)
    # Waiting again after it finished gives the same outcome.
    assert client.wait_for_completion(published.correlation_id, timeout_ms=1000) == done

    with pytest.raises(PureReducerError) as err:
        client.wait_for_completion(str(uuid.uuid4()), timeout_ms=200)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_subscribe_streams_commits_in_version_order(client):
    k, decoy = key("sub"), key("decoy")
    events = client.subscribe(workflow_keys=[k], timeout=30)
    seen = []
    stop = threading.Event()

    def commit_until_seen():
        # The stream has no "subscribed" signal, so keep committing until events flow; the
        # decoy's commits must not pass the filter.
        for i in range(50):
            if stop.is_set():
                return
            client.handle_action(decoy, "merge", "set", {"i": i})
            client.handle_action(k, "merge", "set", {"i": i})
            time.sleep(0.1)

    writer = threading.Thread(target=commit_until_seen, daemon=True)
    writer.start()
    for event in events:
        assert event.workflow_key == k
        if event.kind == "state_committed":
            assert event.body["state"]["i"] == event.version - 1
            seen.append(event.version)
        if len(seen) == 3:
            break
    stop.set()
    events.close()
    writer.join()
    assert seen == list(range(seen[0], seen[0] + 3))


def _committed_versions(events, k, n):
    # The versions of the next n state_committed events, each checked to be k's.
    versions = []
    for event in events:
        if event.kind != "state_committed":
            continue
        assert event.workflow_key == k
        assert event.body["state"]["i"] == event.version - 1
        versions.append(event.version)
        if len(versions) == n:
            break
    return versions


def test_subscribe_from_version_replays_then_follows_live(client):
    k = key("replay")
    for i in range(3):
        client.handle_action(k, "merge", "set", {"i": i})
    # The timeout ends the stream (DEADLINE_EXCEEDED) should an event not come.
    events = client.subscribe(workflow_keys=[k], from_version=1, timeout=30)
    try:
        assert _committed_versions(events, k, 3) == [1, 2, 3]
        # Then live, with no repeat at the seam: the next commit is the next event.
        client.handle_action(k, "merge", "set", {"i": 3})
        assert _committed_versions(events, k, 1) == [4]
    finally:
        events.close()


def test_subscribe_from_version_without_workflow_keys_is_invalid_argument(client):
    # A replay needs the keys to read the history of; the refusal comes when iterating.
    events = client.subscribe(from_version=1, timeout=30)
    with pytest.raises(PureReducerError) as err:
        next(events)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "from_version" in err.value.details
