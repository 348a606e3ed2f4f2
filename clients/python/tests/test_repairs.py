"""RetryAction, ListDeadLetters and ReplayDeadLetter through the Python client, against a
live reducerd: what each answers when there is nothing to repair. DeleteWorkflow: a deletion,
and what it refuses."""

import uuid
from concurrent import futures

import grpc
import pytest
from conftest import Reducerd

from purereducer import Client, PureReducerError, Status
from purereducer.pb import reducer_pb2, reducer_pb2_grpc, types_pb2


def key(name: str) -> str:
    return f"py-{name}-{uuid.uuid4().hex[:8]}"


def refusal(call, *args):
    with pytest.raises(PureReducerError) as err:
        call(*args)
    return err.value.code, err.value.details


def test_retrying_a_committed_action_says_how_it_ended(client):
    k = key("retry")
    client.handle_action(k, "merge", "set", {"n": 0})
    done = client.handle_action(k, "merge", "set", {"n": 1})
    assert refusal(client.retry_action, k, done.action_id) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        f"action {done.action_id} did not give up: it ended COMMITTED at version 2; "
        "only a GAVE_UP action can be retried",
    )


def test_retrying_a_rejected_action_says_how_it_ended(client):
    k = key("retry-rejected")
    client.handle_action(k, "fsm", "PENDING")
    refused = client.handle_action(k, "fsm", "COMPLETED")  # PENDING -> COMPLETED is no transition
    code, details = refusal(client.retry_action, k, refused.action_id)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "it ended REJECTED at version 1" in details


def test_retrying_an_action_history_never_saw_is_not_found(client):
    k = key("retry-unknown")
    client.handle_action(k, "merge", "set", {})
    unknown = str(uuid.uuid4())
    code, details = refusal(client.retry_action, k, unknown)
    assert code == grpc.StatusCode.NOT_FOUND
    assert f"has no history of action {unknown}" in details
    # The action exists, but in another namespace's workflow.
    done = client.handle_action(k, "merge", "set", {}, namespace="tenant-retry")
    assert refusal(client.retry_action, k, done.action_id)[0] == grpc.StatusCode.NOT_FOUND
    assert refusal(client.retry_action, k, "not-a-uuid")[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_workflow_at_a_stale_version_is_refused_then_deletes(client):
    k = key("delete")
    client.handle_action(k, "merge", "set", {"n": 0})
    client.handle_action(k, "merge", "set", {"n": 1})

    code, details = refusal(client.delete_workflow, k, 1)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "is at version 2, not 1; nothing was deleted" in details
    assert client.get_state(k).version == 2

    assert client.delete_workflow(k, expected_version=2, reason="customer asked") == 3
    code, details = refusal(client.get_state, k)
    assert code == grpc.StatusCode.NOT_FOUND and "deleted at version 3" in details
    code, details = refusal(client.delete_workflow, k)
    assert code == grpc.StatusCode.NOT_FOUND and "deleted at version 3" in details

    [gone] = client.get_history(k, reverse=True, limit=1).entries
    assert (gone.version, gone.deleted, gone.status, gone.action_type, gone.reason, gone.state) == (
        3, True, Status.COMMITTED, "DeleteWorkflow", "customer asked", None)
    assert not any(e.deleted for e in client.get_history(k, limit=2).entries)

    # Versions never go back: the next action starts the workflow again, from the initial
    # state, at the version after the deletion.
    reborn = client.handle_action(k, "merge", "set", {"c": 3})
    assert (reborn.version, reborn.state) == (4, {"c": 3})


def test_deleting_a_workflow_that_does_not_exist_is_not_found(client):
    k = key("delete-missing")
    code, details = refusal(client.delete_workflow, k)
    assert code == grpc.StatusCode.NOT_FOUND and "does not exist" in details
    # The workflow exists, but in another namespace.
    client.handle_action(k, "merge", "set", {}, namespace="tenant-delete")
    assert refusal(client.delete_workflow, k)[0] == grpc.StatusCode.NOT_FOUND
    # Expected version 0: whatever its version.
    assert client.delete_workflow(k, namespace="tenant-delete") == 2
    assert refusal(lambda: client.get_state(k, namespace="tenant-delete"))[0] == grpc.StatusCode.NOT_FOUND
    assert refusal(client.delete_workflow, "")[0] == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture()
def fresh(tmp_path):
    srv = Reducerd(tmp_path)
    with Client(srv.addr) as c:
        yield c
    srv.stop()


def test_a_fresh_server_has_no_dead_letters_to_list_or_replay(fresh):
    fresh.handle_action(key("lettered"), "merge", "set", {"n": 1})
    assert fresh.list_dead_letters() == []
    assert fresh.list_dead_letters(limit=1000) == []
    assert refusal(fresh.replay_dead_letter, 1) == (
        grpc.StatusCode.NOT_FOUND, "there is no dead letter 1; list dead letters to find their ids")
    code, details = refusal(fresh.list_dead_letters, 1001)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit" in details


class _RetriedReducer(reducer_pb2_grpc.ReducerServiceServicer):
    """Answers RetryAction as reducerd does for a give-up that now commits, and records the
    requests: a live give-up needs two replicas racing on one database."""

    def __init__(self):
        self.requests = []

    def RetryAction(self, request, context):
        self.requests.append(request)
        outcome = reducer_pb2.HandleActionResponse(
            status=types_pb2.ACTION_STATUS_COMMITTED, version=4, attempts=1, result_hash="h",
            action_id=request.action_id, workflow_key=request.workflow_key, correlation_id="c")
        outcome.state.update({"n": 3})
        return reducer_pb2.RetryActionResponse(outcome=outcome)


def test_a_retried_give_up_comes_back_as_its_outcome():
    servicer = _RetriedReducer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    reducer_pb2_grpc.add_ReducerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    action_id = str(uuid.uuid4())
    try:
        with Client(f"127.0.0.1:{port}") as c:
            result = c.retry_action("k-1", action_id, namespace="tenant-a")
    finally:
        server.stop(None)
    assert (result.status, result.version, result.state, result.attempts) == (Status.COMMITTED, 4, {"n": 3}, 1)
    assert (result.action_id, result.workflow_key) == (action_id, "k-1")
    [sent] = servicer.requests
    assert (sent.namespace, sent.workflow_key, sent.action_id) == ("tenant-a", "k-1", action_id)
