#!/usr/bin/env bash
# Fault-injection check: real reducerd processes on a PostgreSQL cluster of their own
# (initdb in a temp dir, restarted and killed at will), driven over gRPC by the Python
# client under load, checked for "nothing lost, nothing applied twice" (tests/faults).
# Needs target/debug/reducerd (built by cargo; REDUCERD_BIN picks another) and PostgreSQL's
# server binaries (/usr/lib/postgresql/15/bin; FAULTS_PG_BIN picks others); the Kafka tests
# need the tansu broker (~/.cargo/bin/tansu; FAULTS_TANSU picks another). Extra arguments
# go to pytest (for example -k queued). Ends with "N passed, N failed".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
venv=$root/.tools/venv
export REDUCERD_BIN=${REDUCERD_BIN:-$root/target/debug/reducerd}

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r clients/python/requirements-test.txt \
  -r tests/faults/requirements.txt

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# Streamed as it runs (the suite takes minutes), then summed up from the copy.
"$venv/bin/python" -m pytest -q -rfEs -p no:cacheprovider --confcutdir=tests/faults \
  --rootdir=tests/faults -c tests/faults/pytest.ini tests/faults "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
out=$(cat "$log")
summary=$(grep -E '[0-9]+ (passed|failed|error)' <<<"$out" | tail -1 || true)
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
failed=$(( $(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ error' <<<"$summary" | grep -oE '[0-9]+' || echo 0) ))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
