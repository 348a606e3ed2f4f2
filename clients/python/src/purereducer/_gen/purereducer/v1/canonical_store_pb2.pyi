import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStateRequest(_message.Message):
    __slots__ = ("workflow_key", "namespace")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    namespace: str
    def __init__(self, workflow_key: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("workflow_key", "version", "state", "workflow_type", "namespace", "updated_at")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    version: int
    state: _struct_pb2.Struct
    workflow_type: str
    namespace: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, workflow_key: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., workflow_type: _Optional[str] = ..., namespace: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TryCommitRequest(_message.Message):
    __slots__ = ("workflow_key", "expected_version", "state", "provenance", "workflow_type", "namespace")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    expected_version: int
    state: _struct_pb2.Struct
    provenance: _types_pb2.Provenance
    workflow_type: str
    namespace: str
    def __init__(self, workflow_key: _Optional[str] = ..., expected_version: _Optional[int] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., provenance: _Optional[_Union[_types_pb2.Provenance, _Mapping]] = ..., workflow_type: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class TryCommitResponse(_message.Message):
    __slots__ = ("committed", "conflict")
    class Committed(_message.Message):
        __slots__ = ("version",)
        VERSION_FIELD_NUMBER: _ClassVar[int]
        version: int
        def __init__(self, version: _Optional[int] = ...) -> None: ...
    class Conflict(_message.Message):
        __slots__ = ("current_version",)
        CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
        current_version: int
        def __init__(self, current_version: _Optional[int] = ...) -> None: ...
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    committed: TryCommitResponse.Committed
    conflict: TryCommitResponse.Conflict
    def __init__(self, committed: _Optional[_Union[TryCommitResponse.Committed, _Mapping]] = ..., conflict: _Optional[_Union[TryCommitResponse.Conflict, _Mapping]] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("workflow_key", "namespace", "from_version", "limit", "reverse", "page_token")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    namespace: str
    from_version: int
    limit: int
    reverse: bool
    page_token: str
    def __init__(self, workflow_key: _Optional[str] = ..., namespace: _Optional[str] = ..., from_version: _Optional[int] = ..., limit: _Optional[int] = ..., reverse: _Optional[bool] = ..., page_token: _Optional[str] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("version", "status", "action_id", "action_type", "correlation_id", "state", "intents", "reason", "result_hash", "actor", "recorded_at", "workflow_type", "payload", "deleted")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESULT_HASH_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    version: int
    status: _types_pb2.ActionStatus
    action_id: str
    action_type: str
    correlation_id: str
    state: _struct_pb2.Struct
    intents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Intent]
    reason: str
    result_hash: str
    actor: str
    recorded_at: _timestamp_pb2.Timestamp
    workflow_type: str
    payload: _struct_pb2.Struct
    deleted: bool
    def __init__(self, version: _Optional[int] = ..., status: _Optional[_Union[_types_pb2.ActionStatus, str]] = ..., action_id: _Optional[str] = ..., action_type: _Optional[str] = ..., correlation_id: _Optional[str] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., intents: _Optional[_Iterable[_Union[_types_pb2.Intent, _Mapping]]] = ..., reason: _Optional[str] = ..., result_hash: _Optional[str] = ..., actor: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workflow_type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("workflow_key", "namespace", "entries", "next_page_token")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    namespace: str
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    next_page_token: str
    def __init__(self, workflow_key: _Optional[str] = ..., namespace: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("namespace", "workflow_type", "key_prefix", "updated_after", "updated_before", "tag", "limit", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    workflow_type: str
    key_prefix: str
    updated_after: _timestamp_pb2.Timestamp
    updated_before: _timestamp_pb2.Timestamp
    tag: str
    limit: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., workflow_type: _Optional[str] = ..., key_prefix: _Optional[str] = ..., updated_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tag: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class WorkflowSummary(_message.Message):
    __slots__ = ("workflow_key", "namespace", "workflow_type", "version", "updated_at", "tag")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    namespace: str
    workflow_type: str
    version: int
    updated_at: _timestamp_pb2.Timestamp
    tag: str
    def __init__(self, workflow_key: _Optional[str] = ..., namespace: _Optional[str] = ..., workflow_type: _Optional[str] = ..., version: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tag: _Optional[str] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows", "next_page_token")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowSummary]
    next_page_token: str
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteWorkflowRequest(_message.Message):
    __slots__ = ("workflow_key", "namespace", "expected_version", "reason")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    namespace: str
    expected_version: int
    reason: str
    def __init__(self, workflow_key: _Optional[str] = ..., namespace: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteWorkflowResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...
