#!/usr/bin/env bash
# HandleAction throughput against PostgreSQL, beside this machine's limit for one action per
# transaction (../shared/bench/pg-limit), measured in the same run with the same clients,
# duration and key count. Prints both lines and the ratio.
#
#   scripts/bench.sh [clients] [seconds] [keys]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
clients=${1:-16} seconds=${2:-15} keys=${3:-10000}
admin=${PURE_REDUCER_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=purereducer_bench
url="${admin%/*}/$db"
limit_script=${PG_LIMIT:-../shared/bench/pg-limit}

psql "$admin" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
cargo build --release -p reducerd --example bench --bin reducerd --quiet

logs=$(mktemp -d)
target/release/reducerd --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --database-url "$url" \
  --roles canonical-store,action-dedup,reducer-service --min-pool-size 4 --max-pool-size "$clients" \
  >"$logs/reducerd.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$logs"' EXIT
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*reducerd serving gRPC.*addr=\([^ ]*\).*/\1/p' "$logs/reducerd.log")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$logs/reducerd.log"; exit 1; }

ours=$(target/release/examples/bench "http://$addr" "$clients" "$seconds" "$keys")
limit=$("$limit_script" "$url" "$clients" "$seconds" "$keys")
echo "$ours"
echo "$limit"
ours_tps=$(sed -n 's/.*tps=\([0-9.]*\).*/\1/p' <<<"$ours")
limit_tps=$(sed -n 's/.*tps=\([0-9.]*\).*/\1/p' <<<"$limit")
awk -v a="$ours_tps" -v b="$limit_tps" 'BEGIN { printf "ratio reducerd/pg-limit = %.2f\n", a / b }'
