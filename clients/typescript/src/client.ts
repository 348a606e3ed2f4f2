// A thin client over the generated Connect stubs, speaking gRPC over HTTP/2.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as http2 from "node:http2";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client as Stub, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { ActionDedupService, type ProcessedAction as ProcessedActionPb } from "./gen/purereducer/v1/action_dedup_pb.js";
import {
  CanonicalStoreService,
  type HistoryEntry as HistoryEntryPb,
  type WorkflowSummary as WorkflowSummaryPb,
} from "./gen/purereducer/v1/canonical_store_pb.js";
import { EventBusService } from "./gen/purereducer/v1/event_bus_pb.js";
import { ProjectionService, type DeadLetter as DeadLetterPb } from "./gen/purereducer/v1/projection_pb.js";
import { ReducerService, type HandleActionResponse } from "./gen/purereducer/v1/reducer_pb.js";
import { ActionSchema, ActionStatus, type Intent as IntentPb } from "./gen/purereducer/v1/types_pb.js";
import type {
  ActionResult,
  CommitResult,
  Completion,
  DeadLetter,
  Event,
  HistoryEntry,
  HistoryPage,
  Intent,
  ProcessedAction,
  Projection,
  ReplayResult,
  Status,
  Watermark,
  WorkflowPage,
  WorkflowState,
  WorkflowSummary,
} from "./types.js";

export { Code, ConnectError };

export interface ClientOptions {
  /** Connect with TLS (HTTP/2 over TLS). An https:// target means the same. */
  tls?: boolean;
  /** Sent as `authorization: Bearer <token>` on every call, streams included. It goes out on
   * plaintext connections as well, for a server behind a local TLS-terminating proxy; across a
   * network, use TLS. */
  token?: string;
  /** Path of a PEM file with the CAs that sign the server's certificate; the system roots when
   * neither this nor rootCertificates is given. */
  caFile?: string;
  /** The same CAs as PEM text, instead of caFile. */
  rootCertificates?: string | Buffer;
  /** Paths of PEM files with a client certificate (chain, leaf first) and its key, for a server
   * that requires client certificates (mutual TLS). Both or neither. */
  clientCert?: string;
  clientKey?: string;
}

export interface ActionInput {
  workflowKey: string;
  workflowType: string;
  actionType: string;
  payload?: JsonObject;
  actionId?: string;
  namespace?: string;
  correlationId?: string;
  /** Per attempt, in milliseconds. */
  timeoutMs?: number;
  /** Extra attempts on UNAVAILABLE or DEADLINE_EXCEEDED, with the same action id. */
  retries?: number;
}

/** Which page of a workflow's history getHistory reads. */
export interface HistoryInput {
  workflowKey: string;
  /** "default" when empty. */
  namespace?: string;
  /** The first version to return (0: the oldest kept, or with `reverse` the latest). */
  fromVersion?: number;
  /** At most this many entries (0: 100; at most 1000). */
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
  /** The previous page's nextPageToken, with the same `reverse`. */
  pageToken?: string;
  timeoutMs?: number;
}

/** Which workflows listWorkflows reads: those matching every filter given. */
export interface WorkflowFilter {
  /** "default" when empty. */
  namespace?: string;
  workflowType?: string;
  /** Workflow keys starting with this. */
  keyPrefix?: string;
  /** Last committed at or after this time. */
  updatedAfter?: Date;
  /** Last committed before this time. */
  updatedBefore?: Date;
  /** The state's "status" (for fsm workflows, the FSM state). */
  tag?: string;
  /** At most this many (0: 100; at most 1000). */
  limit?: number;
  /** The previous page's nextPageToken, with the same filter. */
  pageToken?: string;
  timeoutMs?: number;
}

// Worth another try with the same action id: the server never saw the call, or we stopped
// waiting before it answered. The action id makes a repeat apply at most once.
const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded]);
const DEFAULT_TIMEOUT_MS = 10_000;

export class Client {
  private readonly sessions: Http2SessionManager;
  private readonly reducer: Stub<typeof ReducerService>;
  private readonly store: Stub<typeof CanonicalStoreService>;
  private readonly dedup: Stub<typeof ActionDedupService>;
  private readonly bus: Stub<typeof EventBusService>;
  private readonly projection: Stub<typeof ProjectionService>;

