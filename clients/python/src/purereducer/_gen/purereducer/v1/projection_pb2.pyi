import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("id", "source", "namespace", "workflow_key", "version", "event_type", "error", "created_at", "replayed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    source: str
    namespace: str
    workflow_key: str
    version: int
    event_type: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    replayed_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., source: _Optional[str] = ..., namespace: _Optional[str] = ..., workflow_key: _Optional[str] = ..., version: _Optional[int] = ..., event_type: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class ReplayDeadLetterRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ReplayDeadLetterResponse(_message.Message):
    __slots__ = ("applied", "message")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    message: str
    def __init__(self, applied: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class Projection(_message.Message):
    __slots__ = ("workflow_key", "version", "tag", "last_action", "namespace", "updated_at", "indices", "extras")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    version: int
    tag: str
    last_action: str
    namespace: str
    updated_at: _timestamp_pb2.Timestamp
    indices: _struct_pb2.Struct
    extras: _struct_pb2.Struct
    def __init__(self, workflow_key: _Optional[str] = ..., version: _Optional[int] = ..., tag: _Optional[str] = ..., last_action: _Optional[str] = ..., namespace: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., indices: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., extras: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetProjectionRequest(_message.Message):
    __slots__ = ("workflow_key", "min_version", "max_wait_ms", "namespace")
    WORKFLOW_KEY_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    workflow_key: str
    min_version: int
    max_wait_ms: int
    namespace: str
    def __init__(self, workflow_key: _Optional[str] = ..., min_version: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetProjectionResponse(_message.Message):
    __slots__ = ("projection", "from_canonical")
    PROJECTION_FIELD_NUMBER: _ClassVar[int]
    FROM_CANONICAL_FIELD_NUMBER: _ClassVar[int]
    projection: Projection
    from_canonical: bool
    def __init__(self, projection: _Optional[_Union[Projection, _Mapping]] = ..., from_canonical: _Optional[bool] = ...) -> None: ...

class ListWatermarksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Watermark(_message.Message):
    __slots__ = ("topic", "partition", "offset", "updated_at")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    offset: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListWatermarksResponse(_message.Message):
    __slots__ = ("watermarks",)
    WATERMARKS_FIELD_NUMBER: _ClassVar[int]
    watermarks: _containers.RepeatedCompositeFieldContainer[Watermark]
    def __init__(self, watermarks: _Optional[_Iterable[_Union[Watermark, _Mapping]]] = ...) -> None: ...
