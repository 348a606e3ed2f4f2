"""Serve a reducer written in Python as a ReducerFunction endpoint.

A workflow type declared with `reducer = "remote"` and `endpoint = "http://HOST:PORT"` in the
reducerd config calls it for every action:

    from purereducer.reducer_function import Reduced, Rejected, serve_reducer

    def price(state, version, action):
        if action["action_type"] != "add":
            return Rejected(f"unknown action {action['action_type']}")
        total = state.get("total", 0) + action["payload"]["amount"]
        return Reduced({**state, "total": total})

    server, port = serve_reducer(price, port=7000)
    server.wait_for_termination()

The function must be pure: the platform may call it again for the same input (on a version
conflict it re-reads and re-reduces).
"""

from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Tuple, Union

import grpc

from . import _json
from .pb import reducer_function_pb2, reducer_function_pb2_grpc, types_pb2
from .types import Intent


@dataclass(frozen=True)
class Reduced:
    """The next state and the intents (Intent or {"intent_type", "payload"} dicts) to publish."""

    state: Mapping[str, Any]
    intents: list = field(default_factory=list)


@dataclass(frozen=True)
class Rejected:
    """The action is refused; reducerd answers REJECTED with this reason."""

    reason: str


ReducerFn = Callable[[dict, int, dict], Union[Reduced, Rejected]]


class _Servicer(reducer_function_pb2_grpc.ReducerFunctionServicer):
    def __init__(self, fn: ReducerFn):
        self._fn = fn

    def Reduce(self, request, context):
        a = request.action
        action = {
            "action_id": a.action_id,
            "workflow_key": a.workflow_key,
            "workflow_type": a.workflow_type,
            "action_type": a.action_type,
            "payload": _json.from_struct(a.payload),
            "correlation_id": a.correlation_id,
            "namespace": a.namespace,
        }
        try:
            outcome = self._fn(_json.from_struct(request.state), request.version, action)
        except Exception as err:  # a bug in the reducer, not a refusal: let reducerd see an error
            context.abort(grpc.StatusCode.INTERNAL, f"reducer raised {type(err).__name__}: {err}")
        if isinstance(outcome, Rejected):
            return reducer_function_pb2.ReduceResponse(
                rejected=reducer_function_pb2.ReduceResponse.Rejected(reason=outcome.reason))
        if not isinstance(outcome, Reduced):
            context.abort(grpc.StatusCode.INTERNAL,
                          f"reducer returned {type(outcome).__name__}, not Reduced or Rejected")
        return reducer_function_pb2.ReduceResponse(
            reduced=reducer_function_pb2.ReduceResponse.Reduced(
                state=_json.to_struct(outcome.state),
                intents=[_intent(i) for i in outcome.intents],
            ))


def _intent(intent: Union[Intent, Mapping[str, Any]]) -> types_pb2.Intent:
    if isinstance(intent, Intent):
        intent_type, payload = intent.intent_type, intent.payload
    else:
        intent_type, payload = intent["intent_type"], intent.get("payload")
    return types_pb2.Intent(intent_type=intent_type, payload=_json.to_struct(payload))


def serve_reducer(
    fn: ReducerFn, port: int = 0, host: str = "127.0.0.1", max_workers: int = 8
) -> Tuple[grpc.Server, int]:
    """Starts a gRPC server for `fn` and returns it with its port (a free one when port=0).
    Stop it with `server.stop(grace)`."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    reducer_function_pb2_grpc.add_ReducerFunctionServicer_to_server(_Servicer(fn), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return server, bound
