#!/usr/bin/env bash
# Web console check: a real reducerd (the embedded default on a SQLite file in a temp dir)
# serving its console, driven by headless Chromium through selenium (tests/console/
# test_console.py). Needs target/debug/reducerd and target/debug/reducerctl (built by cargo)
# and what scripts/console-tools.sh installs (chromium, chromium-driver, selenium in
# .tools/venv). Ends with "N passed, N failed".
#
#   tests/console/check-console.sh
#
# CONSOLE_GRPC_PORT and CONSOLE_HTTP_PORT pick other ports (default 15051 and 18000);
# CONSOLE_SCREENSHOTS another screenshot folder (default target/console-screenshots).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
reducerd=$root/target/debug/reducerd
reducerctl=$root/target/debug/reducerctl
python=$root/.tools/venv/bin/python
grpc_port=${CONSOLE_GRPC_PORT:-15051}
http_port=${CONSOLE_HTTP_PORT:-18000}

for bin in "$reducerd" "$reducerctl"; do
  if [ ! -x "$bin" ]; then
    echo "console: $bin is missing; build them first: cargo build -p reducerd -p reducerctl" >&2
    exit 1
  fi
done
if [ ! -x "$python" ] || ! "$python" -c 'import selenium' 2>/dev/null \
  || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "console: chromium, chromedriver or selenium is missing; run scripts/console-tools.sh" >&2
  exit 1
fi

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/reducerd.toml" <<EOF
[server]
listen = "127.0.0.1:$grpc_port"
metrics_listen = "127.0.0.1:$http_port"
[storage]
database_url = "sqlite://$tmp/console.db"
EOF

"$reducerd" --config "$tmp/reducerd.toml" >"$tmp/reducerd.log" 2>&1 &
pid=$!

log_tail() {
  echo "---- reducerd log (last 60 lines) ----" >&2
  tail -n 60 "$tmp/reducerd.log" >&2 || true
  echo "--------------------------------------" >&2
}

# Up to 60 s for the HTTP port to answer.
up=""
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$http_port/metrics" >/dev/null 2>&1; then
    up=1
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
if [ -z "$up" ]; then
  echo "console: reducerd did not answer on http://127.0.0.1:$http_port/metrics within 60 s" >&2
  log_tail
  echo "0 passed, 1 failed"
  exit 1
fi

set +e
CONSOLE_URL="http://127.0.0.1:$http_port" \
  REDUCERCTL="$reducerctl" \
  REDUCERD_ADDR="127.0.0.1:$grpc_port" \
  SQLITE_PATH="$tmp/console.db" \
  SCREENSHOT_DIR="${CONSOLE_SCREENSHOTS:-$root/target/console-screenshots}" \
  "$python" "$root/tests/console/test_console.py"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  log_tail
fi
exit "$rc"
