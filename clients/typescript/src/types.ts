// The plain results of the client calls: JSON as plain objects, versions as numbers.
import type { JsonObject } from "@bufbuild/protobuf";

import type { IntentEmitted, ReducerGaveUp, StateCommitted, WorkflowDeleted } from "./gen/purereducer/v1/events_pb.js";

/** How an action ended (ActionStatus without its ACTION_STATUS_ prefix). */
export type Status = "UNSPECIFIED" | "COMMITTED" | "DUPLICATE" | "REJECTED" | "GAVE_UP";

export interface Intent {
  intentType: string;
  payload: JsonObject;
}

export interface ActionResult {
  status: Status;
  version: number;
  state: JsonObject;
  intents: Intent[];
  attempts: number;
  resultHash: string;
  rejectionReason: string;
  correlationId: string;
  actionId: string;
  workflowKey: string;
}

export interface WorkflowState {
  workflowKey: string;
  version: number;
  state: JsonObject;
  workflowType: string;
  namespace: string;
  updatedAt?: Date;
}

/** `committed` with the new `version`, or a conflict with the stored `currentVersion`. */
export type CommitResult = { committed: true; version: number } | { committed: false; currentVersion: number };

export interface ProcessedAction {
  workflowKey: string;
  actionId: string;
  resultHash: string;
  version: number;
  status: Status;
  expiresAt?: Date;
  /** The workflow's namespace ("default" when the request left it empty). */
  namespace: string;
}

export interface Completion {
  correlationId: string;
  actionId: string;
  workflowKey: string;
  status: Status;
  version: number;
  resultHash: string;
  rejectionReason: string;
  /** The namespace the action was published in. */
  namespace: string;
}

/** One published event and its generated message. */
export type Event =
  | { kind: "stateCommitted"; workflowKey: string; version: number; message: StateCommitted }
  | { kind: "reducerGaveUp"; workflowKey: string; version: number; message: ReducerGaveUp }
  | { kind: "intentEmitted"; workflowKey: string; version: number; message: IntentEmitted }
  | { kind: "workflowDeleted"; workflowKey: string; version: number; message: WorkflowDeleted };

export interface Projection {
  workflowKey: string;
  version: number;
  tag: string;
  lastAction: string;
  namespace: string;
  updatedAt?: Date;
  indices: JsonObject;
  extras: JsonObject;
  /** True when minVersion was not reached in time and the answer came from the canonical state. */
  fromCanonical: boolean;
}

export interface Watermark {
  topic: string;
  partition: number;
  offset: number;
  updatedAt?: Date;
}

/** One thing that happened to a workflow: a commit, a refusal, a give-up or a deletion. */
export interface HistoryEntry {
  /** The version committed, or for a refusal or give-up the version the action saw. */
  version: number;
  /** COMMITTED, REJECTED or GAVE_UP. */
  status: Status;
  /** Empty for a tryCommit without provenance.actionId. */
  actionId: string;
  /** The action type, or "TryCommit". */
  actionType: string;
  correlationId: string;
  /** The state at this version; absent unless status is COMMITTED. */
  state?: JsonObject;
  intents: Intent[];
  /** Why the action was refused or gave up (for tryCommit, its provenance reason). */
  reason: string;
  resultHash: string;
  /** "reducer-service", or tryCommit's provenance actor. */
  actor: string;
  recordedAt?: Date;
  workflowType: string;
  /** The action's payload; absent for tryCommit. */
  payload?: JsonObject;
  /** The workflow was deleted at this version (deleteWorkflow: COMMITTED, no state). */
  deleted: boolean;
}

/** A page of a workflow's history; pass `nextPageToken` back for the next one ("" on the last page). */
export interface HistoryPage {
  workflowKey: string;
  namespace: string;
  entries: HistoryEntry[];
  nextPageToken: string;
}

/** A workflow as listWorkflows shows it, without its state. */
export interface WorkflowSummary {
  workflowKey: string;
  namespace: string;
  workflowType: string;
  version: number;
  updatedAt?: Date;
  /** The state's "status" field when it is a string (the FSM state for fsm workflows). */
  tag: string;
}

/** Workflows in key order; pass `nextPageToken` back, with the same filter, for the next page
 * ("" on the last page). */
export interface WorkflowPage {
  workflows: WorkflowSummary[];
  nextPageToken: string;
}

/** An event the pipeline could not apply. */
export interface DeadLetter {
  /** What replayDeadLetter takes. */
  id: number;
  /** Where it came from: outbox/<id>, or <topic>/<partition>/<offset>. */
  source: string;
  namespace: string;
  workflowKey: string;
  version: number;
  eventType: string;
  /** Why it could not be applied. */
  error: string;
  createdAt?: Date;
  /** When an operator replayed it; absent if never. */
  replayedAt?: Date;
}

/** What replaying a dead letter did: `applied` is false when the projection already had that
 * version or a newer one (the letter is marked replayed either way). */
export interface ReplayResult {
  applied: boolean;
  message: string;
}
