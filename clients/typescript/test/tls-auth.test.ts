// The TypeScript client against a reducerd serving TLS (and mutual TLS) with bearer-token auth.
// Certificates (clients/tests/make-certs.sh) and tokens are made for each run.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";

import { Client, type ClientOptions } from "../src/index.js";
import { makePki, startReducerd, type Pki, type Reducerd } from "./reducerd.js";

const key = (name: string) => `ts-tls-${name}-${randomUUID().slice(0, 8)}`;

async function rejectsWith(promise: Promise<unknown>, code: Code, causeCode?: string) {
  await assert.rejects(promise, (err) => {
    const e = ConnectError.from(err);
    assert.equal(e.code, code, `${Code[e.code]}: ${e.rawMessage}`);
    if (causeCode) assert.equal((e.cause as { code?: string } | undefined)?.code, causeCode, e.rawMessage);
    return true;
  });
}

/** Runs `body` with a client that is closed afterwards. */
async function withClient<T>(addr: string, options: ClientOptions, body: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client(addr, options);
  try {
    return await body(client);
  } finally {
    client.close();
  }
}

describe("TLS and token auth", () => {
  let pki: Pki;
  let server: Reducerd;
  let mutual: Reducerd;
  before(async () => {
    pki = makePki();
    server = await startReducerd(pki.config());
    mutual = await startReducerd(pki.config(true));
  });
  after(async () => {
    await server?.stop();
    await mutual?.stop();
    pki?.remove();
  });

  test("over TLS with a token: handleAction, then getState", async () => {
    const workflowKey = key("order");
    await withClient(server.addr, { tls: true, caFile: pki.ca, token: pki.admin }, async (c) => {
      const first = await c.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { total: 42 } });
      assert.equal(first.status, "COMMITTED");
      assert.equal(first.version, 1);
      const state = await c.getState(workflowKey);
      assert.equal(state.version, 1);
      assert.deepEqual(state.state, { total: 42 });
    });
  });

  test("an https:// target with rootCertificates is TLS too", async () => {
    const workflowKey = key("https");
    const options = { rootCertificates: readFileSync(pki.ca), token: pki.admin };
    await withClient(`https://${server.addr}`, options, async (c) => {
      await c.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { n: 1 } });
      assert.deepEqual((await c.getState(workflowKey)).state, { n: 1 });
    });
  });

  test("subscribe over TLS with a token receives a committed event", async () => {
    const workflowKey = key("sub");
    await withClient(server.addr, { tls: true, caFile: pki.ca, token: pki.admin }, async (c) => {
      const abort = new AbortController();
      // The stream has no "subscribed" signal: commit again every 100 ms until the subscriber
      // has an event, for at most 10 s.
      const writer = (async () => {
        for (let i = 0; i < 100 && !abort.signal.aborted; i++) {
          await c.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { i } });
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      let first;
      try {
        for await (const event of c.subscribe({ workflowKeys: [workflowKey] }, abort.signal)) {
          if (event.kind !== "stateCommitted") continue;
          first = event;
          break;
        }
      } finally {
        abort.abort();
        await writer;
      }
      // Commit i made version i + 1; which commit is the first one seen depends on when the
      // subscription took effect.
      assert.ok(first, "no event");
      assert.equal(first.workflowKey, workflowKey);
      assert.deepEqual(first.message.state, { i: first.version - 1 });
    });
  });

  test("calls without a token are UNAUTHENTICATED", async () => {
    await withClient(server.addr, { tls: true, caFile: pki.ca }, async (c) => {
      await rejectsWith(c.getState(key("none")), Code.Unauthenticated);
      await rejectsWith(
        c.handleAction({ workflowKey: key("none"), workflowType: "merge", actionType: "set" }),
        Code.Unauthenticated,
      );
      await rejectsWith(c.subscribe({ workflowKeys: [key("none")] }).next(), Code.Unauthenticated);
    });
  });

  test("an unknown token is UNAUTHENTICATED", async () => {
    await withClient(server.addr, { tls: true, caFile: pki.ca, token: `not-${pki.admin}` }, async (c) => {
      await rejectsWith(c.getState(key("unknown")), Code.Unauthenticated);
    });
  });

  test("a reader token reads but may not write", async () => {
    const workflowKey = key("reader");
    await withClient(server.addr, { tls: true, caFile: pki.ca, token: pki.admin }, (c) =>
      c.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { x: 1 } }),
    );
    await withClient(server.addr, { tls: true, caFile: pki.ca, token: pki.reader }, async (c) => {
      assert.deepEqual((await c.getState(workflowKey)).state, { x: 1 });
      await rejectsWith(
        c.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { x: 2 } }),
        Code.PermissionDenied,
      );
      assert.equal((await c.getState(workflowKey)).version, 1);
    });
  });

  test("a client that does not trust the server's CA fails", async () => {
    for (const trust of [{ caFile: pki.strangerCa }, {}]) {
      await withClient(server.addr, { tls: true, token: pki.admin, ...trust }, (c) =>
        rejectsWith(c.getState(key("stranger")), Code.Internal, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
      );
    }
  });

  test("mutual TLS with a client certificate and a token", async () => {
    const workflowKey = key("mtls");
    const options = { tls: true, caFile: pki.ca, clientCert: pki.clientCert, clientKey: pki.clientKey, token: pki.admin };
    await withClient(mutual.addr, options, async (c) => {
      assert.equal((await c.handleAction({ workflowKey, workflowType: "merge", actionType: "set", payload: { m: 1 } })).status, "COMMITTED");
      assert.deepEqual((await c.getState(workflowKey)).state, { m: 1 });
    });
  });

  test("mutual TLS refuses a client without a trusted certificate", async () => {
    await withClient(mutual.addr, { tls: true, caFile: pki.ca, token: pki.admin }, (c) =>
      rejectsWith(c.getState(key("no-cert")), Code.Internal, "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"),
    );
    const outsider = { clientCert: pki.outsiderCert, clientKey: pki.outsiderKey };
    await withClient(mutual.addr, { tls: true, caFile: pki.ca, token: pki.admin, ...outsider }, (c) =>
      rejectsWith(c.getState(key("outsider")), Code.Internal, "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"),
    );
  });

  test("TLS options are refused without TLS, and must be consistent", () => {
    assert.throws(() => new Client("127.0.0.1:1", { caFile: pki.ca }), /TLS options without TLS: caFile/);
    assert.throws(() => new Client("http://127.0.0.1:1", { tls: true }), /contradicts/);
    assert.throws(() => new Client("https://127.0.0.1:1", { tls: false }), /contradicts/);
    assert.throws(() => new Client("127.0.0.1:1", { tls: true, clientCert: pki.clientCert }), /go together/);
    assert.throws(
      () => new Client("127.0.0.1:1", { tls: true, caFile: pki.ca, rootCertificates: "" }),
      /not both/,
    );
    assert.throws(() => new Client("127.0.0.1:1", { tls: true, caFile: `${pki.dir}/absent.pem` }), /ENOENT/);
  });
});
