#!/usr/bin/env bash
# Two cadres' phones, offline, on real SQLite stores: a conflict and its resolution.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --locked -p yibiao-examples --bin demo -- "$@"
