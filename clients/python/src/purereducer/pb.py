"""The generated message and stub modules under short names, for what the client does not wrap.

    from purereducer.pb import reducer_pb2, reducer_pb2_grpc
"""

from ._gen.purereducer.v1 import (  # noqa: F401
    action_dedup_pb2,
    action_dedup_pb2_grpc,
    canonical_store_pb2,
    canonical_store_pb2_grpc,
    event_bus_pb2,
    event_bus_pb2_grpc,
    events_pb2,
    projection_pb2,
    projection_pb2_grpc,
    reducer_function_pb2,
    reducer_function_pb2_grpc,
    reducer_pb2,
    reducer_pb2_grpc,
    types_pb2,
)
