"""Plain results of the client calls: dataclasses with dicts for JSON, ints for versions."""

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

import grpc


class Status(str, enum.Enum):
    """How an action ended (ActionStatus without its ACTION_STATUS_ prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    COMMITTED = "COMMITTED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    GAVE_UP = "GAVE_UP"


class PureReducerError(Exception):
    """A call failed with a gRPC status; `code` is a grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class Intent:
    intent_type: str
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ActionResult:
    status: Status
    version: int
    state: dict
    intents: list
    attempts: int
    result_hash: str
    rejection_reason: str
    correlation_id: str
    action_id: str
    workflow_key: str


@dataclass(frozen=True)
class WorkflowState:
    workflow_key: str
    version: int
    state: dict
    workflow_type: str
    namespace: str
    updated_at: Optional[datetime]


@dataclass(frozen=True)
class CommitResult:
    """`committed` and the new `version`, or not committed and the stored `current_version`."""

    committed: bool
    version: int = 0
    current_version: int = 0


@dataclass(frozen=True)
class ProcessedAction:
    workflow_key: str
    action_id: str
    result_hash: str
    version: int
    status: Status
    expires_at: Optional[datetime]
    # The workflow's namespace ("default" when the request left it empty).
    namespace: str = ""


@dataclass(frozen=True)
class DedupCheck:
    """Whether an action id is new; `previous` is the earlier outcome when it is not."""

    should_process: bool
    previous: Optional[ProcessedAction] = None


@dataclass(frozen=True)
class Published:
    correlation_id: str
    action_id: str


@dataclass(frozen=True)
class Completion:
    correlation_id: str
    action_id: str
    workflow_key: str
    status: Status
    version: int
    result_hash: str
    rejection_reason: str
    # The namespace the action was published in.
    namespace: str = ""


@dataclass(frozen=True)
class Event:
    """One published event: `kind` is state_committed, reducer_gave_up, intent_emitted or
    workflow_deleted; `body` is that message as a dict with the proto field names."""

    kind: str
    workflow_key: str
    version: int
    body: dict


@dataclass(frozen=True)
class Projection:
    workflow_key: str
    version: int
    tag: str
    last_action: str
    namespace: str
    updated_at: Optional[datetime]
    indices: dict
    extras: dict
    # True when min_version was not reached in time and the answer came from the canonical state.
    from_canonical: bool


@dataclass(frozen=True)
class Watermark:
    topic: str
    partition: int
    offset: int
    updated_at: Optional[datetime]


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to a workflow: a commit, a refusal, a give-up or a deletion."""

    # The version committed, or for a refusal or give-up the version the action saw.
    version: int
    # COMMITTED, REJECTED or GAVE_UP.
    status: Status
    # Empty for a TryCommit without provenance action_id.
    action_id: str
    # The action type, or "TryCommit".
    action_type: str
    correlation_id: str
    # The state at this version; None unless status is COMMITTED.
    state: Optional[dict]
    intents: list
    # Why the action was refused or gave up (for TryCommit, its provenance reason).
    reason: str
    result_hash: str
    # "reducer-service", or TryCommit's provenance actor.
    actor: str
    recorded_at: Optional[datetime]
    workflow_type: str
    # The action's payload; None for TryCommit.
    payload: Optional[dict]
    # The workflow was deleted at this version (delete_workflow: COMMITTED, state None).
    deleted: bool = False


@dataclass(frozen=True)
class HistoryPage:
    """A page of a workflow's history; pass `next_page_token` back for the next one ("" on
    the last page)."""

    workflow_key: str
    namespace: str
    entries: list
    next_page_token: str


@dataclass(frozen=True)
class WorkflowSummary:
    """A workflow as ListWorkflows shows it, without its state."""

    workflow_key: str
    namespace: str
    workflow_type: str
    version: int
    updated_at: Optional[datetime]
    # The state's "status" field when it is a string (the FSM state for fsm workflows).
    tag: str


@dataclass(frozen=True)
class WorkflowPage:
    """Workflows in key order; pass `next_page_token` back, with the same filter, for the
    next page ("" on the last page)."""

    workflows: list
    next_page_token: str


@dataclass(frozen=True)
class DeadLetter:
    """An event the pipeline could not apply."""

    # What replay_dead_letter takes.
    id: int
    # Where it came from: outbox/<id>, or <topic>/<partition>/<offset>.
    source: str
    namespace: str
    workflow_key: str
    version: int
    event_type: str
    # Why it could not be applied.
    error: str
    created_at: Optional[datetime]
    # When an operator replayed it; None if never.
    replayed_at: Optional[datetime]


@dataclass(frozen=True)
class ReplayResult:
    """What replaying a dead letter did: `applied` is False when the projection already had
    that version or a newer one (the letter is marked replayed either way)."""

    applied: bool
    message: str
