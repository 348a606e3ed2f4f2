// A TypeScript reducer served with serveReducer drives a `reducer = "remote"` workflow type.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";

import { Client, reduced, rejected, serveReducer, type ReducerFn, type ServedReducer } from "../src/index.js";
import { startReducerd, type Reducerd } from "./reducerd.js";

const TIMEOUT_MS = 300;

const pricing: ReducerFn = async (state, version, action) => {
  if (action.actionType === "add") {
    const total = Number(state.total ?? 0) + Number(action.payload.amount);
    return reduced({ ...state, total, seen: version + 1 }, [{ intentType: "price-changed", payload: { total } }]);
  }
  if (action.actionType === "hang") {
    // Far past timeout_ms: reducerd must give up on it.
    await new Promise((r) => setTimeout(r, TIMEOUT_MS * 5));
    return reduced({ ...state, total: -1 });
  }
  return rejected(`pricing does not know ${action.actionType}`);
};

describe("remote reducer", () => {
  let reducer: ServedReducer;
  let server: Reducerd;
  let client: Client;
  before(async () => {
    reducer = await serveReducer(pricing);
    server = await startReducerd(
      `[workflow_types.pricing]\nreducer = "remote"\nendpoint = "http://127.0.0.1:${reducer.port}"\ntimeout_ms = ${TIMEOUT_MS}\n`,
    );
    client = new Client(server.addr);
  });
  after(async () => {
    client.close();
    await server.stop();
    await reducer.close();
  });

  const add = (workflowKey: string, amount: number) =>
    client.handleAction({ workflowKey, workflowType: "pricing", actionType: "add", payload: { amount } });

  test("commits", async () => {
    const workflowKey = `price-${randomUUID().slice(0, 8)}`;
    const first = await add(workflowKey, 5);
    assert.equal(first.status, "COMMITTED");
    assert.equal(first.version, 1);
    assert.deepEqual(first.state, { total: 5, seen: 1 });
    assert.deepEqual(first.intents, [{ intentType: "price-changed", payload: { total: 5 } }]);
    const second = await add(workflowKey, 3);
    assert.equal(second.version, 2);
    assert.deepEqual((await client.getState(workflowKey)).state, { total: 8, seen: 2 });
  });

  test("rejects", async () => {
    const workflowKey = `price-${randomUUID().slice(0, 8)}`;
    await add(workflowKey, 5);
    const refused = await client.handleAction({ workflowKey, workflowType: "pricing", actionType: "refund", payload: { amount: 5 } });
    assert.equal(refused.status, "REJECTED");
    assert.equal(refused.rejectionReason, "pricing does not know refund");
    assert.equal(refused.version, 1);
    assert.equal((await client.getState(workflowKey)).state.total, 5);
  });

  test("a hanging reducer fails with DEADLINE_EXCEEDED and changes nothing", async () => {
    const workflowKey = `price-${randomUUID().slice(0, 8)}`;
    await add(workflowKey, 5);
    const before = await client.getState(workflowKey);
    const started = Date.now();
    await assert.rejects(
      client.handleAction({ workflowKey, workflowType: "pricing", actionType: "hang", retries: 0 }),
      (err) => ConnectError.from(err).code === Code.DeadlineExceeded,
    );
    assert.ok(Date.now() - started < TIMEOUT_MS * 4, "reducerd's timeout_ms should cut the call short");
    const afterHang = await client.getState(workflowKey);
    assert.equal(afterHang.version, before.version);
    assert.deepEqual(afterHang.state, before.state);
  });
});
