#!/usr/bin/env bash
# Installs what the web console's browser tests need beyond Rust: Debian's `chromium`
# (apt) and `playwright-core` (npm, pinned, into .tools/console). Idempotent and quiet;
# safe to run as root with no stdin (CI).
#
# Prints, as its last lines, the paths the tests use:
#   CHROMIUM=...  NODE_PATH=...
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION="1.65.1"
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

log() { printf '   setup-console: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
    log "need root for: $*"; exit 1
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists; update once, then install.
  if ! as_root apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null 2>&1; then
    as_root apt-get update -qq </dev/null >/dev/null
    as_root apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
  fi
}

command -v npm >/dev/null 2>&1 || { log "installing npm (apt)"; apt_install npm; }

# --- Debian's Chromium, driven headless --------------------------------------------------
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  log "installing chromium (apt)"
  apt_install chromium fonts-wqy-microhei
fi
[ -x "$CHROMIUM" ] || { log "the chromium package did not provide $CHROMIUM"; exit 1; }

# --- playwright-core from npm, pinned, in .tools/console (no browser download) -----------
PDIR="$TOOLS/console/node_modules/playwright-core"
if [ "$(node -p "require('$PDIR/package.json').version" 2>/dev/null || true)" != "$PLAYWRIGHT_VERSION" ]; then
  log "installing playwright-core@$PLAYWRIGHT_VERSION (npm, into .tools/console)"
  mkdir -p "$TOOLS/console"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$TOOLS/console" --no-audit --no-fund \
    --no-save --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION" </dev/null >/dev/null
fi
[ -f "$PDIR/package.json" ] || { log "playwright-core not found in $PDIR"; exit 1; }

printf 'CHROMIUM=%q\nNODE_PATH=%q\n' "$CHROMIUM" "$TOOLS/console/node_modules"
