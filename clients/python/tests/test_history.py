"""GetHistory and ListWorkflows through the Python client, against a live reducerd."""

import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from purereducer import PureReducerError, Status


def key(name: str) -> str:
    # Keys are unique per test run: the session server is shared by every test.
    return f"py-{name}-{uuid.uuid4().hex[:8]}"


def brief(page):
    return [(e.version, e.status, e.action_id) for e in page.entries]


def test_history_of_two_commits_and_a_refusal_pages_forward_and_in_reverse(client):
    k = key("history")
    created = client.handle_action(k, "fsm", "PENDING")
    started = client.handle_action(k, "fsm", "PROCESSING")
    refused = client.handle_action(k, "fsm", "PENDING")  # PROCESSING -> PENDING is no transition
    assert [r.status for r in (created, started, refused)] == [Status.COMMITTED, Status.COMMITTED,
                                                               Status.REJECTED]

    first = client.get_history(k, limit=2)
    assert (first.workflow_key, first.namespace) == (k, "default")
    assert brief(first) == [(1, Status.COMMITTED, created.action_id),
                            (2, Status.COMMITTED, started.action_id)]
    assert first.next_page_token
    rest = client.get_history(k, limit=2, page_token=first.next_page_token)
    assert brief(rest) == [(2, Status.REJECTED, refused.action_id)]
    assert rest.next_page_token == ""

    commit, refusal = first.entries[1], rest.entries[0]
    assert (commit.action_type, commit.state, commit.payload) == ("PROCESSING", started.state, {})
    assert (commit.correlation_id, commit.result_hash) == (started.correlation_id, started.result_hash)
    assert commit.actor == "reducer-service" and commit.workflow_type == "fsm"
    assert commit.recorded_at is not None
    assert refusal.state is None  # a refusal changed nothing, so it has no state
    assert (refusal.action_type, refusal.reason) == ("PENDING", refused.rejection_reason)

    newest = client.get_history(k, limit=2, reverse=True)
    assert brief(newest) == [(2, Status.REJECTED, refused.action_id),
                             (2, Status.COMMITTED, started.action_id)]
    oldest = client.get_history(k, limit=2, reverse=True, page_token=newest.next_page_token)
    assert brief(oldest) == [(1, Status.COMMITTED, created.action_id)]
    assert oldest.next_page_token == ""
    assert newest.entries + oldest.entries == list(reversed(first.entries + rest.entries))


def test_history_from_a_version(client):
    k = key("from")
    for n in range(3):
        client.handle_action(k, "merge", "set", {"n": n})
    assert [e.version for e in client.get_history(k, from_version=2).entries] == [2, 3]
    assert [e.version for e in client.get_history(k, from_version=2, reverse=True).entries] == [2, 1]


def test_a_history_token_is_refused_in_the_other_direction(client):
    k = key("token")
    for n in range(2):
        client.handle_action(k, "merge", "set", {"n": n})
    forward = client.get_history(k, limit=1)
    with pytest.raises(PureReducerError) as err:
        client.get_history(k, limit=1, reverse=True, page_token=forward.next_page_token)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in err.value.details


def test_list_workflows_by_prefix_a_page_at_a_time(client):
    prefix = key("list") + "/"
    keys = [f"{prefix}{name}" for name in ("a", "b", "c")]
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    for k in reversed(keys):  # listed in key order, not in commit order
        client.handle_action(k, "merge", "set", {"status": "open"})
    client.handle_action(prefix.rstrip("/"), "merge", "set", {})  # shares the start, not the prefix
    client.handle_action(prefix + "elsewhere", "merge", "set", {}, namespace="tenant-list")

    first = client.list_workflows(key_prefix=prefix, limit=2)
    assert [w.workflow_key for w in first.workflows] == keys[:2]
    assert first.next_page_token
    rest = client.list_workflows(key_prefix=prefix, limit=2, page_token=first.next_page_token)
    assert [w.workflow_key for w in rest.workflows] == keys[2:]
    assert rest.next_page_token == ""

    summary = first.workflows[0]
    assert (summary.namespace, summary.workflow_type, summary.version, summary.tag) == (
        "default", "merge", 1, "open")
    assert summary.updated_at >= since


def test_list_workflows_filters_combine(client):
    prefix = key("filter") + "/"
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    client.handle_action(prefix + "open", "merge", "set", {"status": "open"})
    client.handle_action(prefix + "closed", "merge", "set", {"status": "closed"})
    client.handle_action(prefix + "job", "fsm", "PENDING")
    client.handle_action(prefix + "other-ns", "merge", "set", {}, namespace="tenant-filter")

    def listed(**filters):
        return [w.workflow_key for w in client.list_workflows(key_prefix=prefix, **filters).workflows]

    assert listed() == [prefix + "closed", prefix + "job", prefix + "open"]
    assert listed(tag="closed") == [prefix + "closed"]
    assert listed(workflow_type="fsm") == [prefix + "job"]
    assert listed(updated_after=since) == listed()
    assert listed(updated_before=since) == []
    assert listed(namespace="tenant-filter") == [prefix + "other-ns"]
