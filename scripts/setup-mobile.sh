#!/usr/bin/env bash
# Installs what the binding tests need beyond Rust: JNA (Debian's libjna-java), a Kotlin
# compiler (the npm package `kotlin-compiler`: kotlinc, stdlib, coroutines, kotlin-test),
# pytest and schemathesis (the API property test, scripts/test-api-properties.sh; both in a
# project-local virtualenv). Idempotent and quiet; safe to run as root
# with no stdin (CI). Everything lands in .tools/ except the Debian package.
#
# Prints, as its last lines, the paths the tests use:
#   JNA_JAR=...  KOTLINC=...  KOTLIN_LIB=...  PYTHON=...
set -euo pipefail
cd "$(dirname "$0")/.."

KOTLIN_VERSION="2.4.20"
PYTEST_VERSION="8.4.2"
SCHEMATHESIS_VERSION="4.32.5"
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

log() { printf '   setup-mobile: %s\n' "$*" >&2; }

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

# --- the runtimes (present on our machine image; installed from Debian if not) ----------
command -v java >/dev/null 2>&1 || { log "installing a Java runtime (apt)"; apt_install openjdk-17-jre-headless; }
command -v npm >/dev/null 2>&1 || { log "installing npm (apt)"; apt_install npm; }
command -v python3 >/dev/null 2>&1 || { log "installing python3 (apt)"; apt_install python3 python3-venv; }

# --- JNA: Kotlin bindings load the Rust library through it -----------------------------
JNA_JAR=/usr/share/java/jna.jar
if [ ! -f "$JNA_JAR" ]; then
  log "installing libjna-java (apt)"
  apt_install libjna-java
fi
[ -f "$JNA_JAR" ] || { log "libjna-java did not provide $JNA_JAR"; exit 1; }

# --- Kotlin compiler from npm, pinned, in .tools/kotlin ---------------------------------
KDIR="$TOOLS/kotlin/node_modules/kotlin-compiler"
if [ "$(cat "$KDIR/build.txt" 2>/dev/null || true)" != "$KOTLIN_VERSION" ]; then
  log "installing kotlin-compiler@$KOTLIN_VERSION (npm, into .tools/kotlin)"
  mkdir -p "$TOOLS/kotlin"
  npm install --prefix "$TOOLS/kotlin" --no-audit --no-fund --no-save --loglevel=error \
    "kotlin-compiler@$KOTLIN_VERSION" </dev/null >/dev/null
fi
chmod +x "$KDIR"/bin/* 2>/dev/null || true
[ -x "$KDIR/bin/kotlinc" ] || { log "kotlinc not found in $KDIR"; exit 1; }

# --- pytest in a virtualenv, pinned -----------------------------------------------------
VENV="$TOOLS/venv"
if ! "$VENV/bin/python" -c "import pytest, sys; sys.exit(pytest.__version__ != '$PYTEST_VERSION')" 2>/dev/null; then
  log "installing pytest==$PYTEST_VERSION (pip, into .tools/venv)"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "pytest==$PYTEST_VERSION" </dev/null
fi

# --- schemathesis in the same virtualenv, pinned (added beside pytest, never replacing) --
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis==$SCHEMATHESIS_VERSION (pip, into .tools/venv)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" </dev/null
fi

printf 'JNA_JAR=%q\nKOTLINC=%q\nKOTLIN_LIB=%q\nPYTHON=%q\n' \
  "$JNA_JAR" "$KDIR/bin/kotlinc" "$KDIR/lib" "$VENV/bin/python"
