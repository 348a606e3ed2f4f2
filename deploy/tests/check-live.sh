#!/usr/bin/env bash
# Live observability check: a real Prometheus server scrapes a real reducerd during a short
# load and evaluates every runbook PromQL expression and recording rule
# (deploy/tests/live). Needs target/debug/reducerd (built by cargo test) and installs what
# else is missing. Ends with "N passed, N failed".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
venv=$root/.tools/venv
export REDUCERD_BIN=${REDUCERD_BIN:-$root/target/debug/reducerd}

if ! command -v prometheus >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r clients/python/requirements-test.txt "pyyaml>=6,<7"

set +e
out=$("$venv/bin/python" -m pytest -q -rfEs -p no:cacheprovider --confcutdir=deploy/tests/live deploy/tests/live 2>&1)
rc=$?
set -e
printf '%s\n' "$out"
summary=$(grep -E '[0-9]+ (passed|failed|error)' <<<"$out" | tail -1 || true)
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
failed=$(( $(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ error' <<<"$summary" | grep -oE '[0-9]+' || echo 0) ))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
