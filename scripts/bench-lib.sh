# Shared by scripts/bench.sh and scripts/bench-matrix.sh (sourced, not run): settings, the
# release build, a reducerd started on a fresh database with every default role, and cleanup.
#
# Environment:
#   PURE_REDUCER_BENCH_ADMIN_URL  admin database URL (postgres://postgres@127.0.0.1:5432/postgres)
#   PURE_REDUCER_BENCH_SECONDS    measured seconds per run (10)
#   PURE_REDUCER_BENCH_LABEL      label of every JSON record (the short commit id)
#   PURE_REDUCER_BENCH_REDUCERD   reducerd binary to measure instead of building target/release/reducerd
#   PG_LIMIT                      the machine-limit script (../shared/bench/pg-limit)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
admin=${PURE_REDUCER_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=purereducer_bench
url="${admin%/*}/$db"
seconds=${PURE_REDUCER_BENCH_SECONDS:-10}
label=${PURE_REDUCER_BENCH_LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PG_LIMIT=${PG_LIMIT:-$(cd .. && pwd)/shared/bench/pg-limit}
reducerd=${PURE_REDUCER_BENCH_REDUCERD:-}
bench=target/release/reducer-bench

# Builds reducer-bench, and reducerd unless another binary was named.
build() {
  if [ -n "$reducerd" ]; then
    cargo build --release -p reducer-bench --locked --quiet
  else
    cargo build --release -p reducerd -p reducer-bench --locked --quiet
    reducerd=target/release/reducerd
  fi
}

work=$(mktemp -d)
server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# start_server NAME DATABASE_URL [reducerd flags...]: every default role, ports picked by the
# kernel; sets $server (pid) and $target from the "reducerd serving gRPC" log line.
start_server() {
  local name=$1 database_url=$2 log="$work/reducerd-$1.log" addr=""
  shift 2
  "$reducerd" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --database-url "$database_url" "$@" \
    >"$log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*reducerd serving gRPC.*addr=\([^ ]*\).*/\1/p' "$log")
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "reducerd ($name) did not start:" >&2; cat "$log" >&2; exit 1; }
  target="http://$addr"
  echo "== reducerd ($reducerd) on $name at $addr, pid $server"
}

# Warns when PostgreSQL may refuse pgbench's connections: reducerd's pool (up to 50 by
# default) stays open while pg-limit runs, next to whatever else is connected.
check_connections() {
  local max used
  max=$(psql "$admin" -tAc "SHOW max_connections")
  used=$(psql "$admin" -tAc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
  if [ $((max - used)) -lt $((50 + 32 + 2)) ]; then
    echo "warning: PostgreSQL allows $max connections and $used are in use; reducerd's pool (50) and" \
      "pg-limit's 32 clients may not fit, and pg-limit then fails" >&2
  fi
}

fresh_database() {
  psql "$admin" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}

# field FILE NAME...: fields of the last JSON record in FILE, one per line ("" when null);
# dotted names reach into objects (latency_ms.p99).
field() {
  python3 - "$@" <<'EOF'
import json, sys
record = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for path in sys.argv[2:]:
    value = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    print("" if value is None else value)
EOF
}
