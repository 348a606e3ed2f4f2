#!/usr/bin/env bash
# Pure Reducer benchmark, about 4 minutes after the release build: drives a release reducerd
# with every default role (projections and subscribers included) through reducer-bench, and
# measures this machine's PostgreSQL limit for one action per transaction
# (../shared/bench/pg-limit) in the same run, so every throughput is also a ratio to it.
#
# PostgreSQL (fresh database purereducer_bench), each scenario about 10 s:
#   a  HandleAction, 32 clients, uniform over 10,000 keys     vs pg-limit 32 clients, 10,000 keys
#   b  one hot key, 64 clients, default retries, GAVE_UP share vs pg-limit 32 clients, 1 key
#   c  open loop at half of a's rate (64 callers), commit->projection lag from Subscribe (p99 of both)
#   d  PublishAction + WaitForCompletion, open loop at half of a's rate (64 callers), p99
#   e  100,000 sequential keys (capped at PURE_REDUCER_BENCH_E_SECONDS), then server RSS
# SQLite (a temporary file, reducerd restarted): uniform as a, hot key as b.
# Kafka (only with PURE_REDUCER_BENCH_KAFKA=host:port, reducerd restarted with
# --kafka-brokers): a, and d with lag.
# Ends with a summary table; every run is also appended as JSON to the results file.
#
#   scripts/bench.sh
#
# Environment:
#   PURE_REDUCER_BENCH_E_SECONDS  longest the 100,000-key run may take (150)
#   PURE_REDUCER_BENCH_JSON       results file (target/bench/bench-<time>.jsonl)
#   PURE_REDUCER_BENCH_EXTRA      reducer-bench flags of one more PostgreSQL scenario, e.g.
#                                 "--dist zipf --zipf-s 1.2 --clients 16"
#   PURE_REDUCER_BENCH_KAFKA      Kafka bootstrap servers for the Kafka leg
#   and those of scripts/bench-lib.sh: PURE_REDUCER_BENCH_ADMIN_URL, _SECONDS, _LABEL,
#   _REDUCERD (measure that binary instead of building reducerd), PG_LIMIT.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
e_seconds=${PURE_REDUCER_BENCH_E_SECONDS:-150}
mkdir -p target/bench
json=${PURE_REDUCER_BENCH_JSON:-target/bench/bench-$(date +%Y%m%d-%H%M%S).jsonl}

started=$SECONDS
build

rows=()
# run SCENARIO BACKEND LIMIT_TPS EXTRA_COLUMN [reducer-bench flags...]: one measured run and
# its summary row. LIMIT_TPS, when given, is the pg-limit figure for runs that do not measure
# their own; EXTRA_COLUMN names what the last column shows (gave_up, lag, rss or "").
run() {
  local scenario=$1 backend=$2 limit=$3 extra=$4
  shift 4
  echo "-- $scenario ($backend)"
  "$bench" --target "$target" --server-pid "$server" --json "$json" --label "$label" "$@"
  local values
  mapfile -t values < <(field "$json" throughput committed_per_s pg_limit_tps latency_ms.p99 gave_up_share \
    lag_ms.p99 rss_start_mb rss_mb completed schedule_missed)
  local tps=${values[2]:-$limit} limit_column="-" ratio="-" committed_ratio="-"
  if [ -n "$tps" ]; then
    limit_column=$(printf '%.1f' "$tps")
    ratio=$(awk -v a="${values[0]}" -v b="$tps" 'BEGIN { printf "%.2f", a / b }')
    committed_ratio=$(awk -v a="${values[1]}" -v b="$tps" 'BEGIN { printf "%.2f", a / b }')
  fi
  local note=""
  # Open loop: slots that fell due but found every caller busy; their latency is not counted.
  if [ -n "${values[9]}" ] && [ "${values[9]}" != 0 ]; then
    note="${values[9]} due sends never started; "
  fi
  case $extra in
    gave_up) note+=$(awk -v s="${values[4]}" 'BEGIN { printf "GAVE_UP %.1f%%", s * 100 }') ;;
    lag) note+=$(printf 'commit->projection p99 %.1f ms' "${values[5]:-0}") ;;
    rss) note=$(printf '%s keys written; RSS %.1f -> %.1f MB' "${values[8]}" "${values[6]:-0}" "${values[7]:-0}") ;;
  esac
  note=${note%; }
  rows+=("$(printf '%-3s %-9s %10.1f %11.1f %10s %6s %8s %9.1f  %s' "$scenario" "$backend" "${values[0]}" \
    "${values[1]}" "$limit_column" "$ratio" "$committed_ratio" "${values[3]}" "$note")")
  last_throughput=${values[0]}
  last_limit=$tps
}

common=(--duration "$seconds" --warmup 1)

check_connections
fresh_database "$db"
start_server postgres "$url"
pg=(--pg-url "$url" --pg-limit-seconds "$seconds")
run a postgres "" "" --clients 32 --dist uniform --keys 10000 "${common[@]}" "${pg[@]}"
uniform_rate=$last_throughput uniform_limit=$last_limit
run b postgres "" gave_up --clients 64 --dist hot "${common[@]}" "${pg[@]}" --pg-limit-clients 32 --pg-limit-keys 1
hot_limit=$last_limit
half=$(awk -v r="$uniform_rate" 'BEGIN { h = r / 2; printf "%.0f", h < 1 ? 1 : h }')
# Open loop gets 64 callers so the schedule, not the number of callers, sets the load.
run c postgres "" lag --clients 64 --dist uniform --keys 10000 --rate "$half" --lag subscribe "${common[@]}"
run d postgres "" "" --clients 64 --dist uniform --keys 10000 --rate "$half" --mode publish "${common[@]}"
run e postgres "" rss --clients 32 --dist sequential --keys 100000 --actions 100000 --warmup 0 \
  --duration "$e_seconds"
if [ -n "${PURE_REDUCER_BENCH_EXTRA:-}" ]; then
  read -r -a extra_flags <<<"$PURE_REDUCER_BENCH_EXTRA"
  run x postgres "" "" "${common[@]}" "${extra_flags[@]}"
fi
stop_server

start_server sqlite "sqlite:$work/bench.db"
run a sqlite "$uniform_limit" "" --clients 32 --dist uniform --keys 10000 "${common[@]}"
run b sqlite "$hot_limit" gave_up --clients 64 --dist hot "${common[@]}"
stop_server

if [ -n "${PURE_REDUCER_BENCH_KAFKA:-}" ]; then
  fresh_database "$db"
  start_server kafka "$url" --kafka-brokers "$PURE_REDUCER_BENCH_KAFKA"
  run a kafka "$uniform_limit" "" --clients 32 --dist uniform --keys 10000 "${common[@]}"
  run d kafka "" lag --clients 64 --dist uniform --keys 10000 --rate "$half" --mode publish --lag subscribe \
    "${common[@]}"
  stop_server
fi

echo
echo "Summary ($label). ratio = actions/s / pg-limit, c-ratio = committed/s / pg-limit, pg-limit measured"
echo "in this run; SQLite and Kafka rows are set against the PostgreSQL limit; c, d, e are open loop"
echo "or a fixed count, so their rate is not a capacity."
printf '%-3s %-9s %10s %11s %10s %6s %8s %9s  %s\n' "" backend "actions/s" committed/s pg-limit ratio "c-ratio" "p99 ms" ""
printf '%s\n' "${rows[@]}"
echo
echo "results: $json ($((SECONDS - started)) s)"
