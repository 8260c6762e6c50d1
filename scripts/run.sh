#!/usr/bin/env bash
# The main job: today the two-phone offline demo on real SQLite stores.
# Pass --data-dir DIR to keep the stores, --schema FILE to use another schema.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p yibiao-examples --bin demo -- "$@"
