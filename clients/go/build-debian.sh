#!/usr/bin/env bash
# Runs the go command on this module with Debian's toolchain and Debian's golang-*-dev
# packages, offline:   clients/go/build-debian.sh build ./...
#
# Why GOPATH mode: the Go module proxy is not reachable here, and Debian installs sources in
# GOPATH layout (/usr/share/gocode/src), not as a module cache, so module mode cannot resolve
# google.golang.org/grpc (nor its go.mod's own requirements). GOPATH mode builds from those
# sources directly; this module is linked into a temporary GOPATH under its import path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=$(sed -n 's/^module //p' "$here/go.mod")
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/$(dirname "$module")"
ln -s "$here" "$gopath/src/$module"

cd "$gopath/src/$module"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= go "$@"
