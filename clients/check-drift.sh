#!/usr/bin/env bash
# Fails when the committed generated code differs from what clients/generate.sh makes from
# proto/ now: regenerates into a temporary directory and diffs the generated trees.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

clients/generate.sh -o "$tmp"

status=0
for dir in clients/python/src/purereducer/_gen clients/typescript/src/gen clients/go/gen; do
  if ! diff -r -u -x __pycache__ "$dir" "$tmp/$dir" >"$tmp/diff.txt" 2>&1; then
    echo "drift: $dir differs from freshly generated code (run clients/generate.sh):" >&2
    head -40 "$tmp/diff.txt" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "drift: generated clients match proto/"
exit "$status"
