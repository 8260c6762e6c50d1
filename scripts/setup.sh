#!/usr/bin/env bash
# Installs what the tests and the demo need beyond the Rust toolchain. Idempotent.
# Today that is only rustfmt and clippy; later issues add the Kotlin compiler, JNA and
# PostgreSQL here, so the README's two commands keep working on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
