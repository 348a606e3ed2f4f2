// retryAction, listDeadLetters and replayDeadLetter against a live reducerd: what each answers
// when there is nothing to repair. deleteWorkflow: a deletion, and what it refuses.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { Client } from "../src/index.js";
import { ReducerService, type RetryActionRequest } from "../src/gen/purereducer/v1/reducer_pb.js";
import { ActionStatus } from "../src/gen/purereducer/v1/types_pb.js";
import { startReducerd, type Reducerd } from "./reducerd.js";

const key = (name: string) => `ts-${name}-${randomUUID().slice(0, 8)}`;

/** The code and message a call rejects with. */
async function refusal(promise: Promise<unknown>): Promise<[Code, string]> {
  try {
    await promise;
  } catch (err) {
    const e = ConnectError.from(err);
    return [e.code, e.rawMessage];
  }
  assert.fail("the call succeeded");
}

// A fresh server for this file: it has never dead-lettered anything.
describe("repairs against reducerd", () => {
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

  test("retrying a committed action says how it ended", async () => {
    const workflowKey = key("retry");
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 0 } });
    const done = await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 1 } });
    assert.deepEqual(await refusal(client.retryAction({ workflowKey, actionId: done.actionId })), [
      Code.FailedPrecondition,
      `action ${done.actionId} did not give up: it ended COMMITTED at version 2; only a GAVE_UP action can be retried`,
    ]);
  });

  test("retrying a rejected action says how it ended", async () => {
    const workflowKey = key("retry-rejected");
    await client.handleAction({ workflowKey, workflowType: "fsm", actionType: "PENDING" });
    // PENDING -> COMPLETED is no transition.
    const refused = await client.handleAction({ workflowKey, workflowType: "fsm", actionType: "COMPLETED" });
    assert.equal(refused.status, "REJECTED");
    const [code, message] = await refusal(client.retryAction({ workflowKey, actionId: refused.actionId }));
    assert.equal(code, Code.FailedPrecondition);
    assert.match(message, /it ended REJECTED at version 1/);
  });

  test("retrying an action history never saw is not found", async () => {
    const workflowKey = key("retry-unknown");
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set" });
    const unknown = randomUUID();
    const [code, message] = await refusal(client.retryAction({ workflowKey, actionId: unknown }));
    assert.equal(code, Code.NotFound);
    assert.ok(message.includes(`has no history of action ${unknown}`), message);
    // The action exists, but in another namespace's workflow.
    const elsewhere = await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", namespace: "tenant-retry" });
    assert.equal((await refusal(client.retryAction({ workflowKey, actionId: elsewhere.actionId })))[0], Code.NotFound);
    assert.equal((await refusal(client.retryAction({ workflowKey, actionId: "not-a-uuid" })))[0], Code.InvalidArgument);
  });

  test("deleting at a stale version is refused, then the workflow is deleted", async () => {
    const workflowKey = key("delete");
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 0 } });
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 1 } });

    const [code, message] = await refusal(client.deleteWorkflow({ workflowKey, expectedVersion: 1 }));
    assert.equal(code, Code.FailedPrecondition);
    assert.ok(message.includes("is at version 2, not 1; nothing was deleted"), message);
    assert.equal((await client.getState(workflowKey)).version, 2);

    assert.equal(await client.deleteWorkflow({ workflowKey, expectedVersion: 2, reason: "customer asked" }), 3);
    const [readCode, readMessage] = await refusal(client.getState(workflowKey));
    assert.equal(readCode, Code.NotFound);
    assert.match(readMessage, /deleted at version 3/);
    const [againCode, againMessage] = await refusal(client.deleteWorkflow({ workflowKey }));
    assert.equal(againCode, Code.NotFound);
    assert.match(againMessage, /deleted at version 3/);

    const history = await client.getHistory({ workflowKey });
    assert.deepEqual(
      history.entries.map((e) => [e.version, e.deleted, e.status, e.actionType]),
      [[1, false, "COMMITTED", "set"], [2, false, "COMMITTED", "set"], [3, true, "COMMITTED", "DeleteWorkflow"]],
    );
    assert.deepEqual([history.entries[2].reason, history.entries[2].state], ["customer asked", undefined]);

    // Versions never go back: the next action starts the workflow again, from the initial
    // state, at the version after the deletion.
    const reborn = await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { c: 3 } });
    assert.deepEqual([reborn.version, reborn.state], [4, { c: 3 }]);
  });

  test("deleting a workflow that does not exist is not found", async () => {
    const workflowKey = key("delete-missing");
    const [code, message] = await refusal(client.deleteWorkflow({ workflowKey }));
    assert.equal(code, Code.NotFound);
    assert.match(message, /does not exist/);
    // The workflow exists, but in another namespace.
    await client.handleAction({ workflowKey, workflowType: "merge", actionType: "set", namespace: "tenant-delete" });
    assert.equal((await refusal(client.deleteWorkflow({ workflowKey })))[0], Code.NotFound);
    // Expected version 0: whatever its version.
    assert.equal(await client.deleteWorkflow({ workflowKey, namespace: "tenant-delete" }), 2);
    assert.equal((await refusal(client.getState(workflowKey, undefined, "tenant-delete")))[0], Code.NotFound);
    assert.equal((await refusal(client.deleteWorkflow({ workflowKey: "" })))[0], Code.InvalidArgument);
  });

  test("a fresh server has no dead letters to list or replay", async () => {
    await client.handleAction({ workflowKey: key("lettered"), workflowType: "merge", actionType: "set", payload: { n: 1 } });
    assert.deepEqual(await client.listDeadLetters(), []);
    assert.deepEqual(await client.listDeadLetters(1000), []);
    assert.deepEqual(await refusal(client.replayDeadLetter(1)), [
      Code.NotFound,
      "there is no dead letter 1; list dead letters to find their ids",
    ]);
    const [code, message] = await refusal(client.listDeadLetters(1001));
    assert.equal(code, Code.InvalidArgument);
    assert.match(message, /limit/);
  });
});

test("a retried give-up comes back as its outcome", async () => {
  // A stand-in answering RetryAction as reducerd does for a give-up that now commits: a live
  // give-up needs two replicas racing on one database.
  const requests: RetryActionRequest[] = [];
  const server = http2.createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(ReducerService, {
          retryAction(req) {
            requests.push(req);
            return {
              outcome: {
                status: ActionStatus.COMMITTED, version: 4n, state: { n: 3 }, attempts: 1, resultHash: "h",
                actionId: req.actionId, workflowKey: req.workflowKey, correlationId: "c",
              },
            };
          },
        }),
    }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const client = new Client(`127.0.0.1:${(server.address() as AddressInfo).port}`);
  const actionId = randomUUID();
  try {
    const result = await client.retryAction({ workflowKey: "k-1", actionId, namespace: "tenant-a" });
    assert.deepEqual(result, {
      status: "COMMITTED", version: 4, state: { n: 3 }, intents: [], attempts: 1, resultHash: "h",
      rejectionReason: "", correlationId: "c", actionId, workflowKey: "k-1",
    });
    assert.deepEqual(requests.map((r) => [r.namespace, r.workflowKey, r.actionId]), [["tenant-a", "k-1", actionId]]);
  } finally {
    client.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
