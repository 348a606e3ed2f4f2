#!/usr/bin/env bash
# The longer benchmark behind docs/bench: HandleAction on PostgreSQL with every default role,
# each point run PURE_REDUCER_BENCH_RUNS times (3), every run beside a pg-limit measured right
# after it with the same clients (at most 32) and keys. About 20 minutes with the defaults
# (16 points x 3 runs x (1 s warm-up + 10 s + 10 s pg-limit)).
#
#   throughput and p99 against clients: 1 2 4 8 16 32 64 callers, uniform over 10,000 keys
#   throughput and p99 against keys:    1 10 100 1000 10000 keys, 32 callers (1 key = hot key)
#   GAVE_UP share on one hot key:       1 2 4 8 16 32 64 callers
#
# Repetitions go round the whole matrix rather than repeating a point back to back, so a
# passing disturbance on the machine spreads over points instead of skewing one. Appends one
# JSON record per run to the results file, then calls scripts/plot-bench.py, which writes the
# PNGs into docs/bench and prints the markdown table. For a before/after comparison run it
# twice into the same file with different labels and different binaries:
#
#   PURE_REDUCER_BENCH_LABEL=before PURE_REDUCER_BENCH_REDUCERD=/tmp/reducerd-before scripts/bench-matrix.sh
#   PURE_REDUCER_BENCH_LABEL=after scripts/bench-matrix.sh
#
# Environment:
#   PURE_REDUCER_BENCH_RUNS      runs per point (3; fewer than 3 is refused)
#   PURE_REDUCER_BENCH_RESULTS   results file (docs/bench/results.jsonl), appended to
#   PURE_REDUCER_BENCH_CLIENTS   callers of the clients sweeps ("1 2 4 8 16 32 64")
#   PURE_REDUCER_BENCH_KEYS      keys of the keys sweep ("1 10 100 1000 10000")
#   and those of scripts/bench-lib.sh: PURE_REDUCER_BENCH_ADMIN_URL, _SECONDS, _LABEL,
#   _REDUCERD (measure that binary instead of building reducerd), PG_LIMIT.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
runs=${PURE_REDUCER_BENCH_RUNS:-3}
results=${PURE_REDUCER_BENCH_RESULTS:-docs/bench/results.jsonl}
read -r -a client_counts <<<"${PURE_REDUCER_BENCH_CLIENTS:-1 2 4 8 16 32 64}"
read -r -a key_counts <<<"${PURE_REDUCER_BENCH_KEYS:-1 10 100 1000 10000}"
[ "$runs" -ge 3 ] || { echo "PURE_REDUCER_BENCH_RUNS must be at least 3 (min/median/max per point)" >&2; exit 2; }
mkdir -p "$(dirname "$results")"

# The points, one reducer-bench flag set each, each once: the keys sweep's 10,000-key point is
# the clients sweep's 32-caller point and its 1-key point the hot-key sweep's (plot-bench.py
# groups runs by their parameters, not by sweep).
points=()
add_point() {
  local point
  for point in "${points[@]}"; do
    [ "$point" = "$1" ] && return 0
  done
  points+=("$1")
}
for clients in "${client_counts[@]}"; do
  add_point "--clients $clients --dist uniform --keys 10000"
done
for clients in "${client_counts[@]}"; do
  add_point "--clients $clients --dist hot"
done
for keys in "${key_counts[@]}"; do
  if [ "$keys" = 1 ]; then
    add_point "--clients 32 --dist hot"
  else
    add_point "--clients 32 --dist uniform --keys $keys"
  fi
done

started=$SECONDS
build
check_connections
fresh_database "$db"
start_server postgres "$url"
total=$((runs * ${#points[@]}))
done_runs=0
for run in $(seq 1 "$runs"); do
  for point in "${points[@]}"; do
    read -r -a flags <<<"$point"
    done_runs=$((done_runs + 1))
    echo "-- run $run/$runs, $done_runs/$total: $point"
    "$bench" --target "$target" --server-pid "$server" --json "$results" --label "$label" \
      --duration "$seconds" --warmup 1 --pg-url "$url" --pg-limit-seconds "$seconds" "${flags[@]}" |
      sed -n '/^  \(throughput\|committed\|statuses\|latency\|pg-limit\)/p'
  done
done
stop_server
echo "matrix done in $((SECONDS - started)) s; results in $results"

python=.tools/venv/bin/python
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
  echo "no matplotlib in .tools/venv (scripts/tools.sh installs it): table only" >&2
  python=python3
fi
"$python" scripts/plot-bench.py "$results" --out docs/bench
