// The TypeScript client against a live reducerd.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { Client } from "../src/index.js";
import { ReducerService } from "../src/gen/purereducer/v1/reducer_pb.js";
import { ActionStatus } from "../src/gen/purereducer/v1/types_pb.js";
import { startReducerd, type Reducerd } from "./reducerd.js";

// Keys are unique per run: one server is shared by every test in this file.
const key = (name: string) => `ts-${name}-${randomUUID().slice(0, 8)}`;

async function rejectsWith(promise: Promise<unknown>, code: Code) {
  await assert.rejects(promise, (err) => ConnectError.from(err).code === code);
}

describe("client against reducerd", () => {
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

  test("handleAction commits, then repeats as DUPLICATE", async () => {
    const workflowKey = key("order");
    const first = await client.handleAction({
      workflowKey, workflowType: "merge", actionType: "set", payload: { customer: "ana", total: 42 },
    });
    assert.equal(first.status, "COMMITTED");
    assert.equal(first.version, 1);
    assert.deepEqual(first.state, { customer: "ana", total: 42 });
    assert.ok(first.resultHash);

    const again = await client.handleAction({
      workflowKey, workflowType: "merge", actionType: "set", payload: { customer: "ana", total: 42 },
      actionId: first.actionId, correlationId: first.correlationId,
    });
    assert.equal(again.status, "DUPLICATE");
    assert.equal(again.version, first.version);
    assert.equal(again.resultHash, first.resultHash);
  });

  test("the same action id with another payload is refused", async () => {
    const workflowKey = key("reuse");
    const first = await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 1 } });
    await rejectsWith(
      client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 2 }, actionId: first.actionId }),
      Code.AlreadyExists,
    );
  });

  test("getState reads what was committed", async () => {
    const workflowKey = key("state");
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { a: 1, nested: { b: [1, 2.5, null] } } });
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { a: null, c: "x" } });
    const got = await client.getState(workflowKey);
    assert.equal(got.version, 2);
    assert.deepEqual(got.state, { nested: { b: [1, 2.5, null] }, c: "x" });
    assert.equal(got.workflowType, "merge");
    assert.ok(got.updatedAt instanceof Date);
    await rejectsWith(client.getState(key("missing")), Code.NotFound);
  });

  test("the same key in two namespaces is two workflows", async () => {
    const workflowKey = key("tenant");
    for (const namespace of ["tenant-a", "tenant-b"]) {
      const done = await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { owner: namespace }, namespace });
      assert.equal(done.status, "COMMITTED");
      assert.equal(done.version, 1);
    }
    for (const namespace of ["tenant-a", "tenant-b"]) {
      const got = await client.getState(workflowKey, undefined, namespace);
      assert.equal(got.version, 1);
      assert.deepEqual(got.state, { owner: namespace });
      assert.equal(got.namespace, namespace);
    }
    // The "default" namespace holds no such workflow.
    await rejectsWith(client.getState(workflowKey), Code.NotFound);
  });

  test("tryCommit with a stale version reports the conflict and the current version", async () => {
    const workflowKey = key("cas");
    assert.deepEqual(await client.tryCommit({ workflowKey, expectedVersion: 0, state: { v: 1 }, workflowType: "merge" }), {
      committed: true, version: 1,
    });
    assert.deepEqual(await client.tryCommit({ workflowKey, expectedVersion: 1, state: { v: 2 }, provenance: { actor: "test" } }), {
      committed: true, version: 2,
    });
    assert.deepEqual(await client.tryCommit({ workflowKey, expectedVersion: 1, state: { v: "late" } }), {
      committed: false, currentVersion: 2,
    });
    assert.deepEqual((await client.getState(workflowKey)).state, { v: 2 });
  });

  test("shouldProcess and cleanupExpired", async () => {
    const workflowKey = key("dedup");
    assert.equal((await client.shouldProcess(workflowKey, randomUUID())).shouldProcess, true);
    const done = await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { x: 1 } });
    const check = await client.shouldProcess(workflowKey, done.actionId);
    assert.equal(check.shouldProcess, false);
    assert.equal(check.previous?.resultHash, done.resultHash);
    assert.equal(check.previous?.status, "COMMITTED");
    assert.ok((await client.cleanupExpired()) >= 0);
  });

  // --- event pipeline (EventBusService, ProjectionService) ------------------------------

  test("getProjection waits for minVersion", async () => {
    const workflowKey = key("proj");
    await client.handleAction({ workflowKey, workflowType: "fsm", actionType: "PENDING" });
    await client.handleAction({ workflowKey, workflowType: "fsm", actionType: "PROCESSING" });
    const proj = await client.getProjection(workflowKey, 2, 5000);
    assert.ok(proj.version >= 2);
    assert.equal(proj.fromCanonical, false);
    assert.equal(proj.lastAction, "PROCESSING");
    // A version that never comes: after maxWaitMs the answer is built from the canonical state.
    const late = await client.getProjection(workflowKey, 99, 300);
    assert.equal(late.fromCanonical, true);
    assert.equal(late.version, 2);
    assert.ok(Array.isArray(await client.listWatermarks()));
  });

  test("publishAction then waitForCompletion", async () => {
    const workflowKey = key("bus");
    const published = await client.publishAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { queued: true } });
    const done = await client.waitForCompletion(published.correlationId, 10_000);
    assert.equal(done.status, "COMMITTED");
    assert.equal(done.workflowKey, workflowKey);
    assert.equal(done.version, 1);
    assert.equal(done.actionId, published.actionId);
    assert.deepEqual(await client.waitForCompletion(published.correlationId, 1000), done);
    await rejectsWith(client.waitForCompletion(randomUUID(), 200), Code.DeadlineExceeded);
  });

  test("subscribe streams commits in version order", async () => {
    const workflowKey = key("sub");
    const decoy = key("decoy");
    const abort = new AbortController();
    const seen: number[] = [];
    // The stream has no "subscribed" signal, so keep committing until events flow; the
    // decoy's commits must not pass the filter.
    const writer = (async () => {
      for (let i = 0; i < 50 && !abort.signal.aborted; i++) {
        await client.handleAction({ workflowKey: decoy, workflowType: "merge", actionType: "set", payload: { i } });
        await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { i } });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      for await (const event of client.subscribe({ workflowKeys: [workflowKey] }, abort.signal)) {
        assert.equal(event.workflowKey, workflowKey);
        if (event.kind === "stateCommitted") {
          assert.equal(event.message.state?.i, event.version - 1);
          seen.push(event.version);
        }
        if (seen.length === 3) break;
      }
    } finally {
      abort.abort();
      await writer;
    }
    assert.deepEqual(seen, [seen[0], seen[0] + 1, seen[0] + 2]);
  });

  test("subscribe with fromVersion replays from history, then follows live", async () => {
    const workflowKey = key("replay");
    for (let i = 0; i < 3; i++) {
      await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { i } });
    }
    // The timeout aborts the stream (the test fails) should an event not come.
    const events = client.subscribe({ workflowKeys: [workflowKey], fromVersion: 1 }, AbortSignal.timeout(30_000));
    // The versions of the next n stateCommitted events, each checked to be workflowKey's.
    const commits = async (n: number) => {
      const versions: number[] = [];
      while (versions.length < n) {
        const next = await events.next();
        assert.ok(!next.done, "the stream ended");
        const event = next.value;
        if (event.kind !== "stateCommitted") continue;
        assert.equal(event.workflowKey, workflowKey);
        assert.equal(event.message.state?.i, event.version - 1);
        versions.push(event.version);
      }
      return versions;
    };
    try {
      assert.deepEqual(await commits(3), [1, 2, 3]);
      // Then live, with no repeat at the seam: the next commit is the next event.
      await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { i: 3 } });
      assert.deepEqual(await commits(1), [4]);
    } finally {
      await events.return(undefined); // cancels the stream
    }
  });

  test("subscribe with fromVersion but no workflowKeys rejects with InvalidArgument", async () => {
    // A replay needs the keys to read the history of; the refusal comes when iterating.
    const events = client.subscribe({ fromVersion: 1 }, AbortSignal.timeout(30_000));
    await assert.rejects(events.next(), (err) => {
      const e = ConnectError.from(err);
      return e.code === Code.InvalidArgument && e.rawMessage.includes("from_version");
    });
  });
});

