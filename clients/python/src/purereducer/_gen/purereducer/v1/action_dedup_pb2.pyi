import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import types_pb2 as _types_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessedAction(_message.Message):
    __slots__ = ("workflow_key", "action_id", "result_hash", "version", "status", "expires_at", "namespace")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    action_id: str
    result_hash: str
    version: int
    status: _types_pb2.ActionStatus
    expires_at: _timestamp_pb2.Timestamp
    namespace: str
    def __init__(self, workflow_key: _Optional[str] = ..., action_id: _Optional[str] = ..., result_hash: _Optional[str] = ..., version: _Optional[int] = ..., status: _Optional[_Union[_types_pb2.ActionStatus, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., namespace: _Optional[str] = ...) -> None: ...

class ShouldProcessRequest(_message.Message):
    __slots__ = ("workflow_key", "action_id", "namespace")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    action_id: str
    namespace: str
    def __init__(self, workflow_key: _Optional[str] = ..., action_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class ShouldProcessResponse(_message.Message):
    __slots__ = ("should_process", "previous")
    SHOULD_PROCESS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    should_process: bool
    previous: ProcessedAction
    def __init__(self, should_process: _Optional[bool] = ..., previous: _Optional[_Union[ProcessedAction, _Mapping]] = ...) -> None: ...

class RecordProcessedRequest(_message.Message):
    __slots__ = ("workflow_key", "action_id", "result_hash", "version", "ttl_seconds", "namespace")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    action_id: str
    result_hash: str
    version: int
    ttl_seconds: int
    namespace: str
    def __init__(self, workflow_key: _Optional[str] = ..., action_id: _Optional[str] = ..., result_hash: _Optional[str] = ..., version: _Optional[int] = ..., ttl_seconds: _Optional[int] = ..., namespace: _Optional[str] = ...) -> None: ...

class RecordProcessedResponse(_message.Message):
    __slots__ = ("recorded", "record")
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    recorded: bool
    record: ProcessedAction
    def __init__(self, recorded: _Optional[bool] = ..., record: _Optional[_Union[ProcessedAction, _Mapping]] = ...) -> None: ...

class CleanupExpiredRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CleanupExpiredResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...
