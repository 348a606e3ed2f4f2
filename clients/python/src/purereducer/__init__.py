"""Python client for the Pure Reducer gRPC API.

    from purereducer import Client
    with Client("localhost:50051") as client:
        result = client.handle_action("order-1", "merge", "set", {"total": 42})
"""

from .client import Client
from .reducer_function import Reduced, Rejected, serve_reducer
from .types import (
    ActionResult,
    CommitResult,
    Completion,
    DeadLetter,
    DedupCheck,
    Event,
    HistoryEntry,
    HistoryPage,
    Intent,
    ProcessedAction,
    Projection,
    Published,
    PureReducerError,
    ReplayResult,
    Status,
    Watermark,
    WorkflowPage,
    WorkflowState,
    WorkflowSummary,
)

__all__ = [
    "ActionResult",
    "Client",
    "CommitResult",
    "Completion",
    "DeadLetter",
    "DedupCheck",
    "Event",
    "HistoryEntry",
    "HistoryPage",
    "Intent",
    "ProcessedAction",
    "Projection",
    "Published",
    "PureReducerError",
    "Reduced",
    "Rejected",
    "ReplayResult",
    "Status",
    "Watermark",
    "WorkflowPage",
    "WorkflowState",
    "WorkflowSummary",
    "serve_reducer",
]
