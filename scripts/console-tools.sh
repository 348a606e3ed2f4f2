#!/usr/bin/env bash
# Installs what the web console's browser test (tests/console) needs, skipping whatever is
# already there:
#   - Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)
#   - selenium in the .tools/venv Python venv (created when missing)
# Safe to run again; a rerun with everything present takes well under a second.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
log() { printf 'tools: %s\n' "$*" >&2; }

SELENIUM_VERSION=4.51.0

# The package lists are refreshed only when an install from the current ones fails.
apt_install_quiet() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
apt_install() {
  if ! apt_install_quiet "$@" 2>/dev/null; then
    apt-get update -qq >/dev/null
    apt_install_quiet "$@"
  fi
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  log "installing chromium and chromium-driver (Debian)"
  apt_install chromium chromium-driver
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

ensure_selenium() {
  if "$root/.tools/venv/bin/python" -c 'import selenium' 2>/dev/null; then
    return 0
  fi
  log "installing selenium $SELENIUM_VERSION (for tests/console)"
  "$root/.tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "selenium==$SELENIUM_VERSION"
}

ensure_chromium
ensure_venv
ensure_selenium
