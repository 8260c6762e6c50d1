#!/usr/bin/env bash
# The web console in a real browser: installs Chromium (apt) and playwright-core (npm,
# pinned) if missing, builds the server and the seeding tool, runs
# tests/console/console.mjs then tests/console/admin.mjs (shared parts in lib.mjs).
# Screenshots land in target/console-screens/.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/setup-console.sh | tail -n 2)"
cargo build --quiet --locked -p yibiao-server --bin yibiao-server -p yibiao-tests --bin console_seed --bin console_phone
TARGET="${CARGO_TARGET_DIR:-target}"
YIBIAO_BIN="$TARGET/debug" PLAYWRIGHT_DIR="$NODE_PATH" SCREENS="$TARGET/console-screens" \
  node tests/console/console.mjs
YIBIAO_BIN="$TARGET/debug" PLAYWRIGHT_DIR="$NODE_PATH" SCREENS="$TARGET/console-screens" \
  node tests/console/admin.mjs