  /** `target` is "host:port" (or a full http:// / https:// URL; https:// means TLS). */
  constructor(target: string, options: ClientOptions = {}) {
    const baseUrl = target.includes("://") ? target : `${options.tls ? "https" : "http"}://${target}`;
    const secure = new URL(baseUrl).protocol === "https:";
    if (options.tls !== undefined && options.tls !== secure) {
      throw new Error(`tls: ${options.tls} contradicts the target ${target}`);
    }
    const interceptors: Interceptor[] = [];
    if (options.token) {
      const header = `Bearer ${options.token}`;
      interceptors.push((next) => (req) => {
        req.header.set("authorization", header);
        return next(req);
      });
    }
    const nodeOptions = tlsOptions(options, secure);
    // Our own session manager, so close() can end the HTTP/2 connection and let node exit.
    this.sessions = new Http2SessionManager(baseUrl, {}, nodeOptions);
    const transport = createGrpcTransport({ baseUrl, interceptors, sessionManager: this.sessions });
    this.reducer = createClient(ReducerService, transport);
    this.store = createClient(CanonicalStoreService, transport);
    this.dedup = createClient(ActionDedupService, transport);
    this.bus = createClient(EventBusService, transport);
    this.projection = createClient(ProjectionService, transport);
  }

  close(): void {
    this.sessions.abort();
  }

  /** Applies an action. UNAVAILABLE and DEADLINE_EXCEEDED are retried with the same action id
   * (and correlation id), so it applies once; a retry after a lost reply comes back DUPLICATE. */
  async handleAction(input: ActionInput): Promise<ActionResult> {
    const action = toAction(input);
    const r = await retrying(input, (timeoutMs) => this.reducer.handleAction({ action }, { timeoutMs }));
    return actionResult(r);
  }

