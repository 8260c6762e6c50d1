#!/usr/bin/env bash
# Runs every yibiao test on a bare machine of our kind. CI runs exactly this (.ci/run).
#   scripts/test.sh            everything
#   QUICK=1 scripts/test.sh    skip lints, fuzzing, the bindings, the browser tests, the API properties
#                              and the benchmark smoke runs
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: $(cargo --version)"
bash scripts/setup.sh

if [ -z "${QUICK:-}" ]; then
  step "format"
  cargo fmt --all -- --check
  step "lints"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  step "architecture: one-way crate layers, no module cycles, no function over 100 lines"
  bash scripts/checks/architecture.sh
fi

step "unit, property, API and end-to-end tests (real SQLite, real PostgreSQL, real server, fault proxy, SIGKILL)"
# One throw-away PostgreSQL (Debian's, initdb as the postgres user, a free port) for every
# test binary; the PostgreSQL tests read YIBIAO_TEST_PG and fail in CI without it.
bash scripts/with-postgres.sh cargo test --workspace --locked

if [ -z "${QUICK:-}" ]; then
  step "fuzzing: sync decoder, document merge, schema parser, JSON bodies, from the committed seeds"
  fuzz_started=$SECONDS
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
  echo "fuzzing took $((SECONDS - fuzz_started))s (cargo-fuzz install, sanitizer build, runs)"
fi

step "the offline demo, start to end"
cargo run --quiet --locked -p yibiao-examples --bin demo

step "the Baru township day, small: 24 phones through the weak-link proxy, tasks, conflicts, findings, photos, department pulls; then moved onto PostgreSQL and synced on; checks itself"
bash scripts/with-postgres.sh bash -c 'cargo run --quiet --locked -p yibiao-examples --bin baru -- --small --then-postgres "$YIBIAO_TEST_PG"'

if [ -z "${QUICK:-}" ]; then
  step "mobile bindings: generated Kotlin on the JVM, Python under pytest, Swift generation"
  bash scripts/test-bindings.sh

  step "web console in a real browser: Debian's Chromium (headless) via playwright-core, the real server"
  bash scripts/test-console.sh

  step "API properties: schemathesis from the OpenAPI document against the real server, each token kind"
  bash scripts/test-api-properties.sh

  step "benchmark smoke runs (small sizes; figures are printed, not asserted)"
  YIBIAO_BENCH_RECORDS=300 cargo bench --locked -p yibiao-tests --bench store
  YIBIAO_BENCH_QUICK=1 cargo bench --locked -p yibiao-tests --bench sync
  YIBIAO_BENCH_QUICK=1 cargo bench --locked -p yibiao-tests --bench pull
  YIBIAO_BENCH_QUICK=1 cargo bench --locked -p yibiao-tests --bench attach
  YIBIAO_BENCH_QUICK=1 bash scripts/with-postgres.sh cargo bench --locked -p yibiao-tests --bench postgres
fi
step "all tests passed"
