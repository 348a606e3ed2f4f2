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

class StateCommitted(_message.Message):
    __slots__ = ("workflow_key", "version", "namespace", "workflow_type", "action_id", "action_type", "correlation_id", "state", "intents", "committed_at", "result_hash")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_HASH_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    version: int
    namespace: str
    workflow_type: str
    action_id: str
    action_type: str
    correlation_id: str
    state: _struct_pb2.Struct
    intents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Intent]
    committed_at: _timestamp_pb2.Timestamp
    result_hash: str
    def __init__(self, workflow_key: _Optional[str] = ..., version: _Optional[int] = ..., namespace: _Optional[str] = ..., workflow_type: _Optional[str] = ..., action_id: _Optional[str] = ..., action_type: _Optional[str] = ..., correlation_id: _Optional[str] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., intents: _Optional[_Iterable[_Union[_types_pb2.Intent, _Mapping]]] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result_hash: _Optional[str] = ...) -> None: ...

class ReducerGaveUp(_message.Message):
    __slots__ = ("workflow_key", "namespace", "workflow_type", "action_id", "action_type", "correlation_id", "attempts", "last_seen_version", "gave_up_at")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_VERSION_FIELD_NUMBER: _ClassVar[int]
    GAVE_UP_AT_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    namespace: str
    workflow_type: str
    action_id: str
    action_type: str
    correlation_id: str
    attempts: int
    last_seen_version: int
    gave_up_at: _timestamp_pb2.Timestamp
    def __init__(self, workflow_key: _Optional[str] = ..., namespace: _Optional[str] = ..., workflow_type: _Optional[str] = ..., action_id: _Optional[str] = ..., action_type: _Optional[str] = ..., correlation_id: _Optional[str] = ..., attempts: _Optional[int] = ..., last_seen_version: _Optional[int] = ..., gave_up_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IntentEmitted(_message.Message):
    __slots__ = ("workflow_key", "version", "namespace", "workflow_type", "correlation_id", "intent", "index")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    version: int
    namespace: str
    workflow_type: str
    correlation_id: str
    intent: _types_pb2.Intent
    index: int
    def __init__(self, workflow_key: _Optional[str] = ..., version: _Optional[int] = ..., namespace: _Optional[str] = ..., workflow_type: _Optional[str] = ..., correlation_id: _Optional[str] = ..., intent: _Optional[_Union[_types_pb2.Intent, _Mapping]] = ..., index: _Optional[int] = ...) -> None: ...

class WorkflowDeleted(_message.Message):
    __slots__ = ("workflow_key", "version", "namespace", "workflow_type", "actor", "reason", "deleted_at")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    version: int
    namespace: str
    workflow_type: str
    actor: str
    reason: str
    deleted_at: _timestamp_pb2.Timestamp
    def __init__(self, workflow_key: _Optional[str] = ..., version: _Optional[int] = ..., namespace: _Optional[str] = ..., workflow_type: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("state_committed", "reducer_gave_up", "intent_emitted", "workflow_deleted")
    STATE_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    REDUCER_GAVE_UP_FIELD_NUMBER: _ClassVar[int]
    INTENT_EMITTED_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_DELETED_FIELD_NUMBER: _ClassVar[int]
    state_committed: StateCommitted
    reducer_gave_up: ReducerGaveUp
    intent_emitted: IntentEmitted
    workflow_deleted: WorkflowDeleted
    def __init__(self, state_committed: _Optional[_Union[StateCommitted, _Mapping]] = ..., reducer_gave_up: _Optional[_Union[ReducerGaveUp, _Mapping]] = ..., intent_emitted: _Optional[_Union[IntentEmitted, _Mapping]] = ..., workflow_deleted: _Optional[_Union[WorkflowDeleted, _Mapping]] = ...) -> None: ...
