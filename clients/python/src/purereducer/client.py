"""A thin, synchronous client over the generated gRPC stubs."""

import os
import random
import time
import uuid
from datetime import datetime
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Union

import grpc
from google.protobuf import timestamp_pb2

from . import _convert, _json
from .pb import (
    action_dedup_pb2,
    action_dedup_pb2_grpc,
    canonical_store_pb2,
    canonical_store_pb2_grpc,
    event_bus_pb2,
    event_bus_pb2_grpc,
    projection_pb2,
    projection_pb2_grpc,
    reducer_pb2,
    reducer_pb2_grpc,
    types_pb2,
)
from .types import (
    ActionResult,
    CommitResult,
    Completion,
    DeadLetter,
    DedupCheck,
    Event,
    HistoryPage,
    Projection,
    Published,
    PureReducerError,
    ReplayResult,
    Watermark,
    WorkflowPage,
    WorkflowState,
)

# Worth another try with the same action id: the server never saw the call, or we stopped
# waiting before it answered. The action id makes a repeat apply at most once.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

StrPath = Union[str, "os.PathLike[str]"]


class Client:
    """Talks to reducerd at `target` ("host:port").

    `tls=True` opens a TLS channel and verifies the server against `ca_file` (a PEM file) or
    `root_certificates` (PEM bytes), or the system roots when neither is given. A server that
    asks for client certificates gets `client_cert` and `client_key` (PEM files, both or
    neither).

    `token` is sent as `authorization: Bearer <token>` on every call, streams included. It is
    sent on a plaintext channel too, for a reducerd reached through a local TLS-terminating
    proxy or sidecar; anywhere else a token over plaintext can be read off the wire, so use
    `tls=True`.
    """

    def __init__(
        self,
        target: str,
        tls: bool = False,
        token: Optional[str] = None,
        root_certificates: Optional[bytes] = None,
        ca_file: Optional[StrPath] = None,
        client_cert: Optional[StrPath] = None,
        client_key: Optional[StrPath] = None,
    ):
        if tls:
            creds = _tls_credentials(root_certificates, ca_file, client_cert, client_key)
            self._channel = grpc.secure_channel(target, creds)
        else:
            given = [name for name, value in (("root_certificates", root_certificates),
                                              ("ca_file", ca_file),
                                              ("client_cert", client_cert),
                                              ("client_key", client_key)) if value is not None]
            if given:
                raise ValueError(f"TLS options without tls=True: {', '.join(given)}")
            self._channel = grpc.insecure_channel(target)
        # Metadata on each call rather than call credentials: grpc refuses call credentials on
        # plaintext channels, and a token must work behind a TLS-terminating proxy as well.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._reducer = reducer_pb2_grpc.ReducerServiceStub(self._channel)
        self._store = canonical_store_pb2_grpc.CanonicalStoreServiceStub(self._channel)
        self._dedup = action_dedup_pb2_grpc.ActionDedupServiceStub(self._channel)
        self._bus = event_bus_pb2_grpc.EventBusServiceStub(self._channel)
        self._projection = projection_pb2_grpc.ProjectionServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- ReducerService ---------------------------------------------------------------

    def handle_action(
        self,
        workflow_key: str,
        workflow_type: str,
        action_type: str,
        payload: Optional[Mapping[str, Any]] = None,
        action_id: Optional[str] = None,
        namespace: Optional[str] = None,
        correlation_id: Optional[str] = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> ActionResult:
        """Applies an action and returns its outcome. UNAVAILABLE and DEADLINE_EXCEEDED are
        retried up to `retries` times with the same action id (and correlation id), so the
        action applies once; a retry after a lost reply comes back as DUPLICATE."""
        request = reducer_pb2.HandleActionRequest(
            action=_action(workflow_key, workflow_type, action_type, payload, action_id,
                           namespace, correlation_id)
        )
        reply = self._retrying(self._reducer.HandleAction, request, timeout, retries)
        return _convert.action_result(reply)

    def retry_action(self, workflow_key: str, action_id: str, namespace: str = "",
                     timeout: float = 10.0) -> ActionResult:
        """Applies again an action whose last attempt ended GAVE_UP (admin), with the id, type
        and payload history kept, and returns its outcome as handle_action would. Raises
        PureReducerError: FAILED_PRECONDITION when the action did not give up (the details
        say how it ended), NOT_FOUND when history has no trace of it. Not retried on
        UNAVAILABLE: after a lost reply the repeat would answer FAILED_PRECONDITION, so
        read the history instead."""
        reply = self._call(
            self._reducer.RetryAction,
            reducer_pb2.RetryActionRequest(namespace=namespace, workflow_key=workflow_key,
                                           action_id=action_id),
            timeout,
        )
        return _convert.action_result(reply.outcome)

    # --- CanonicalStoreService --------------------------------------------------------

    def get_state(self, workflow_key: str, timeout: float = 10.0,
                  namespace: str = "") -> WorkflowState:
        """The current state; raises PureReducerError(NOT_FOUND) for an unknown key. A
        workflow is (namespace, workflow_key); an empty namespace is "default"."""
        reply = self._call(self._store.GetState,
                           canonical_store_pb2.GetStateRequest(workflow_key=workflow_key,
                                                               namespace=namespace),
                           timeout)
        return WorkflowState(
            workflow_key=reply.workflow_key,
            version=reply.version,
            state=_json.from_struct(reply.state),
            workflow_type=reply.workflow_type,
            namespace=reply.namespace,
            updated_at=_convert.datetime_of(reply, "updated_at"),
        )

    def try_commit(
        self,
        workflow_key: str,
        expected_version: int,
        state: Mapping[str, Any],
        workflow_type: str = "",
        namespace: str = "",
        provenance: Optional[Mapping[str, str]] = None,
        timeout: float = 10.0,
    ) -> CommitResult:
        """Compare-and-set: a conflict is an ordinary result, not an exception."""
        request = canonical_store_pb2.TryCommitRequest(
            workflow_key=workflow_key,
            expected_version=expected_version,
            state=_json.to_struct(state),
            provenance=types_pb2.Provenance(**(provenance or {})),
            workflow_type=workflow_type,
            namespace=namespace,
        )
        reply = self._call(self._store.TryCommit, request, timeout)
        if reply.WhichOneof("outcome") == "committed":
            return CommitResult(committed=True, version=reply.committed.version)
        return CommitResult(committed=False, current_version=reply.conflict.current_version)

    def get_history(
        self,
        workflow_key: str,
        *,
        namespace: str = "",
        from_version: int = 0,
        limit: int = 0,
        reverse: bool = False,
        page_token: str = "",
        timeout: float = 10.0,
    ) -> HistoryPage:
        """A page of what happened to a workflow: every commit, refusal and give-up history
        retention keeps, oldest first (newest first with `reverse`). `from_version` is where
        to start (0: the oldest kept, or with `reverse` the latest); `limit` caps the page
        (0: 100, at most 1000). For the next page pass the page's `next_page_token` as
        `page_token`, with the same `reverse`; it is "" on the last page."""
        reply = self._call(
            self._store.GetHistory,
            canonical_store_pb2.GetHistoryRequest(
                workflow_key=workflow_key, namespace=namespace, from_version=from_version,
                limit=limit, reverse=reverse, page_token=page_token),
            timeout,
        )
        return HistoryPage(
            workflow_key=reply.workflow_key,
            namespace=reply.namespace,
            entries=[_convert.history_entry(e) for e in reply.entries],
            next_page_token=reply.next_page_token,
        )

    def list_workflows(
        self,
        *,
        namespace: str = "",
        workflow_type: str = "",
        key_prefix: str = "",
        updated_after: Optional[datetime] = None,
        updated_before: Optional[datetime] = None,
        tag: str = "",
        limit: int = 0,
        page_token: str = "",
        timeout: float = 10.0,
    ) -> WorkflowPage:
        """A page of the workflows of a namespace ("default" when empty) that match every
        filter given, in workflow key order (bytewise). `updated_after` (inclusive) and
        `updated_before` (exclusive) bound the last commit time (naive datetimes are UTC);
        `tag` matches the state's "status". `limit` caps the page (0: 100, at most 1000).
        For the next page pass `next_page_token` as `page_token` with the same filter; it is
        "" on the last page."""
        reply = self._call(
            self._store.ListWorkflows,
            canonical_store_pb2.ListWorkflowsRequest(
                namespace=namespace, workflow_type=workflow_type, key_prefix=key_prefix,
                updated_after=_timestamp(updated_after), updated_before=_timestamp(updated_before),
                tag=tag, limit=limit, page_token=page_token),
            timeout,
        )
        return WorkflowPage(
            workflows=[_convert.workflow_summary(w) for w in reply.workflows],
            next_page_token=reply.next_page_token,
        )

    def delete_workflow(self, workflow_key: str, expected_version: int = 0, reason: str = "",
                        namespace: str = "", timeout: float = 10.0) -> int:
        """Deletes a workflow (admin) and returns the version the deletion took (the last
        version plus one): its state is gone (get_state raises NOT_FOUND), its history stays
        as retention keeps it (an entry with `deleted` set), and subscribers get a
        workflow_deleted event. Versions never go back: the key's next action starts a new
        workflow from the initial state at the version after. `expected_version` is the
        version the workflow must be at (0: whatever its version); `reason` is kept in the
        history entry and the event. Raises PureReducerError: FAILED_PRECONDITION when it is at
        another version (nothing is deleted), NOT_FOUND when it does not exist or was deleted
        already. Not retried on UNAVAILABLE: after a lost reply the repeat would answer
        NOT_FOUND, so read the state or the history instead."""
        reply = self._call(
            self._store.DeleteWorkflow,
            canonical_store_pb2.DeleteWorkflowRequest(
                namespace=namespace, workflow_key=workflow_key,
                expected_version=expected_version, reason=reason),
            timeout,
        )
        return reply.version

    # --- ActionDedupService -----------------------------------------------------------

    def should_process(self, workflow_key: str, action_id: str, timeout: float = 10.0,
                       namespace: str = "") -> DedupCheck:
        reply = self._call(
            self._dedup.ShouldProcess,
            action_dedup_pb2.ShouldProcessRequest(workflow_key=workflow_key, action_id=action_id,
                                                  namespace=namespace),
            timeout,
        )
        previous = _convert.processed(reply.previous) if reply.HasField("previous") else None
        return DedupCheck(should_process=reply.should_process, previous=previous)

    def record_processed(
        self,
        workflow_key: str,
        action_id: str,
        result_hash: str,
        version: int,
        ttl_seconds: int = 0,
        timeout: float = 10.0,
        namespace: str = "",
    ) -> bool:
        """Records an action id; False when a record already existed (it is kept)."""
        reply = self._call(
            self._dedup.RecordProcessed,
            action_dedup_pb2.RecordProcessedRequest(
                workflow_key=workflow_key, action_id=action_id, result_hash=result_hash,
                version=version, ttl_seconds=ttl_seconds, namespace=namespace),
            timeout,
        )
        return reply.recorded

    def cleanup_expired(self, timeout: float = 30.0) -> int:
        """Deletes expired dedup records; returns how many."""
        return self._call(self._dedup.CleanupExpired,
                          action_dedup_pb2.CleanupExpiredRequest(), timeout).deleted

    # --- EventBusService --------------------------------------------------------------

    def publish_action(
        self,
        workflow_key: str,
        workflow_type: str,
        action_type: str,
        payload: Optional[Mapping[str, Any]] = None,
        action_id: Optional[str] = None,
        namespace: Optional[str] = None,
        correlation_id: Optional[str] = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> Published:
        """Queues an action; wait_for_completion(result.correlation_id) gives its outcome.
        Retried like handle_action: a repeat of the same action id applies once."""
        request = event_bus_pb2.PublishActionRequest(
            action=_action(workflow_key, workflow_type, action_type, payload, action_id,
                           namespace, correlation_id)
        )
        reply = self._retrying(self._bus.PublishAction, request, timeout, retries)
        return Published(correlation_id=reply.correlation_id, action_id=reply.action_id)

    def wait_for_completion(self, correlation_id: str, timeout_ms: int = 0,
                            action_id: Optional[str] = None,
                            namespace: str = "") -> Completion:
        """The outcome of a published action; raises PureReducerError(DEADLINE_EXCEEDED)
        when it does not finish within timeout_ms (the server's default when 0). With
        several actions under one correlation id, action_id picks one (Published.action_id);
        without it the first to complete answers, and the result names its action. The
        completion is only found in the namespace the action was published in."""
        # The server enforces timeout_ms; our own deadline only guards against a lost server.
        deadline = (timeout_ms / 1000 if timeout_ms else 60.0) + 5.0
        reply = self._call(
            self._bus.WaitForCompletion,
            event_bus_pb2.WaitForCompletionRequest(correlation_id=correlation_id,
                                                  timeout_ms=timeout_ms,
                                                  action_id=action_id or "",
                                                  namespace=namespace),
            deadline,
        )
        return Completion(
            correlation_id=reply.correlation_id,
            action_id=reply.action_id,
            workflow_key=reply.workflow_key,
            status=_convert.status(reply.status),
            version=reply.version,
            result_hash=reply.result_hash,
            rejection_reason=reply.rejection_reason,
            namespace=reply.namespace,
        )

    def subscribe(
        self,
        namespaces: Iterable[str] = (),
        workflow_types: Iterable[str] = (),
        workflow_keys: Iterable[str] = (),
        timeout: Optional[float] = None,
        from_version: int = 0,
    ) -> Iterator[Event]:
        """Yields matching events, in version order per key, until the stream ends.
        Closing the iterator (or leaving a `for` loop early) cancels the stream.

        With `from_version`, it first replays from history the events of each workflow
        `workflow_keys` names, from that version on, then follows live events with no gap and
        no repeat at the seam. The keys are those of the one namespace `namespaces` names
        ("default" when empty). Iterating raises PureReducerError: INVALID_ARGUMENT without
        `workflow_keys` or with more than one namespace, OUT_OF_RANGE when history retention
        already removed a version asked for. 0 (the default) follows live events only."""
        request = event_bus_pb2.SubscribeRequest(
            filter=event_bus_pb2.SubscriptionFilter(
                namespaces=list(namespaces),
                workflow_types=list(workflow_types),
                workflow_keys=list(workflow_keys),
            ),
            from_version=from_version,
        )
        stream = self._bus.Subscribe(request, timeout=timeout, metadata=self._metadata)
        return _convert.events(stream)

    # --- ProjectionService ------------------------------------------------------------

    def get_projection(self, workflow_key: str, min_version: int = 0, max_wait_ms: int = 0,
                       namespace: str = "") -> Projection:
        """The projection, after waiting up to max_wait_ms for it to reach min_version."""
        reply = self._call(
            self._projection.GetProjection,
            projection_pb2.GetProjectionRequest(workflow_key=workflow_key, min_version=min_version,
                                                max_wait_ms=max_wait_ms, namespace=namespace),
            max_wait_ms / 1000 + 10.0,
        )
        p = reply.projection
        return Projection(
            workflow_key=p.workflow_key,
            version=p.version,
            tag=p.tag,
            last_action=p.last_action,
            namespace=p.namespace,
            updated_at=_convert.datetime_of(p, "updated_at"),
            indices=_json.from_struct(p.indices),
            extras=_json.from_struct(p.extras),
            from_canonical=reply.from_canonical,
        )

    def list_watermarks(self, timeout: float = 10.0) -> list:
        reply = self._call(self._projection.ListWatermarks,
                           projection_pb2.ListWatermarksRequest(), timeout)
        return [
            Watermark(topic=w.topic, partition=w.partition, offset=w.offset,
                      updated_at=_convert.datetime_of(w, "updated_at"))
            for w in reply.watermarks
        ]

    def list_dead_letters(self, limit: int = 0, timeout: float = 10.0) -> List[DeadLetter]:
        """The events the pipeline could not apply, newest first (admin; a token sees only
        its namespaces' letters). `limit` caps the list (0: 100, at most 1000)."""
        reply = self._call(self._projection.ListDeadLetters,
                           projection_pb2.ListDeadLettersRequest(limit=limit), timeout)
        return [_convert.dead_letter(d) for d in reply.dead_letters]

    def replay_dead_letter(self, dead_letter_id: int, timeout: float = 10.0) -> ReplayResult:
        """Writes a dead-lettered StateCommitted event to its projection, unless it already
        has that version or a newer one, and marks the letter replayed (admin). Raises
        PureReducerError: NOT_FOUND for an unknown id, FAILED_PRECONDITION for a letter
        replayed before or one that cannot be decoded."""
        reply = self._call(self._projection.ReplayDeadLetter,
                           projection_pb2.ReplayDeadLetterRequest(id=dead_letter_id), timeout)
        return ReplayResult(applied=reply.applied, message=reply.message)

    # --- plumbing ---------------------------------------------------------------------

    def _call(self, method, request, timeout):
        try:
            return method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise PureReducerError(err.code(), err.details() or "") from err

    def _retrying(self, method, request, timeout, retries):
        for attempt in range(retries + 1):
            try:
                return self._call(method, request, timeout)
            except PureReducerError as err:
                if err.code not in RETRYABLE or attempt == retries:
                    raise
                # Full jitter, 50 ms doubling up to 1 s, so retrying clients spread out.
                time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
        raise AssertionError("unreachable")


def _tls_credentials(root_certificates, ca_file, client_cert, client_key) -> grpc.ChannelCredentials:
    if root_certificates is not None and ca_file is not None:
        raise ValueError("give ca_file or root_certificates, not both")
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together")
    if ca_file is not None:
        root_certificates = _read(ca_file)
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=_read(client_key) if client_key is not None else None,
        certificate_chain=_read(client_cert) if client_cert is not None else None,
    )


def _read(path: StrPath) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _action(workflow_key, workflow_type, action_type, payload, action_id, namespace, correlation_id):
    # Ids are fixed here, once, so that every retry sends the very same action.
    return types_pb2.Action(
        action_id=action_id or str(uuid.uuid4()),
        workflow_key=workflow_key,
        workflow_type=workflow_type,
        action_type=action_type,
        payload=_json.to_struct(payload),
        correlation_id=correlation_id or str(uuid.uuid4()),
        namespace=namespace or "",
    )


def _timestamp(value: Optional[datetime]) -> Optional[timestamp_pb2.Timestamp]:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
