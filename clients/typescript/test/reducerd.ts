// Starts a live reducerd for the tests (the binary is built by cargo beforehand).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// dist/test/reducerd.js -> the repository root is five levels up.
const repo = resolve(fileURLToPath(import.meta.url), "../../../../..");
export const REDUCERD = process.env.REDUCERD_BIN ?? join(repo, "target/debug/reducerd");
const MAKE_CERTS = join(repo, "clients/tests/make-certs.sh");

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

/** Certificates made for one run by clients/tests/make-certs.sh, and tokens reducerd accepts. */
export interface Pki {
  dir: string;
  /** The CA that signed server.pem and client.pem. */
  ca: string;
  /** A CA that signed nothing the server uses. */
  strangerCa: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate and key from the other CA. */
  outsiderCert: string;
  outsiderKey: string;
  /** Tokens with the admin and the reader role, for every namespace. */
  admin: string;
  reader: string;
  /** The reducerd config for TLS and token auth; with `clientCa`, client certificates too. */
  config(clientCa?: boolean): string;
  remove(): void;
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "pki-ts-"));
  execFileSync(MAKE_CERTS, [dir], { stdio: ["ignore", "inherit", "inherit"] });
  const admin = randomBytes(24).toString("base64url");
  const reader = randomBytes(24).toString("base64url");
  const entry = (token: string, subject: string, role: string) =>
    `[[token]]\nsha256 = "${createHash("sha256").update(token).digest("hex")}"\n` +
    `subject = "${subject}"\nnamespaces = ["*"]\nroles = ["${role}"]\n\n`;
  writeFileSync(join(dir, "tokens.toml"), entry(admin, "clients-test", "admin") + entry(reader, "clients-reader", "reader"));
  const file = (name: string) => join(dir, name);
  return {
    dir,
    ca: file("ca.pem"),
    strangerCa: file("stranger-ca.pem"),
    clientCert: file("client.pem"),
    clientKey: file("client.key"),
    outsiderCert: file("outsider.pem"),
    outsiderKey: file("outsider.key"),
    admin,
    reader,
    config: (clientCa = false) =>
      `[server.tls]\ncert_file = "${file("server.pem")}"\nkey_file = "${file("server.key")}"\n` +
      (clientCa ? `client_ca_file = "${file("ca.pem")}"\n` : "") +
      `\n[auth]\nmode = "token"\ntokens_file = "${file("tokens.toml")}"\n`,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
