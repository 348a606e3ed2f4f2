from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_STATUS_UNSPECIFIED: _ClassVar[ActionStatus]
    ACTION_STATUS_COMMITTED: _ClassVar[ActionStatus]
    ACTION_STATUS_DUPLICATE: _ClassVar[ActionStatus]
    ACTION_STATUS_REJECTED: _ClassVar[ActionStatus]
    ACTION_STATUS_GAVE_UP: _ClassVar[ActionStatus]
ACTION_STATUS_UNSPECIFIED: ActionStatus
ACTION_STATUS_COMMITTED: ActionStatus
ACTION_STATUS_DUPLICATE: ActionStatus
ACTION_STATUS_REJECTED: ActionStatus
ACTION_STATUS_GAVE_UP: ActionStatus

class Action(_message.Message):
    __slots__ = ("action_id", "workflow_key", "workflow_type", "action_type", "payload", "correlation_id", "namespace")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    workflow_key: str
    workflow_type: str
    action_type: str
    payload: _struct_pb2.Struct
    correlation_id: str
    namespace: str
    def __init__(self, action_id: _Optional[str] = ..., workflow_key: _Optional[str] = ..., workflow_type: _Optional[str] = ..., action_type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., correlation_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class Intent(_message.Message):
    __slots__ = ("intent_type", "payload")
    INTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    intent_type: str
    payload: _struct_pb2.Struct
    def __init__(self, intent_type: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("action_id", "correlation_id", "actor", "reason")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    correlation_id: str
    actor: str
    reason: str
    def __init__(self, action_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
