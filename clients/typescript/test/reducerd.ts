// Starts a live reducerd for the tests, and says which binary (reducerdBinary).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// dist/test/reducerd.js -> the repository root is five levels up.
const repo = resolve(fileURLToPath(import.meta.url), "../../../../..");
const MAKE_CERTS = join(repo, "clients/tests/make-certs.sh");

// The binary, or why there is none: found (or built) once per test file.
let reducerd: string | Error | undefined;

/** The reducerd the tests start (see findReducerd). Throws when there is none and it cannot be
 * built: a suite without its server proves nothing, so it must not skip. */
export function reducerdBinary(): string {
  if (reducerd === undefined) {
    try {
      reducerd = findReducerd(repo, process.env);
    } catch (err) {
      reducerd = err as Error;
    }
  }
  if (reducerd instanceof Error) throw reducerd;
  return reducerd;
}

/** REDUCERD_BIN when set; else the newer of target/release/reducerd (what the top-level README
 * builds) and target/debug/reducerd (what cargo test builds) under `root`; else
 * target/debug/reducerd built now with `cargo build -p reducerd`. */
export function findReducerd(root: string, env: NodeJS.ProcessEnv): string {
  const explicit = env.REDUCERD_BIN;
  if (explicit) {
    // A bare name is looked up on PATH; a path must be an executable file.
    const found = explicit.includes("/") ? (isExecutable(explicit) ? explicit : undefined) : which(explicit, env);
    if (!found) throw new Error(`REDUCERD_BIN=${explicit} is not an executable file`);
    return found;
  }
  const built = ["release", "debug"].map((profile) => join(root, "target", profile, "reducerd")).filter(isExecutable);
  if (built.length) return built.reduce((a, b) => (statSync(b).mtimeMs > statSync(a).mtimeMs ? b : a));
  const debug = join(root, "target/debug/reducerd");
  // scripts/tools.sh puts cargo's own bin directory on PATH; a test run may not have it.
  const cargo = which("cargo", env, [join(env.HOME ?? homedir(), ".cargo/bin")]);
  if (!cargo) {
    throw new Error(
      "no target/release/reducerd or target/debug/reducerd, and no cargo to build one: " +
        "install Rust, build reducerd, or set REDUCERD_BIN",
    );
  }
  console.error(`tests: no reducerd under ${root}/target; ${cargo} build -p reducerd`);
  try {
    // cargo's progress goes to stderr; node --test reads the test's stdout.
    execFileSync(cargo, ["build", "-p", "reducerd"], { cwd: root, env, stdio: ["ignore", 2, 2] });
  } catch (err) {
    throw new Error(`cargo build -p reducerd failed: ${(err as Error).message}`);
  }
  if (!isExecutable(debug)) throw new Error(`cargo build -p reducerd left no ${debug}`);
  return debug;
}

/** `name` in a directory of env.PATH, or else of `more`. */
function which(name: string, env: NodeJS.ProcessEnv, more: string[] = []): string | undefined {
  return [...(env.PATH ?? "").split(delimiter), ...more]
    .filter(Boolean)
    .map((dir) => join(dir, name))
    .find(isExecutable);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export interface Reducerd {
  addr: string;
  stop(): Promise<void>;
}

export async function startReducerd(config = ""): Promise<Reducerd> {
  const binary = reducerdBinary();
  const dir = mkdtempSync(join(tmpdir(), "reducerd-ts-"));
  const args = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--database-url", `sqlite://${dir}/t.db`];
  if (config) {
    writeFileSync(join(dir, "reducerd.toml"), config);
    args.push("--config", join(dir, "reducerd.toml"));
  }
  const proc = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
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
