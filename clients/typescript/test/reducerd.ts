// Starts a live reducerd for the tests (the binary is built by cargo beforehand).
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// dist/test/reducerd.js -> the repository root is five levels up.
const repo = resolve(fileURLToPath(import.meta.url), "../../../../..");
export const REDUCERD = process.env.REDUCERD_BIN ?? join(repo, "target/debug/reducerd");


export interface Reducerd {
  addr: string;
  stop(): Promise<void>;
}

export async function startReducerd(config = ""): Promise<Reducerd> {
  accessSync(REDUCERD, constants.X_OK);
  const dir = mkdtempSync(join(tmpdir(), "reducerd-ts-"));
  const args = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--database-url", `sqlite://${dir}/t.db`];
  if (config) {
    writeFileSync(join(dir, "reducerd.toml"), config);
    args.push("--config", join(dir, "reducerd.toml"));
  }
  const proc = spawn(REDUCERD, args, { stdio: ["ignore", "pipe", "inherit"] });
  const addr = await waitForAddr(proc, 30_000);
  return {
    addr,
    stop: async () => {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function waitForAddr(proc: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const log: string[] = [];
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`reducerd did not start within ${timeoutMs} ms:\n${log.join("\n")}`));
    }, timeoutMs);
    proc.once("exit", (code) => reject(new Error(`reducerd exited (${code}):\n${log.join("\n")}`)));
    // Keep reading after the address line so the server never blocks on a full pipe.
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      log.push(line);
      if (!line.includes("reducerd serving gRPC")) return;
      const token = line.split(/\s+/).find((t) => t.startsWith("addr="));
      clearTimeout(timer);
      if (token) resolvePromise(token.slice("addr=".length));
      else reject(new Error(`no addr= in: ${line}`));
    });
  });
}