describe("retries", () => {
  // A ReducerService that fails its first call with UNAVAILABLE, like a restarting server.
  const calls: { actionId: string; correlationId: string; authorization: string | null }[] = [];
  let server: http2.Http2Server;
  let addr: string;
  before(async () => {
    server = http2.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(ReducerService, {
            handleAction(req, ctx) {
              calls.push({
                actionId: req.action?.actionId ?? "",
                correlationId: req.action?.correlationId ?? "",
                authorization: ctx.requestHeader.get("authorization"),
              });
              if (calls.length === 1) throw new ConnectError("restarting", Code.Unavailable);
              return { status: ActionStatus.COMMITTED, version: 1n, actionId: req.action?.actionId ?? "" };
            },
          }),
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test("handleAction retries UNAVAILABLE with the same ids and sends the token", async () => {
    const client = new Client(addr, { token: "s3cret" });
    try {
      const result = await client.handleAction({ workflowKey: "k-1", workflowType: "merge", actionType: "set", payload: { x: 1 } });
      assert.equal(result.status, "COMMITTED");
      assert.equal(calls.length, 2);
      assert.equal(calls[0].actionId, result.actionId);
      assert.equal(calls[1].actionId, result.actionId);
      assert.equal(calls[0].correlationId, calls[1].correlationId);
      assert.equal(calls[0].authorization, "Bearer s3cret");
    } finally {
      client.close();
    }
  });

  test("handleAction does not retry when retries is 0", async () => {
    calls.length = 0;
    const client = new Client(addr);
    try {
      await rejectsWith(
        client.handleAction({ workflowKey: "k-1", workflowType: "merge", actionType: "set", retries: 0 }),
        Code.Unavailable,
      );
      assert.equal(calls.length, 1);
    } finally {
      client.close();
    }
  });
});
