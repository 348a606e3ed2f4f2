#!/usr/bin/env bash
# Copy the Prometheus rules (deploy/prometheus/rules.yml, the source of truth used by the compose
# stack and by promtool tests) into the Helm chart, which can only read files inside itself and
# ships them as its PrometheusRule. Run it after every change to rules.yml; deploy/tests checks
# that the two files hold the same rule groups.
#
# Usage: deploy/scripts/sync-rules.sh          copy rules.yml into the chart
#        deploy/scripts/sync-rules.sh --check  exit 1 (and say so) if the copy is out of date
# SYNC_RULES_SRC / SYNC_RULES_DEST override the two paths (used by the tests).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="${SYNC_RULES_SRC:-$repo_root/deploy/prometheus/rules.yml}"
dest="${SYNC_RULES_DEST:-$repo_root/deploy/helm/pure-reducer/files/rules.yml}"

if [[ ! -f "$src" ]]; then
  echo "sync-rules: source $src does not exist" >&2
  exit 1
fi

case "${1:-}" in
  --check)
    if cmp -s "$src" "$dest"; then
      echo "sync-rules: $dest is up to date"
      exit 0
    fi
    echo "sync-rules: $dest differs from $src; run deploy/scripts/sync-rules.sh" >&2
    exit 1
    ;;
  "")
    mkdir -p "$(dirname "$dest")"
    cp "$src" "$dest"
    echo "sync-rules: copied $src -> $dest"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