  /** Applies again an action whose last attempt ended GAVE_UP (admin), with the id, type and
   * payload history kept, and resolves to its outcome as handleAction would. Rejects with
   * Code.FailedPrecondition when the action did not give up (the message says how it ended),
   * Code.NotFound when history has no trace of it. Not retried on UNAVAILABLE: after a lost
   * reply a repeat would answer FailedPrecondition, so read the history instead. */
  async retryAction(input: {
    workflowKey: string;
    actionId: string;
    namespace?: string;
    timeoutMs?: number;
  }): Promise<ActionResult> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, ...request } = input;
    const r = await this.reducer.retryAction(request, { timeoutMs });
    if (!r.outcome) throw new ConnectError("RetryAction answered without an outcome", Code.Internal);
    return actionResult(r.outcome);
  }

  /** The current state; rejects with ConnectError(Code.NotFound) for an unknown key. A workflow
   * is (namespace, workflowKey); an empty namespace is "default". */
  async getState(workflowKey: string, timeoutMs = DEFAULT_TIMEOUT_MS, namespace = ""): Promise<WorkflowState> {
    const r = await this.store.getState({ workflowKey, namespace }, { timeoutMs });
    return {
      workflowKey: r.workflowKey,
      version: Number(r.version),
      state: r.state ?? {},
      workflowType: r.workflowType,
      namespace: r.namespace,
      updatedAt: date(r.updatedAt),
    };
  }

  /** Compare-and-set: a conflict is an ordinary result, not an error. */
  async tryCommit(input: {
    workflowKey: string;
    expectedVersion: number;
    state: JsonObject;
    workflowType?: string;
    namespace?: string;
    provenance?: { actionId?: string; correlationId?: string; actor?: string; reason?: string };
    timeoutMs?: number;
  }): Promise<CommitResult> {
    const r = await this.store.tryCommit(
      { ...input, expectedVersion: BigInt(input.expectedVersion) },
      { timeoutMs: input.timeoutMs ?? DEFAULT_TIMEOUT_MS },
    );
    if (r.outcome.case === "committed") return { committed: true, version: Number(r.outcome.value.version) };
    return { committed: false, currentVersion: Number(r.outcome.value?.currentVersion ?? 0) };
  }

  /** A page of what happened to a workflow: every commit, refusal and give-up history retention
   * keeps, oldest first (newest first with `reverse`). For the next page pass nextPageToken as
   * `pageToken` with the same `reverse`; it is "" on the last page. */
  async getHistory(input: HistoryInput): Promise<HistoryPage> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, fromVersion = 0, ...request } = input;
    const r = await this.store.getHistory({ ...request, fromVersion: BigInt(fromVersion) }, { timeoutMs });
    return {
      workflowKey: r.workflowKey,
      namespace: r.namespace,
      entries: r.entries.map(historyEntry),
      nextPageToken: r.nextPageToken,
    };
  }

  /** A page of the workflows of a namespace that match every filter given, in workflow key
   * order (bytewise). For the next page pass nextPageToken as `pageToken` with the same filter;
   * it is "" on the last page. */
  async listWorkflows(filter: WorkflowFilter = {}): Promise<WorkflowPage> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, updatedAfter, updatedBefore, ...request } = filter;
    const r = await this.store.listWorkflows(
      {
        ...request,
        updatedAfter: updatedAfter && timestampFromDate(updatedAfter),
        updatedBefore: updatedBefore && timestampFromDate(updatedBefore),
      },
      { timeoutMs },
    );
    return { workflows: r.workflows.map(workflowSummary), nextPageToken: r.nextPageToken };
  }

  /** Deletes a workflow (admin) and resolves to the version the deletion took (the last version
   * plus one): its state is gone (getState rejects with Code.NotFound), its history stays as
   * retention keeps it (an entry with `deleted` set), and subscribers get a workflowDeleted
   * event. Versions never go back: the key's next action starts a new workflow from the initial
   * state at the version after. Rejects with Code.FailedPrecondition when the workflow is at
   * another version than `expectedVersion` (nothing is deleted), Code.NotFound when it does not
   * exist or was deleted already. Not retried on UNAVAILABLE: after a lost reply a repeat would
   * reject with Code.NotFound, so read the state or the history instead. */
  async deleteWorkflow(input: {
    workflowKey: string;
    /** The version the workflow must be at (0, the default: whatever its version). */
    expectedVersion?: number;
    /** Why; kept in the history entry and the event. */
    reason?: string;
    namespace?: string;
    timeoutMs?: number;
  }): Promise<number> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, expectedVersion = 0, ...request } = input;
    const r = await this.store.deleteWorkflow({ ...request, expectedVersion: BigInt(expectedVersion) }, { timeoutMs });
    return Number(r.version);
  }

  async shouldProcess(
    workflowKey: string,
    actionId: string,
    timeoutMs = DEFAULT_TIMEOUT_MS,
    namespace = "",
  ): Promise<{ shouldProcess: boolean; previous?: ProcessedAction }> {
    const r = await this.dedup.shouldProcess({ workflowKey, actionId, namespace }, { timeoutMs });
    return { shouldProcess: r.shouldProcess, previous: r.previous && processed(r.previous) };
  }

  /** Records an action id; false when a record already existed (it is kept). */
  async recordProcessed(input: {
    workflowKey: string;
    actionId: string;
    resultHash: string;
    version: number;
    ttlSeconds?: number;
    namespace?: string;
  }): Promise<boolean> {
    const r = await this.dedup.recordProcessed(
      { ...input, version: BigInt(input.version) },
      { timeoutMs: DEFAULT_TIMEOUT_MS },
    );
    return r.recorded;
  }

  /** Deletes expired dedup records; resolves to how many. */
  async cleanupExpired(timeoutMs = 30_000): Promise<number> {
    return Number((await this.dedup.cleanupExpired({}, { timeoutMs })).deleted);
  }

  /** Queues an action; waitForCompletion(result.correlationId) gives its outcome. Retried like
   * handleAction: a repeat of the same action id applies once. */
  async publishAction(input: ActionInput): Promise<{ correlationId: string; actionId: string }> {
    const action = toAction(input);
    const r = await retrying(input, (timeoutMs) => this.bus.publishAction({ action }, { timeoutMs }));
    return { correlationId: r.correlationId, actionId: r.actionId };
  }

  /** The outcome of a published action; rejects with Code.DeadlineExceeded when it does not
   * finish within timeoutMs (the server's default when 0). With several actions under one
   * correlation id, actionId picks one; without it the first to complete answers, and the
   * result names its action. The completion is only found in the namespace the action was
   * published in. */
  async waitForCompletion(correlationId: string, timeoutMs = 0, actionId = "", namespace = ""): Promise<Completion> {
    // The server enforces timeoutMs; our deadline only guards against a lost server.
    const deadline = (timeoutMs || 60_000) + 5_000;
    const r = await this.bus.waitForCompletion(
      { correlationId, timeoutMs, actionId, namespace },
      { timeoutMs: deadline },
    );
    return {
      correlationId: r.correlationId,
      actionId: r.actionId,
      workflowKey: r.workflowKey,
      status: status(r.status),
      version: Number(r.version),
      resultHash: r.resultHash,
      rejectionReason: r.rejectionReason,
      namespace: r.namespace,
    };
  }

  /** Matching events, in version order per key. Breaking out of `for await` (or aborting
   * `signal`) cancels the stream. With `fromVersion`, it first replays from history the events
   * of each workflow `workflowKeys` names, from that version on, then follows live events with
   * no gap and no repeat at the seam. */
  async *subscribe(
    filter: {
      namespaces?: string[];
      workflowTypes?: string[];
      workflowKeys?: string[];
      /** Replay each key of `workflowKeys` (of the one namespace `namespaces` names, "default"
       * when empty) from this version on, then follow live. Iterating rejects with
       * Code.InvalidArgument without `workflowKeys` or with more than one namespace, and with
       * Code.OutOfRange when history retention already removed a version asked for. 0 (the
       * default): live events only. */
      fromVersion?: number;
    } = {},
    signal?: AbortSignal,
  ): AsyncGenerator<Event> {
    const { fromVersion = 0, ...match } = filter;
    for await (const r of this.bus.subscribe({ filter: match, fromVersion: BigInt(fromVersion) }, { signal })) {
      const kind = r.event?.kind;
      if (!kind?.case) continue; // an event kind newer than this client
      const m = kind.value;
      const version = Number(kind.case === "reducerGaveUp" ? kind.value.lastSeenVersion : kind.value.version);
      yield { kind: kind.case, workflowKey: m.workflowKey, version, message: m } as Event;
    }
  }

  /** The projection, after waiting up to maxWaitMs for it to reach minVersion. */
  async getProjection(workflowKey: string, minVersion = 0, maxWaitMs = 0, namespace = ""): Promise<Projection> {
    const r = await this.projection.getProjection(
      { workflowKey, minVersion: BigInt(minVersion), maxWaitMs, namespace },
      { timeoutMs: maxWaitMs + DEFAULT_TIMEOUT_MS },
    );
    const p = r.projection;
    return {
      workflowKey: p?.workflowKey ?? workflowKey,
      version: Number(p?.version ?? 0),
      tag: p?.tag ?? "",
      lastAction: p?.lastAction ?? "",
      namespace: p?.namespace ?? "",
      updatedAt: date(p?.updatedAt),
      indices: p?.indices ?? {},
      extras: p?.extras ?? {},
      fromCanonical: r.fromCanonical,
    };
  }

  async listWatermarks(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Watermark[]> {
    const r = await this.projection.listWatermarks({}, { timeoutMs });
    return r.watermarks.map((w) => ({
      topic: w.topic,
      partition: w.partition,
      offset: Number(w.offset),
      updatedAt: date(w.updatedAt),
    }));
  }

  /** The events the pipeline could not apply, newest first (admin; a token sees only its
   * namespaces' letters). `limit` caps the list (0: 100; at most 1000). */
  async listDeadLetters(limit = 0, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<DeadLetter[]> {
    const r = await this.projection.listDeadLetters({ limit }, { timeoutMs });
    return r.deadLetters.map(deadLetter);
  }

  /** Writes a dead-lettered StateCommitted event to its projection, unless it already has that
   * version or a newer one, and marks the letter replayed (admin). Rejects with Code.NotFound for
   * an unknown id, Code.FailedPrecondition for a letter replayed before or one that cannot be
   * decoded. */
  async replayDeadLetter(id: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ReplayResult> {
    const r = await this.projection.replayDeadLetter({ id: BigInt(id) }, { timeoutMs });
    return { applied: r.applied, message: r.message };
  }
}

// The node:tls options for the connection: trusted CAs and the client certificate.
function tlsOptions(options: ClientOptions, secure: boolean): http2.SecureClientSessionOptions {
  const given = (["caFile", "rootCertificates", "clientCert", "clientKey"] as const).filter(
    (name) => options[name] !== undefined,
  );
  if (!secure) {
    if (given.length) throw new Error(`TLS options without TLS: ${given.join(", ")} (set tls: true or use an https:// target)`);
    return {};
  }
  if (options.caFile !== undefined && options.rootCertificates !== undefined) {
    throw new Error("give caFile or rootCertificates, not both");
  }
  if ((options.clientCert === undefined) !== (options.clientKey === undefined)) {
    throw new Error("clientCert and clientKey go together");
  }
  const ca = options.caFile !== undefined ? readFileSync(options.caFile) : options.rootCertificates;
  return {
    ...(ca !== undefined && { ca }),
    ...(options.clientCert !== undefined && { cert: readFileSync(options.clientCert) }),
    ...(options.clientKey !== undefined && { key: readFileSync(options.clientKey) }),
  };
}

function toAction(input: ActionInput) {
  // Ids are fixed here, once, so that every retry sends the very same action.
  return create(ActionSchema, {
    actionId: input.actionId ?? randomUUID(),
    workflowKey: input.workflowKey,
    workflowType: input.workflowType,
    actionType: input.actionType,
    payload: input.payload ?? {},
    correlationId: input.correlationId ?? randomUUID(),
    namespace: input.namespace ?? "",
  });
}

async function retrying<T>(input: ActionInput, call: (timeoutMs: number) => Promise<T>): Promise<T> {
  const retries = input.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await call(input.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    } catch (err) {
      if (attempt >= retries || !RETRYABLE.has(ConnectError.from(err).code)) throw err;
      // Full jitter, 50 ms doubling up to 1 s, so retrying clients spread out.
      const capMs = Math.min(1000, 50 * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * capMs));
    }
  }
}

