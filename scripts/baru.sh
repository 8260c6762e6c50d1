#!/usr/bin/env bash
# A township day in Baru: the server, 200 cadre phones on 2G/EDGE links through the fault
# proxy, departments' tasks, offline work, conflicts, department pulls, a discipline
# inspection (five findings through the five steps); checks itself and
# prints the township leader's report. `scripts/baru.sh --small` runs the CI size.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --locked -p yibiao-examples --bin baru -- "$@"
