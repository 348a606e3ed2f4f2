"""Fixtures of the fault suite: a private copy of the reducerd binary, a PostgreSQL cluster
per test (copied from one initdb per session), reducerd processes, a tansu broker for the
Kafka tests (its records in a PostgreSQL 16+ cluster of its own), and the figures report
printed at the end of the run (one `FAULT ...` line per test)."""

from __future__ import annotations

import datetime
import hashlib
import os
import pathlib
import shutil
import stat
import tempfile

import pytest

import harness

FIGURES: list = []
BINARY: list = []  # what was tested: path, mtime, sha256 prefix


@pytest.fixture(scope="session")
def settings() -> harness.Settings:
    return harness.Settings()


@pytest.fixture(scope="session")
def binary():
    """REDUCERD_BIN copied once per session, so a rebuild during the run changes nothing."""
    source = pathlib.Path(os.environ.get("REDUCERD_BIN", str(harness.ROOT / "target/debug/reducerd")))
    if not os.access(source, os.X_OK):
        pytest.fail(f"{source} is missing: build it first (cargo build -p reducerd) or set REDUCERD_BIN")
    where = pathlib.Path(tempfile.mkdtemp(prefix="faults-bin-"))
    copy = where / "reducerd"
    shutil.copy2(source, copy)
    copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()[:16]
    built = datetime.datetime.fromtimestamp(copy.stat().st_mtime, datetime.timezone.utc)
    BINARY.append(f"reducerd under test: {source} built {built:%Y-%m-%d %H:%M:%S}Z sha256:{digest}")
    yield copy
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template():
    if not (harness.PG_BIN / "initdb").exists():
        pytest.fail(f"no initdb in {harness.PG_BIN} (set FAULTS_PG_BIN)")
    data = harness.make_template_cluster()
    yield data
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def postgres(pg_template):
    """A PostgreSQL cluster of this test alone, so restarting it disturbs nothing else."""
    pg = harness.Postgres(pg_template)
    yield pg
    pg.destroy()


@pytest.fixture(scope="session")
def broker_pg_template():
    """The template of the broker's own cluster: tansu 0.6.0 needs PostgreSQL 16 or later."""
    bin_dir = harness.broker_pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.fail(f"no initdb for the broker's database in {bin_dir} (install tests/faults/requirements.txt "
                    "or set FAULTS_BROKER_PG_BIN to PostgreSQL 16 or later)")
    data = harness.make_template_cluster(bin_dir)
    yield bin_dir, data
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def broker(broker_pg_template, tmp_path):
    """A started tansu broker of this test alone, its records in a PostgreSQL cluster of its
    own (database tansu), so stopping and restarting it loses nothing. Request it before
    start_reducerd: the reducerds stop (and drain their outbox) before it does."""
    if not os.access(harness.TANSU, os.X_OK):
        pytest.fail(f"no tansu broker at {harness.TANSU} (cargo install tansu, or set FAULTS_TANSU)")
    bin_dir, template = broker_pg_template
    storage = harness.Postgres(template, name="tansu", bin_dir=bin_dir)
    b = harness.Broker(storage, tmp_path)
    try:
        b.start()
        yield b
    finally:
        b.stop()
        storage.destroy()


@pytest.fixture
def start_reducerd(binary, tmp_path):
    """start_reducerd(config, name) -> a started Reducerd; all are stopped after the test."""
    started = []

    def start(config: harness.ReducerdConfig, name: str = "reducerd") -> harness.Reducerd:
        r = harness.Reducerd(binary, config, tmp_path, name)
        started.append(r)
        r.start()
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def record():
    """record(figures): keeps the test's figures for the summary (and prints them)."""

    def keep(figures: harness.Figures) -> None:
        FIGURES.append(figures.line())
        print(figures.line(), flush=True)
        report = os.environ.get("FAULTS_REPORT")
        if report:
            with open(report, "a", encoding="utf-8") as out:
                out.write(figures.line() + "\n")

    return keep


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("fault figures")
        for line in BINARY:
            terminalreporter.write_line(line)
        for line in FIGURES:
            terminalreporter.write_line(line)
