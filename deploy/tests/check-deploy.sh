#!/usr/bin/env bash
# Static checks of the deployment artefacts: Helm chart, compose stack, Dockerfile.
# Needs no cluster and no Docker engine. Installs what it uses, only when missing:
#   - a Python venv at .tools/venv with deploy/tests/requirements-deploy.txt
#   - promtool (Debian package `prometheus`) when `promtool` is not on PATH
# Usage: deploy/tests/check-deploy.sh [pytest args...]   (from any directory)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.tools/venv"
requirements="$repo_root/deploy/tests/requirements-deploy.txt"

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
  if [[ -z "$apt_updated" ]]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Python venv (Debian's python3 needs python3-venv for ensurepip).
if [[ ! -x "$venv/bin/python" ]]; then
  echo "check-deploy: creating $venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
fi

# Install the pinned requirements only if one is missing or at another version.
if ! "$venv/bin/python" - "$requirements" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, wanted = line.partition("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
  echo "check-deploy: installing deploy/tests/requirements-deploy.txt into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "check-deploy: installing promtool (Debian package prometheus)"
  apt_install prometheus
fi

cd "$repo_root"
# Only this directory: its test_*.py modules and conftest.py, nothing elsewhere in the repo.
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$repo_root/deploy/tests" "$@"
