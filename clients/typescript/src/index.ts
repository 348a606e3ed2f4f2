// Pure Reducer client: `Client` for the API, `serveReducer` for remote reducers. The
// generated messages and service descriptors are under ./gen for anything not wrapped here.
export * from "./client.js";
export * from "./reducer.js";
export * from "./types.js";
