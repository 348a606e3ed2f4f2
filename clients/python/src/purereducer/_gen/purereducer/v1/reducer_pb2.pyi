from google.protobuf import struct_pb2 as _struct_pb2
from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryActionRequest(_message.Message):
    __slots__ = ("namespace", "workflow_key", "action_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    workflow_key: str
    action_id: str
    def __init__(self, namespace: _Optional[str] = ..., workflow_key: _Optional[str] = ..., action_id: _Optional[str] = ...) -> None: ...

class RetryActionResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: HandleActionResponse
    def __init__(self, outcome: _Optional[_Union[HandleActionResponse, _Mapping]] = ...) -> None: ...

class HandleActionRequest(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: _types_pb2.Action
    def __init__(self, action: _Optional[_Union[_types_pb2.Action, _Mapping]] = ...) -> None: ...

class HandleActionResponse(_message.Message):
    __slots__ = ("status", "version", "state", "intents", "attempts", "result_hash", "rejection_reason", "correlation_id", "action_id", "workflow_key")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_HASH_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    status: _types_pb2.ActionStatus
    version: int
    state: _struct_pb2.Struct
    intents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Intent]
    attempts: int
    result_hash: str
    rejection_reason: str
    correlation_id: str
    action_id: str
    workflow_key: str
    def __init__(self, status: _Optional[_Union[_types_pb2.ActionStatus, str]] = ..., version: _Optional[int] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., intents: _Optional[_Iterable[_Union[_types_pb2.Intent, _Mapping]]] = ..., attempts: _Optional[int] = ..., result_hash: _Optional[str] = ..., rejection_reason: _Optional[str] = ..., correlation_id: _Optional[str] = ..., action_id: _Optional[str] = ..., workflow_key: _Optional[str] = ...) -> None: ...
