#!/usr/bin/env bash
# Fuzzes what the server reads from outside (docs/fuzzing.md): the sync request decoder,
# the untrusted document loader and merge, the schema parser, the HTTP JSON bodies.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      every target, 20 s each by default (CI)
#   FUZZ_TARGETS="doc_merge" scripts/fuzz.sh 600
#   FUZZ_KEEP_CORPUS=1 scripts/fuzz.sh 600    grow tests/fuzz/corpus/<target> (not committed)
#   FUZZ_BUILD=release scripts/fuzz.sh 600    cargo-fuzz's optimised build (for long runs)
# Installs cargo-fuzz (pinned) when missing, builds every target once (AddressSanitizer,
# debug assertions; by default the fuzz crate's dev profile at opt-level 1, which builds
# in a fraction of the release build's time), runs each, one at a time, from a COPY of its committed seeds
# (tests/fuzz/seeds/<target>; the seeds never grow here) and prints executions, exec/s
# and coverage. Fails, naming the input, when a target crashes, times out or runs out of
# memory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SECONDS_PER_TARGET="${1:-20}"
CARGO_FUZZ_VERSION=0.13.2
FUZZ="$ROOT/tests/fuzz"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-sync_request doc_merge schema_toml http_json}"

# Per target: the largest input worth trying (the limit the server puts on that input)
# and the memory a single input may use, so an out-of-memory finding is a real one.
max_len() {
  case "$1" in
    sync_request) echo 8388608 ;; # max_body_bytes: 8 MiB
    doc_merge) echo 1048576 ;;    # a record's budget as sent: 1 MiB
    schema_toml) echo 262144 ;;   # an operator's schema file; Baru's is 16 KiB
    http_json) echo 65536 ;;      # max_json_bytes: 64 KiB
  esac
}
RSS_LIMIT_MB="${FUZZ_RSS_LIMIT_MB:-2048}"
TIMEOUT_SECS="${FUZZ_TIMEOUT_SECS:-10}"

step() { printf '\n==> %s\n' "$*"; }

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer coverage); the
# stable toolchain accepts them with RUSTC_BOOTSTRAP=1. No nightly is downloaded.
export RUSTC_BOOTSTRAP=1
# Its own target dir (tests/fuzz/target): the sanitizer build shares nothing with the
# workspace's, so it must not land in a shared build dir either.
unset CARGO_TARGET_DIR CARGO_BUILD_BUILD_DIR

started=$SECONDS
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  step "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
installed=$SECONDS

case "${FUZZ_BUILD:-dev}" in
  dev) PROFILE=(--dev) ;;
  release) PROFILE=(--release) ;;
  *) echo "FUZZ_BUILD is dev or release, not ${FUZZ_BUILD}" >&2; exit 2 ;;
esac
step "building the fuzz targets (AddressSanitizer, ${FUZZ_BUILD:-dev} build)"
# The fuzz crate's lock is the workspace's own plus the fuzz-only crates (libfuzzer-sys and
# arbitrary, pinned with `=` in tests/fuzz/Cargo.toml): derived here on every run, so a
# dependency change in the workspace can never leave a stale second lock behind.
cp Cargo.lock "$FUZZ/Cargo.lock"
cargo fetch --manifest-path "$FUZZ/Cargo.toml" >/dev/null
cargo fuzz build --fuzz-dir "$FUZZ" --sanitizer address "${PROFILE[@]}"
built=$SECONDS

# Scratch: corpus copies, crash artifacts, the HTTP target's databases (tmpfs if any).
SCRATCH_BASE=/dev/shm
[ -d "$SCRATCH_BASE" ] && [ -w "$SCRATCH_BASE" ] || SCRATCH_BASE="${TMPDIR:-/tmp}"
SCRATCH="$(mktemp -d "$SCRATCH_BASE/yibiao-fuzz.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

summary=()
failed=""
for target in "${TARGETS[@]}"; do
  step "fuzzing $target for ${SECONDS_PER_TARGET}s"
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    corpus="$FUZZ/corpus/$target"
    mkdir -p "$corpus"
  else
    corpus="$SCRATCH/corpus-$target"
    mkdir -p "$corpus"
  fi
  cp -n "$FUZZ/seeds/$target/"* "$corpus/" 2>/dev/null || true
  artifacts="$FUZZ/artifacts/$target"
  mkdir -p "$artifacts" "$SCRATCH/tmp"
  log="$SCRATCH/$target.log"
  dict=()
  [ -f "$FUZZ/dicts/$target.dict" ] && dict=(-dict="$FUZZ/dicts/$target.dict")
  set +e
  TMPDIR="$SCRATCH/tmp" cargo fuzz run --fuzz-dir "$FUZZ" --sanitizer address "${PROFILE[@]}" "$target" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" \
    -max_len="$(max_len "$target")" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
  status=$?
  set -e
  stat() { grep -o "stat::$1: *[0-9]*" "$log" | grep -o '[0-9]*$' | tail -1 || true; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  cov=$({ grep -oE '#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)[[:space:]]+cov: [0-9]+ ft: [0-9]+' "$log" || true; } | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
  line="$(printf '%-13s executions %-9s exec/s %-6s %s' "$target" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}")"
  echo "$line"
  summary+=("$line")
  if [ "$status" -ne 0 ]; then
    crash=$({ grep -oE "Test unit written to [^ ]+" "$log" || true; } | tail -1 | sed 's/Test unit written to //')
    tail -n 60 "$log" >&2
    echo "FUZZ FAILURE in $target: ${crash:-see the log above}" >&2
    echo "  reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz ${PROFILE[*]} $target ${crash:-<input>}" >&2
    failed="$failed $target"
  fi
done

step "fuzzing summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
echo "time: cargo-fuzz install $((installed - started))s, build $((built - installed))s, runs $((SECONDS - built))s, total $((SECONDS - started))s"
if [ -n "$failed" ]; then
  echo "fuzzing found a failure in:$failed" >&2
  exit 1
fi
