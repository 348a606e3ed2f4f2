#!/usr/bin/env bash
# Checks the Prometheus rules and the Grafana dashboard (deploy/prometheus, deploy/grafana):
# promtool validates and unit-tests the rules and the scrape config, then
# check_observability.py holds them to the operations runbook (metric names, PromQL,
# thresholds, severities). Prints one line per check and, last, "N passed, N failed";
# exits non-zero if any check failed.
#
# Runs from any directory. Installs what is missing: promtool from Debian's `prometheus`
# package, PyYAML in .tools/venv. The runbook is read from $RUNBOOK or
# ../shared/reference/operations-runbook.md beside the repository.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VENV=.tools/venv
# Any PyYAML 6 will do; a newer one already in the shared venv is kept.
PYYAML="pyyaml>=6,<7"

log() { printf '%s\n' "$*" >&2; }

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  log "installing promtool (Debian package prometheus)..."
  apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

ensure_python() {
  "$VENV/bin/python" -c 'import yaml' >/dev/null 2>&1 && return 0
  # .tools/venv is shared with the project's other checks: add to it, never recreate it.
  if [ ! -x "$VENV/bin/python" ]; then
    if ! command -v python3 >/dev/null 2>&1; then
      log "installing python3..."
      apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
    fi
    log "creating $VENV..."
    # Debian's python3 has no ensurepip until python3-venv is installed.
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null &&
        python3 -m venv "$VENV"
    fi
  fi
  log "installing PyYAML into $VENV..."
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PYYAML"
}

# A failed install is not fatal here: the checks that need the tool then fail and are
# counted, so the summary line is always printed.
ensure_promtool || log "could not install promtool"
ensure_python || log "could not prepare $VENV"

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND, shows its output only if it fails.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'ok   - %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL - %s\n' "$name"
    printf '%s\n' "$out" | sed 's/^/       /'
  fi
}

# --lint-fatal: duplicate rules are a mistake, not a warning to scroll past.
check "promtool check rules" promtool check rules --lint=all --lint-fatal deploy/prometheus/rules.yml
check "promtool test rules" promtool test rules deploy/prometheus/tests/rules_test.yml
check "promtool check config" promtool check config --lint=all --lint-fatal deploy/prometheus/prometheus.yml

PY="$VENV/bin/python"
CHECKER=deploy/tests/check_observability.py
if names=$("$PY" "$CHECKER" --list 2>&1); then
  while IFS= read -r name; do
    check "$name" "$PY" "$CHECKER" "$name"
  done <<<"$names"
else
  check "check_observability.py runs" false
  printf '%s\n' "$names" | sed 's/^/       /'
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
