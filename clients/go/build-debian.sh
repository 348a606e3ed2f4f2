#!/usr/bin/env bash
# Runs the go command on this module in module mode, offline, with Debian 12's toolchain and
# its golang-*-dev packages standing in for the modules go.mod requires:
#
#   clients/go/build-debian.sh vet ./...
#   clients/go/build-debian.sh test -count=1 ./...      # against a live reducerd, see README.md
#   clients/go/build-debian.sh build -o /tmp/example ./example
#
# How: the module is copied to a temporary directory and given a vendor/ directory whose
# modules link to Debian's sources (/usr/share/gocode/src) under the versions go.mod requires;
# go runs there with -mod=vendor and GOPROXY=off. Vendor mode needs neither the network nor
# go.sum, but it does check vendor/modules.txt against go.mod, so a requirement added to go.mod
# without a Debian package fails here, by name. Give -o an absolute path: the copy is deleted
# when go exits. REDUCERD_BIN defaults to the repository's target/debug/reducerd, since the
# tests run from the copy and cannot find it relative to themselves.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gocode=/usr/share/gocode/src
export REDUCERD_BIN=${REDUCERD_BIN:-$(cd "$here/../.." && pwd)/target/debug/reducerd}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$here/." "$work/"
rm -rf "$work/vendor"

# Every requirement of go.mod ("path version" from both the one-line and the block form).
requirements=$(awk '
  /^require \(/ { block = 1; next }
  block && /^\)/ { block = 0; next }
  block && NF >= 2 { print $1, $2 }
  /^require [^(]/ { print $2, $3 }
' "$here/go.mod")

# vendor/modules.txt as `go mod vendor` would write it: each module with its version, marked
# explicit (go.mod requires each one) with the go version its source declares, then its
# packages: every directory holding non-test Go files, testdata and _/. directories excepted.
mkdir -p "$work/vendor"
while read -r path version; do
  src=$gocode/$path
  if [ ! -d "$src" ]; then
    echo "build-debian.sh: $path (go.mod: $version) is not in $gocode; install the Debian package that ships it (see README.md)" >&2
    exit 1
  fi
  mkdir -p "$work/vendor/$(dirname "$path")"
  ln -s "$src" "$work/vendor/$path"
  go_version=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$src/go.mod" 2>/dev/null || true)
  echo "# $path $version"
  echo "## explicit${go_version:+; go $go_version}"
  (cd "$src" && find -L . \( -name testdata -o -name '[._]?*' \) -prune -o \
    -name '*.go' ! -name '*_test.go' -printf '%h\n') | sort -u | sed "s#^\.#$path#"
done <<<"$requirements" >"$work/vendor/modules.txt"

cd "$work"
GO111MODULE=on GOFLAGS=-mod=vendor GOPROXY=off GOSUMDB=off GOWORK=off go "$@"