function actionResult(r: HandleActionResponse): ActionResult {
  return {
    status: status(r.status),
    version: Number(r.version),
    state: r.state ?? {},
    intents: r.intents.map(intent),
    attempts: r.attempts,
    resultHash: r.resultHash,
    rejectionReason: r.rejectionReason,
    correlationId: r.correlationId,
    actionId: r.actionId,
    workflowKey: r.workflowKey,
  };
}

function status(value: ActionStatus): Status {
  return (ActionStatus[value] ?? "UNSPECIFIED") as Status;
}

function intent(i: IntentPb): Intent {
  return { intentType: i.intentType, payload: i.payload ?? {} };
}

function date(ts: Timestamp | undefined): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

function processed(p: ProcessedActionPb): ProcessedAction {
  return {
    workflowKey: p.workflowKey,
    actionId: p.actionId,
    resultHash: p.resultHash,
    version: Number(p.version),
    status: status(p.status),
    expiresAt: date(p.expiresAt),
    namespace: p.namespace,
  };
}

function historyEntry(e: HistoryEntryPb): HistoryEntry {
  return {
    version: Number(e.version),
    status: status(e.status),
    actionId: e.actionId,
    actionType: e.actionType,
    correlationId: e.correlationId,
    state: e.state,
    intents: e.intents.map(intent),
    reason: e.reason,
    resultHash: e.resultHash,
    actor: e.actor,
    recordedAt: date(e.recordedAt),
    workflowType: e.workflowType,
    payload: e.payload,
    deleted: e.deleted,
  };
}

function workflowSummary(w: WorkflowSummaryPb): WorkflowSummary {
  return {
    workflowKey: w.workflowKey,
    namespace: w.namespace,
    workflowType: w.workflowType,
    version: Number(w.version),
    updatedAt: date(w.updatedAt),
    tag: w.tag,
  };
}

function deadLetter(d: DeadLetterPb): DeadLetter {
  return {
    id: Number(d.id),
    source: d.source,
    namespace: d.namespace,
    workflowKey: d.workflowKey,
    version: Number(d.version),
    eventType: d.eventType,
    error: d.error,
    createdAt: date(d.createdAt),
    replayedAt: date(d.replayedAt),
  };
}
