#!/usr/bin/env bash
# The layering the architecture promises, checked: crates depend one way, no module imports
# go in a circle, no function outside tests is over 100 lines.
set -euo pipefail
cd "$(dirname "$0")/../.."

deps() { cargo tree --locked -e normal --prefix none -p "$1" | grep -o '^yibiao-[a-z-]*' | sort -u | grep -vx "$1" || true; }
expect() {
  local crate=$1; shift
  local got; got=$(deps "$crate" | tr '\n' ' ')
  for bad in "$@"; do
    if [[ " $got" == *" $bad "* ]]; then
      echo "layering: $crate must not depend on $bad (depends on: $got)" >&2; exit 1
    fi
  done
}
expect yibiao-model yibiao-sync yibiao-store yibiao-server yibiao-testkit
expect yibiao-sync yibiao-store yibiao-server yibiao-testkit
expect yibiao-store yibiao-server yibiao-testkit
expect yibiao-server yibiao-store yibiao-testkit
expect yibiao-testkit yibiao-server
echo "layering: model <- sync <- store; server on model + sync only"

python3 scripts/checks/module_cycles.py core/model/src core/sync/src core/store/src server/src mobile-ffi/src tests/kit/src tests/src
python3 scripts/checks/long_functions.py 100 core/model/src core/sync/src core/store/src server/src mobile-ffi/src tests/kit/src tests/src examples/src
echo "functions: none over 100 lines outside tests"
