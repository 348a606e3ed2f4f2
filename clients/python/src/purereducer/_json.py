"""google.protobuf.Struct <-> plain JSON-like Python values."""

from typing import Any, Mapping, Optional

from google.protobuf import json_format, struct_pb2


def to_struct(value: Optional[Mapping[str, Any]]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if value:
        struct.update(value)
    return struct


def from_struct(struct: struct_pb2.Struct) -> dict:
    return plain(json_format.MessageToDict(struct))


def plain(value: Any) -> Any:
    # Struct numbers are doubles; give back 42 rather than 42.0, as JSON would.
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
