"""Every grpcurl command in README.md's ```sh blocks runs, in order, against a live reducerd."""

import re
import shlex
import subprocess

import programs
import pytest
from conftest import Reducerd

EXPECTED = {}


def readme_commands(text: str) -> list:
    """The grpcurl commands of the sh blocks, each joined across its continuation lines
    (a trailing backslash, or a single-quoted JSON body still open at the line's end). A
    `# expect CODE` line before a command says which gRPC code it answers on the tour's
    server (an example of a repair with nothing to repair yet)."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        lines = iter(block.splitlines())
        expect = None
        for line in lines:
            if line.startswith("# expect "):
                expect = line.removeprefix("# expect ").strip()
                continue
            if not line.startswith("grpcurl "):
                continue
            command = line
            while command.endswith("\\") or not _complete(command):
                command = command[:-1] if command.endswith("\\") else command + "\n"
                command += next(lines)
            commands.append(command)
            if expect:
                EXPECTED[command] = expect
                expect = None
    return commands


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
        return True
    except ValueError:  # "No closing quotation"
        return False


COMMANDS = readme_commands((programs.REPO / "README.md").read_text())


@pytest.fixture(scope="module")
def grpcurl():
    try:
        return programs.grpcurl()
    except programs.MissingProgram as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def addr(tmp_path_factory):
    # A server of its own: the tour's steps build on each other (order-1 at version 1, ...).
    srv = Reducerd(tmp_path_factory.mktemp("readme"))
    yield srv.addr
    srv.stop()


def test_readme_has_grpcurl_commands():
    assert len(COMMANDS) >= 5, COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=[c.split()[-1] for c in COMMANDS])
def test_readme_command_runs(grpcurl, addr, command):
    args = shlex.split(command.replace("localhost:50051", addr))
    assert args[0] == "grpcurl"
    run = subprocess.run([grpcurl, *args[1:]], capture_output=True, text=True, timeout=30)
    if command in EXPECTED:
        assert run.returncode != 0 and f"Code: {EXPECTED[command]}" in run.stderr, f"{command}\n{run.stdout}{run.stderr}"
        return
    if "-max-time" in args and run.returncode != 0:
        # A streaming example ends when its -max-time passes; that is its expected end.
        assert "DeadlineExceeded" in run.stderr, f"{command}\n{run.stdout}{run.stderr}"
        return
    assert run.returncode == 0, f"{command}\n--- exit {run.returncode}\n{run.stdout}{run.stderr}"


def test_readme_shows_every_rpc():
    """Every RPC of the platform's services has a grpcurl example (ReducerFunction is
    implemented by users, not served by reducerd)."""
    rpcs = []
    for proto in (programs.REPO / "proto" / "purereducer" / "v1").glob("*.proto"):
        text = proto.read_text()
        for service, body in re.findall(r"^service (\w+) \{(.*?)^\}", text, flags=re.S | re.M):
            if service == "ReducerFunction":
                continue
            rpcs += [f"purereducer.v1.{service}/{rpc}" for rpc in re.findall(r"rpc (\w+)\(", body)]
    assert len(rpcs) >= 11, rpcs
    shown = " ".join(COMMANDS)
    missing = [rpc for rpc in rpcs if rpc not in shown]
    assert not missing, f"README.md has no grpcurl example for {missing}"
