"""The Dockerfile builds reducerd the agreed way, .dockerignore keeps its inputs, and
docs/deploy.md points only at files that exist."""

from __future__ import annotations

import fnmatch
import re

from deploy_support import (
    CHART,
    DEPLOY_DOC,
    DOCKERFILE,
    DOCKERIGNORE,
    GRPC_PORT,
    METRICS_PORT,
    REPO,
    load_yaml,
)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def test_dockerfile_builds_reducerd_in_stages() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms[0] == "rust:1.95-bookworm AS builder"
    assert froms[-1].startswith("debian:bookworm-slim")
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "cargo build --release --locked -p reducerd" in runs
    assert "ca-certificates" in runs
    user = [args for keyword, args in instructions if keyword == "USER"][-1]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"USER must be a numeric non-root id, got {user}"
    assert user.split(":")[0] == str(load_yaml(CHART / "values.yaml")["podSecurityContext"]["runAsUser"])
    entrypoint = [args for keyword, args in instructions if keyword == "ENTRYPOINT"][-1]
    assert re.fullmatch(r'\["(/usr/local/bin/)?reducerd"\]', entrypoint), entrypoint
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert any("--from=builder" in args and "reducerd" in args for args in copies)
    assert any(re.search(r"(^|\s)migrations/?\s", args) for args in copies)
    exposed = {int(p) for keyword, args in instructions if keyword == "EXPOSE" for p in args.split()}
    assert exposed == {GRPC_PORT, METRICS_PORT}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns we use (last match wins, ! negates)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) or (pattern.startswith("**/") and
               fnmatch.fnmatch(prefix.split("/")[-1], pattern[3:])) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_build_inputs_and_drops_the_rest() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "services/reducerd/Cargo.toml", "proto", "migrations/postgres"):
        assert not dockerignored(needed, patterns), needed
        assert (REPO / needed).exists(), f"{needed} is a build input but does not exist"
    for dropped in ("target/release/reducerd", ".git/HEAD", ".tools/venv", "services/api/target/x",
                    "clients/ts/node_modules/x"):
        assert dockerignored(dropped, patterns), dropped
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                if source != ".":
                    assert (REPO / source).exists() and not dockerignored(source.rstrip("/"), patterns), source


def test_deploy_doc_points_at_real_files() -> None:
    text = DEPLOY_DOC.read_text()
    paths = set(re.findall(r"`((?:deploy|docs)/[A-Za-z0-9_./-]+|Dockerfile|\.dockerignore)`", text))
    assert len(paths) >= 5
    for path in paths:
        assert (REPO / path.rstrip("/")).exists(), f"docs/deploy.md mentions missing {path}"
    for needed in ("helm upgrade --install", "docker compose", "--scale", "reducerd migrate", "partitions"):
        assert needed in text, needed


def test_deploy_doc_covers_auth_and_tls() -> None:
    text = DEPLOY_DOC.read_text()
    values = load_yaml(CHART / "values.yaml")
    for section in ("auth", "tls"):
        for key in values[section]:
            assert f"`{section}.{key}" in text, f"docs/deploy.md does not explain {section}.{key}"
    for key in ("serviceMonitor.tokenSecret", "kafka.caSecret", "database.caSecret"):
        assert f"`{key}" in text, key
    assert "**development tokens**" in text
    for needed in ("sha256sum", "Rotating tokens and certificates", 'auth.mode = "token"'):
        assert needed in text, needed
