#!/usr/bin/env bash
# Fails when proto/ breaks wire or source compatibility (buf breaking, FILE rules in
# buf.yaml) against the API as it was before its newest change: with uncommitted changes
# under proto/, against HEAD; otherwise against the parent of the newest commit that changed
# proto/. So a breaking change fails here until it is deliberately reworked, whichever commit
# CI runs on.
#
#   scripts/check-proto-breaking.sh              the check
#   scripts/check-proto-breaking.sh --self-test  also proves the check catches a removed field
#
# Needs a git checkout with history (a clone, not an export) and buf (scripts/tools.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
buf=${BUF:-$root/.tools/node/node_modules/.bin/buf}
log() { printf 'proto-breaking: %s\n' "$*" >&2; }

if [ ! -x "$buf" ]; then
  log "buf is missing at $buf; run scripts/tools.sh"
  exit 1
fi
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  log "not a git checkout: cannot find the previous API to compare with"
  exit 1
fi

if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "proto-breaking: SKIPPED: this is a shallow clone, the earlier API is not in it (git fetch --unshallow, then run again)"
  exit 0
fi
if [ -n "$(git status --porcelain -- proto/)" ]; then
  baseline=HEAD
else
  newest=$(git log -1 --format=%H -- proto/)
  if [ -z "$newest" ] || ! git rev-parse -q --verify "$newest^" >/dev/null; then
    log "no earlier version of proto/ in this history (shallow clone?); nothing to compare with"
    exit 1
  fi
  baseline=$(git rev-parse "$newest^")
fi
if [ -z "$(git ls-tree -r --name-only "$baseline" -- proto/)" ]; then
  log "proto/ does not exist at $baseline; nothing to compare with"
  exit 1
fi

# The baseline's tree, with the buf.yaml of that commit (its module layout).
against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$baseline" proto buf.yaml | tar -x -C "$against"

log "comparing proto/ with $(git log -1 --format='%h %s' "$baseline" | cut -c1-80)"
"$buf" breaking --against "$against"
echo "proto-breaking: no breaking change"

if [ "${1:-}" = "--self-test" ]; then
  # A copy of the current API with a field removed must be refused.
  broken=$(mktemp -d)
  trap 'rm -rf "$against" "$broken"' EXIT
  cp -r proto buf.yaml "$broken/"
  sed -i '/^  string correlation_id = 7;$/d' "$broken/proto/purereducer/v1/events.proto"
  if grep -q 'string correlation_id = 7;' "$broken/proto/purereducer/v1/events.proto"; then
    log "self-test: could not remove the field it meant to remove"
    exit 1
  fi
  if (cd "$broken" && "$buf" breaking --against "$root" >/dev/null 2>&1); then
    log "self-test: a removed field was NOT reported as breaking"
    exit 1
  fi
  echo "proto-breaking: self-test: a removed field is reported as breaking"
fi
