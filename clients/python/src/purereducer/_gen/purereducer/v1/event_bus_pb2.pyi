from . import events_pb2 as _events_pb2
from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishActionRequest(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: _types_pb2.Action
    def __init__(self, action: _Optional[_Union[_types_pb2.Action, _Mapping]] = ...) -> None: ...

class PublishActionResponse(_message.Message):
    __slots__ = ("correlation_id", "action_id")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    action_id: str
    def __init__(self, correlation_id: _Optional[str] = ..., action_id: _Optional[str] = ...) -> None: ...

class WaitForCompletionRequest(_message.Message):
    __slots__ = ("correlation_id", "timeout_ms", "action_id", "namespace")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    timeout_ms: int
    action_id: str
    namespace: str
    def __init__(self, correlation_id: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., action_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class WaitForCompletionResponse(_message.Message):
    __slots__ = ("correlation_id", "action_id", "workflow_key", "status", "version", "result_hash", "rejection_reason", "namespace")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULT_HASH_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    action_id: str
    workflow_key: str
    status: _types_pb2.ActionStatus
    version: int
    result_hash: str
    rejection_reason: str
    namespace: str
    def __init__(self, correlation_id: _Optional[str] = ..., action_id: _Optional[str] = ..., workflow_key: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.ActionStatus, str]] = ..., version: _Optional[int] = ..., result_hash: _Optional[str] = ..., rejection_reason: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class SubscriptionFilter(_message.Message):
    __slots__ = ("namespaces", "workflow_types", "workflow_keys")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_KEYS_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    workflow_types: _containers.RepeatedScalarFieldContainer[str]
    workflow_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespaces: _Optional[_Iterable[str]] = ..., workflow_types: _Optional[_Iterable[str]] = ..., workflow_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("filter", "from_version")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    filter: SubscriptionFilter
    from_version: int
    def __init__(self, filter: _Optional[_Union[SubscriptionFilter, _Mapping]] = ..., from_version: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ...) -> None: ...
