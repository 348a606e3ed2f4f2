#!/usr/bin/env bash
# The project's test command: installs and starts what the tests need (scripts/tools.sh),
# then runs every check. Ends with one line "total: N passed, N failed".
#
#   scripts/test.sh            everything
#   SKIP_CLIPPY=1 scripts/test.sh   skips clippy (for quick local reruns)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
step() { printf '\n==> %s\n' "$*"; }

step "tools"
scripts/tools.sh

export PURE_REDUCER_TEST_DATABASE_URL=${PURE_REDUCER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export GRPCURL="$root/.tools/venv/bin/grpcurl"

step "start a Kafka-protocol broker (tansu, in memory) for the end-to-end tests"
broker_port=${PURE_REDUCER_TEST_BROKER_PORT:-19092}
PATH="$HOME/.cargo/bin:$PATH" tansu broker --storage-engine memory://tansu/ \
  --listener-url "tcp://127.0.0.1:$broker_port" --advertised-listener-url "tcp://127.0.0.1:$broker_port" \
  >"$logs/tansu.log" 2>&1 &
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null || true; rm -rf "$logs"' EXIT
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break
  sleep 0.1
done
# A broker already on the port (left by another run) would answer instead of this one.
if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "tansu did not start on 127.0.0.1:$broker_port (is another broker there? set PURE_REDUCER_TEST_BROKER_PORT):" >&2
  cat "$logs/tansu.log" >&2
  exit 1
fi
export PURE_REDUCER_TEST_KAFKA="127.0.0.1:$broker_port"

step "drop databases left by earlier test runs"
psql "$PURE_REDUCER_TEST_DATABASE_URL" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'prt\_%'" |
  while read -r db; do psql "$PURE_REDUCER_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true; done

step "buf lint and format"
buf="$root/.tools/node/node_modules/.bin/buf"
"$buf" lint
"$buf" format --diff --exit-code

step "buf breaking against the API before its newest change"
scripts/check-proto-breaking.sh --self-test

step "cargo fmt"
cargo fmt --all -- --check

if [ -z "${SKIP_CLIPPY:-}" ]; then
  step "cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "deployment checks (Helm chart, compose, Dockerfile)"
deploy/tests/check-deploy.sh -q 2>&1 | tee "$logs/deploy.log"

step "observability checks (Prometheus rules, Grafana dashboard)"
deploy/tests/check-observability.sh 2>&1 | tee "$logs/observability.log"

step "cargo test"
cargo test --workspace --all-targets --locked 2>&1 | tee "$logs/cargo.log"

step "fuzz: the built-in reducers and event decoding (cargo fuzz, 20 s per target)"
scripts/check-fuzz.sh 2>&1 | tee "$logs/fuzz.log"

step "clients (Python, TypeScript, Go) against a live reducerd"
clients/tests/run.sh 2>&1 | tee "$logs/clients.log"

step "web console: a real browser (chromium) against a live reducerd"
cargo build -p reducerd -p reducerctl --locked
tests/console/check-console.sh 2>&1 | tee "$logs/console.log"

step "live metrics: Prometheus scrapes reducerd under load and answers every runbook query"
deploy/tests/check-live.sh 2>&1 | tee "$logs/live.log"

step "faults: PostgreSQL, reducerd and the broker killed and restarted under load, nothing lost or applied twice"
tests/faults/check-faults.sh 2>&1 | tee "$logs/faults.log"

# One closing line over every runner above.
passed=0 failed=0
while read -r p f; do
  passed=$((passed + p)) failed=$((failed + f))
done < <(
  sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$logs/cargo.log"
  cat "$logs/observability.log" "$logs/fuzz.log" "$logs/clients.log" "$logs/console.log" "$logs/live.log" "$logs/faults.log" |
    grep -E '^[0-9]+ passed, [0-9]+ failed' | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/'
  summary=$(grep -E '[0-9]+ (passed|failed)' "$logs/deploy.log" | tail -1)
  echo "$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)" \
    "$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)"
)
echo
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
