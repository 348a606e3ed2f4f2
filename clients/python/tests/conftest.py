"""Starts live reducerd servers for the tests (which binary: see programs.py)."""

import pathlib
import queue
import subprocess
import threading

import programs
import pytest

from purereducer import Client


class Reducerd:
    """One reducerd process with its own SQLite file; `addr` is its gRPC host:port."""

    def __init__(self, workdir: pathlib.Path, config: str = ""):
        try:
            reducerd = programs.reducerd()
        except programs.MissingProgram as err:
            pytest.fail(str(err))
        args = [reducerd, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                "--database-url", f"sqlite://{workdir}/t.db"]
        if config:
            (workdir / "reducerd.toml").write_text(config)
            args += ["--config", str(workdir / "reducerd.toml")]
        self.log = []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addr = self._wait_for_addr(timeout=30)

    def _wait_for_addr(self, timeout: float) -> str:
        # Read stdout on a thread so a silent server cannot block the test past the timeout;
        # the thread keeps draining the pipe afterwards so the server never blocks on it.
        lines: "queue.Queue[str]" = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line)
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                pytest.fail(f"reducerd did not start within {timeout}s:\n{''.join(self.log)}")
            if not line:
                pytest.fail(f"reducerd exited early:\n{''.join(self.log)}")
            if "reducerd serving gRPC" in line:
                return next(t for t in line.split() if t.startswith("addr=")).removeprefix("addr=")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Reducerd(tmp_path_factory.mktemp("reducerd"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    with Client(server.addr) as c:
        yield c
