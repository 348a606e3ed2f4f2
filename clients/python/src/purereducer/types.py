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
    """One published event: `kind` is state_committed, reducer_gave_up or intent_emitted;
    `body` is that message as a dict with the proto field names."""

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
