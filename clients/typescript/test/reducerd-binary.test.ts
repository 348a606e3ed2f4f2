// Which reducerd the tests run (findReducerd), in a repository made for each test.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";

import { findReducerd } from "./reducerd.js";

describe("findReducerd", () => {
  let dir: string;
  let repo: string;
  // An empty PATH and HOME, and no REDUCERD_BIN.
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "find-reducerd-"));
    repo = join(dir, "repo");
    mkdirSync(join(dir, "bin"), { recursive: true });
    env = { PATH: join(dir, "bin"), HOME: join(dir, "home") };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function executable(path: string, body = "", mtimeSeconds?: number): string {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `#!/bin/sh\n${body}`);
    chmodSync(path, 0o755);
    if (mtimeSeconds !== undefined) utimesSync(path, mtimeSeconds, mtimeSeconds);
    return path;
  }

  test("REDUCERD_BIN wins over built binaries", () => {
    executable(join(repo, "target/debug/reducerd"));
    const chosen = executable(join(dir, "elsewhere/reducerd"));
    assert.equal(findReducerd(repo, { ...env, REDUCERD_BIN: chosen }), chosen);
  });

  test("a REDUCERD_BIN that is missing fails rather than falling back", () => {
    executable(join(repo, "target/debug/reducerd"));
    assert.throws(() => findReducerd(repo, { ...env, REDUCERD_BIN: join(repo, "nope") }), /REDUCERD_BIN/);
  });

  for (const [newer, older] of [["release", "debug"], ["debug", "release"]]) {
    test(`the newer of release and debug is chosen (${newer})`, () => {
      executable(join(repo, "target", older, "reducerd"), "", 1_000_000);
      const want = executable(join(repo, "target", newer, "reducerd"), "", 2_000_000);
      assert.equal(findReducerd(repo, env), want);
    });
  }

  test("without a binary, cargo builds the debug one", () => {
    // A stand-in cargo that records its arguments and leaves what a build would.
    executable(
      join(dir, "bin/cargo"),
      `PATH=/usr/bin:/bin\necho "$@" > "${dir}/cargo-args"\nmkdir -p target/debug\n` +
        `printf '#!/bin/sh\\n' > target/debug/reducerd\nchmod +x target/debug/reducerd\n`,
    );
    mkdirSync(repo);
    assert.equal(findReducerd(repo, env), join(repo, "target/debug/reducerd"));
    assert.equal(readFileSync(join(dir, "cargo-args"), "utf8"), "build -p reducerd\n");
  });

  test("a failed build fails loudly", () => {
    executable(join(dir, "bin/cargo"), "exit 101\n");
    mkdirSync(repo);
    assert.throws(() => findReducerd(repo, env), /cargo build -p reducerd failed/);
  });

  test("without a binary or cargo it fails loudly", () => {
    mkdirSync(repo);
    assert.throws(() => findReducerd(repo, env), /no cargo/);
  });
});
