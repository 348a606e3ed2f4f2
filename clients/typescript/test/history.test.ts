// getHistory and listWorkflows against a live reducerd.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { Client, type HistoryPage } from "../src/index.js";
import { startReducerd, type Reducerd } from "./reducerd.js";

// Keys are unique per run: one server is shared by every test in this file.
const key = (name: string) => `ts-${name}-${randomUUID().slice(0, 8)}`;

const brief = (page: HistoryPage) => page.entries.map((e) => [e.version, e.status, e.actionId]);

describe("history and listings against reducerd", () => {
  let server: Reducerd;
  let client: Client;
  before(async () => {
    server = await startReducerd();
    client = new Client(server.addr);
  });
  after(async () => {
    client.close();
    await server.stop();
  });

  const act = (workflowKey: string, workflowType: string, actionType: string, payload: JsonObject = {}, namespace?: string) =>
    client.handleAction({ workflowKey, workflowType, actionType, payload, namespace });

  test("the history of two commits and a refusal pages forward and in reverse", async () => {
    const workflowKey = key("history");
    const created = await act(workflowKey, "fsm", "PENDING");
    const started = await act(workflowKey, "fsm", "PROCESSING");
    const refused = await act(workflowKey, "fsm", "PENDING"); // PROCESSING -> PENDING is no transition
    assert.deepEqual([created.status, started.status, refused.status], ["COMMITTED", "COMMITTED", "REJECTED"]);

    const first = await client.getHistory({ workflowKey, limit: 2 });
    assert.equal(first.workflowKey, workflowKey);
    assert.equal(first.namespace, "default");
    assert.deepEqual(brief(first), [
      [1, "COMMITTED", created.actionId],
      [2, "COMMITTED", started.actionId],
    ]);
    assert.ok(first.nextPageToken);
    const rest = await client.getHistory({ workflowKey, limit: 2, pageToken: first.nextPageToken });
    assert.deepEqual(brief(rest), [[2, "REJECTED", refused.actionId]]);
    assert.equal(rest.nextPageToken, "");

    const [commit, refusal] = [first.entries[1], rest.entries[0]];
    assert.equal(commit.actionType, "PROCESSING");
    assert.deepEqual(commit.state, started.state);
    assert.deepEqual(commit.payload, {});
    assert.equal(commit.correlationId, started.correlationId);
    assert.equal(commit.resultHash, started.resultHash);
    assert.equal(commit.actor, "reducer-service");
    assert.equal(commit.workflowType, "fsm");
    assert.ok(commit.recordedAt instanceof Date);
    assert.equal(refusal.state, undefined); // a refusal changed nothing, so it has no state
    assert.equal(refusal.actionType, "PENDING");
    assert.equal(refusal.reason, refused.rejectionReason);

    const newest = await client.getHistory({ workflowKey, limit: 2, reverse: true });
    assert.deepEqual(brief(newest), [
      [2, "REJECTED", refused.actionId],
      [2, "COMMITTED", started.actionId],
    ]);
    const oldest = await client.getHistory({ workflowKey, limit: 2, reverse: true, pageToken: newest.nextPageToken });
    assert.deepEqual(brief(oldest), [[1, "COMMITTED", created.actionId]]);
    assert.equal(oldest.nextPageToken, "");
    assert.deepEqual([...newest.entries, ...oldest.entries], [...first.entries, ...rest.entries].reverse());
  });

  test("the history from a version", async () => {
    const workflowKey = key("from");
    for (const n of [0, 1, 2]) await act(workflowKey, "merge", "set", { n });
    const versions = async (reverse: boolean) =>
      (await client.getHistory({ workflowKey, fromVersion: 2, reverse })).entries.map((e) => e.version);
    assert.deepEqual(await versions(false), [2, 3]);
    assert.deepEqual(await versions(true), [2, 1]);
  });

  test("a history token is refused in the other direction", async () => {
    const workflowKey = key("token");
    for (const n of [0, 1]) await act(workflowKey, "merge", "set", { n });
    const forward = await client.getHistory({ workflowKey, limit: 1 });
    await assert.rejects(client.getHistory({ workflowKey, limit: 1, reverse: true, pageToken: forward.nextPageToken }), (err) => {
      const e = ConnectError.from(err);
      assert.equal(e.code, Code.InvalidArgument, e.rawMessage);
      assert.match(e.rawMessage, /page_token/);
      return true;
    });
  });

  test("listWorkflows by prefix, a page at a time", async () => {
    const prefix = `${key("list")}/`;
    const keys = ["a", "b", "c"].map((name) => prefix + name);
    const since = new Date(Date.now() - 1000);
    for (const k of [...keys].reverse()) await act(k, "merge", "set", { status: "open" }); // listed in key order
    await act(prefix.slice(0, -1), "merge", "set"); // shares the start, not the prefix
    await act(`${prefix}elsewhere`, "merge", "set", {}, "tenant-list");

    const first = await client.listWorkflows({ keyPrefix: prefix, limit: 2 });
    assert.deepEqual(first.workflows.map((w) => w.workflowKey), keys.slice(0, 2));
    assert.ok(first.nextPageToken);
    const rest = await client.listWorkflows({ keyPrefix: prefix, limit: 2, pageToken: first.nextPageToken });
    assert.deepEqual(rest.workflows.map((w) => w.workflowKey), keys.slice(2));
    assert.equal(rest.nextPageToken, "");

    const { updatedAt, ...summary } = first.workflows[0];
    assert.deepEqual(summary, { workflowKey: keys[0], namespace: "default", workflowType: "merge", version: 1, tag: "open" });
    assert.ok(updatedAt && updatedAt >= since);
  });

  test("listWorkflows filters combine", async () => {
    const prefix = `${key("filter")}/`;
    const since = new Date(Date.now() - 1000);
    await act(`${prefix}open`, "merge", "set", { status: "open" });
    await act(`${prefix}closed`, "merge", "set", { status: "closed" });
    await act(`${prefix}job`, "fsm", "PENDING");
    await act(`${prefix}other-ns`, "merge", "set", {}, "tenant-filter");

    const listed = async (filter: Parameters<Client["listWorkflows"]>[0] = {}) =>
      (await client.listWorkflows({ keyPrefix: prefix, ...filter })).workflows.map((w) => w.workflowKey);
    const all = [`${prefix}closed`, `${prefix}job`, `${prefix}open`];
    assert.deepEqual(await listed(), all);
    assert.deepEqual(await listed({ tag: "closed" }), [`${prefix}closed`]);
    assert.deepEqual(await listed({ workflowType: "fsm" }), [`${prefix}job`]);
    assert.deepEqual(await listed({ updatedAfter: since }), all);
    assert.deepEqual(await listed({ updatedBefore: since }), []);
    assert.deepEqual(await listed({ namespace: "tenant-filter" }), [`${prefix}other-ns`]);
  });
});
