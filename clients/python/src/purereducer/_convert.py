"""Generated reply messages -> the plain results in types.py."""

from datetime import datetime, timezone
from typing import Iterator, Optional

import grpc
from google.protobuf import json_format

from . import _json
from .pb import types_pb2
from .types import (
    ActionResult,
    DeadLetter,
    Event,
    HistoryEntry,
    Intent,
    ProcessedAction,
    PureReducerError,
    Status,
    WorkflowSummary,
)


def status(value: int) -> Status:
    return Status(types_pb2.ActionStatus.Name(value).removeprefix("ACTION_STATUS_"))


def intent(message) -> Intent:
    return Intent(intent_type=message.intent_type, payload=_json.from_struct(message.payload))


def datetime_of(message, name) -> Optional[datetime]:
    return getattr(message, name).ToDatetime(tzinfo=timezone.utc) if message.HasField(name) else None


def action_result(reply) -> ActionResult:
    """A HandleActionResponse (also RetryAction's outcome)."""
    return ActionResult(
        status=status(reply.status),
        version=reply.version,
        state=_json.from_struct(reply.state),
        intents=[intent(i) for i in reply.intents],
        attempts=reply.attempts,
        result_hash=reply.result_hash,
        rejection_reason=reply.rejection_reason,
        correlation_id=reply.correlation_id,
        action_id=reply.action_id,
        workflow_key=reply.workflow_key,
    )


def processed(p) -> ProcessedAction:
    return ProcessedAction(
        workflow_key=p.workflow_key,
        action_id=p.action_id,
        result_hash=p.result_hash,
        version=p.version,
        status=status(p.status),
        expires_at=datetime_of(p, "expires_at"),
        namespace=p.namespace,
    )


def history_entry(e) -> HistoryEntry:
    return HistoryEntry(
        version=e.version,
        status=status(e.status),
        action_id=e.action_id,
        action_type=e.action_type,
        correlation_id=e.correlation_id,
        state=_optional_struct(e, "state"),
        intents=[intent(i) for i in e.intents],
        reason=e.reason,
        result_hash=e.result_hash,
        actor=e.actor,
        recorded_at=datetime_of(e, "recorded_at"),
        workflow_type=e.workflow_type,
        payload=_optional_struct(e, "payload"),
        deleted=e.deleted,
    )


def workflow_summary(w) -> WorkflowSummary:
    return WorkflowSummary(
        workflow_key=w.workflow_key,
        namespace=w.namespace,
        workflow_type=w.workflow_type,
        version=w.version,
        updated_at=datetime_of(w, "updated_at"),
        tag=w.tag,
    )


def dead_letter(d) -> DeadLetter:
    return DeadLetter(
        id=d.id,
        source=d.source,
        namespace=d.namespace,
        workflow_key=d.workflow_key,
        version=d.version,
        event_type=d.event_type,
        error=d.error,
        created_at=datetime_of(d, "created_at"),
        replayed_at=datetime_of(d, "replayed_at"),
    )


def events(stream) -> Iterator[Event]:
    try:
        for reply in stream:
            kind = reply.event.WhichOneof("kind")
            if kind is None:
                continue  # an event kind newer than this client
            inner = getattr(reply.event, kind)
            body = _json.plain(json_format.MessageToDict(inner, preserving_proto_field_name=True))
            version = inner.last_seen_version if kind == "reducer_gave_up" else inner.version
            yield Event(kind=kind, workflow_key=inner.workflow_key, version=version, body=body)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise PureReducerError(err.code(), err.details() or "") from err
    finally:
        stream.cancel()


def _optional_struct(message, name) -> Optional[dict]:
    # Absent and empty differ here: a refusal has no state, a commit may have an empty one.
    return _json.from_struct(getattr(message, name)) if message.HasField(name) else None
