#!/usr/bin/env bash
# Installs what building and linting need beyond the Rust toolchain: rustfmt and clippy.
# Idempotent. The bindings tests install their own tools (scripts/setup-mobile.sh: JNA
# from Debian, the npm Kotlin compiler, pytest) when scripts/test.sh reaches them.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
