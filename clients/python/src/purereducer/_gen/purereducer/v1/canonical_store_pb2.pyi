import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import types_pb2 as _types_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
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
