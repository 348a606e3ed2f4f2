from google.protobuf import struct_pb2 as _struct_pb2
from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReduceRequest(_message.Message):
    __slots__ = ("state", "version", "action")
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    state: _struct_pb2.Struct
    version: int
    action: _types_pb2.Action
    def __init__(self, state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., action: _Optional[_Union[_types_pb2.Action, _Mapping]] = ...) -> None: ...

class ReduceResponse(_message.Message):
    __slots__ = ("reduced", "rejected")
    class Reduced(_message.Message):
        __slots__ = ("state", "intents")
        STATE_FIELD_NUMBER: _ClassVar[int]
        INTENTS_FIELD_NUMBER: _ClassVar[int]
        state: _struct_pb2.Struct
        intents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Intent]
        def __init__(self, state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., intents: _Optional[_Iterable[_Union[_types_pb2.Intent, _Mapping]]] = ...) -> None: ...
    class Rejected(_message.Message):
        __slots__ = ("reason",)
        REASON_FIELD_NUMBER: _ClassVar[int]
        reason: str
        def __init__(self, reason: _Optional[str] = ...) -> None: ...
    REDUCED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    reduced: ReduceResponse.Reduced
    rejected: ReduceResponse.Rejected
    def __init__(self, reduced: _Optional[_Union[ReduceResponse.Reduced, _Mapping]] = ..., rejected: _Optional[_Union[ReduceResponse.Rejected, _Mapping]] = ...) -> None: ...
