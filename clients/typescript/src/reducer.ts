// Serve a reducer written in TypeScript as a ReducerFunction endpoint (gRPC over HTTP/2).
// A workflow type declared with reducer = "remote" and endpoint = "http://HOST:PORT" in the
// reducerd config calls it for every action. It must be pure: the platform may call it again
// for the same input (on a version conflict it re-reads and re-reduces).
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { ReducerFunction } from "./gen/purereducer/v1/reducer_function_pb.js";
import type { Intent } from "./types.js";

export interface ReducerAction {
  actionId: string;
  workflowKey: string;
  workflowType: string;
  actionType: string;
  payload: JsonObject;
  correlationId: string;
  namespace: string;
}

export type Outcome =
  | { kind: "reduced"; state: JsonObject; intents: Intent[] }
  | { kind: "rejected"; reason: string };

/** The next state and the intents to publish with it. */
export const reduced = (state: JsonObject, intents: Intent[] = []): Outcome => ({ kind: "reduced", state, intents });
/** The action is refused; reducerd answers REJECTED with this reason. */
export const rejected = (reason: string): Outcome => ({ kind: "rejected", reason });

export type ReducerFn = (state: JsonObject, version: number, action: ReducerAction) => Outcome | Promise<Outcome>;

export interface ServedReducer {
  server: http2.Http2Server;
  port: number;
  close(): Promise<void>;
}

/** Starts an HTTP/2 gRPC server for `fn` on host:port (a free port when 0). */
export async function serveReducer(fn: ReducerFn, port = 0, host = "127.0.0.1"): Promise<ServedReducer> {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(ReducerFunction, {
        async reduce(req) {
          const a = req.action;
          const action: ReducerAction = {
            actionId: a?.actionId ?? "",
            workflowKey: a?.workflowKey ?? "",
            workflowType: a?.workflowType ?? "",
            actionType: a?.actionType ?? "",
            payload: a?.payload ?? {},
            correlationId: a?.correlationId ?? "",
            namespace: a?.namespace ?? "",
          };
          let outcome: Outcome;
          try {
            outcome = await fn(req.state ?? {}, Number(req.version), action);
          } catch (err) {
            // A bug in the reducer, not a refusal: let reducerd see an error.
            throw new ConnectError(`reducer threw: ${String(err)}`, Code.Internal);
          }
          if (outcome.kind === "rejected") return { outcome: { case: "rejected", value: { reason: outcome.reason } } };
          return { outcome: { case: "reduced", value: { state: outcome.state, intents: outcome.intents } } };
        },
      }),
  });
  const server = http2.createServer(handler);
  // http2 servers do not end open sessions on close(); track them so close() can.
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
