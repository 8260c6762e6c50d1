#!/usr/bin/env bash
# Runs every yibiao test on a bare machine of our kind. CI runs exactly this (.ci/run).
#   scripts/test.sh            everything
#   QUICK=1 scripts/test.sh    skip lints and the benchmark smoke runs
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: $(cargo --version)"
bash scripts/setup.sh

if [ -z "${QUICK:-}" ]; then
  step "format"
  cargo fmt --all -- --check
  step "lints"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "unit, property, API and end-to-end tests"
cargo test --workspace --locked

step "the demo, start to end"
cargo run --quiet --locked -p yibiao-examples --bin demo

if [ -z "${QUICK:-}" ]; then
  step "benchmark smoke run (small sizes; figures are printed, not asserted)"
  YIBIAO_BENCH_RECORDS=300 cargo bench --locked -p yibiao-core --bench store
fi
step "all tests passed"
