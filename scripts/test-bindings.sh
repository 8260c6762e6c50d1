#!/usr/bin/env bash
# The real generated bindings, run for real: builds the cdylib and the server, generates
# Kotlin/Swift/Python bindings, then
#   1. pytest: the Python bindings in CPython against yibiao-server on 127.0.0.1;
#   2. the Kotlin test program, compiled once with kotlinc, on the JVM with JNA;
#   3. Swift: the generated files are checked for completeness (no Swift toolchain here).
# Installs what it needs (scripts/setup-mobile.sh). Works on a fresh machine, as root,
# with no stdin.
#   scripts/test-bindings.sh             everything
#   ONLY=python|kotlin scripts/test-bindings.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

step() { printf '\n==> %s\n' "$*"; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

step "mobile tools (JNA, kotlinc, pytest)"
tools="$(bash scripts/setup-mobile.sh)" # a failed install stops here (set -e)
eval "$tools"

step "build: mobile-ffi cdylib, uniffi-bindgen, yibiao-server"
t=$(date +%s)
# The whole workspace in one build, so dependencies get the same features as in
# `cargo test --workspace` and nothing is compiled twice when scripts/test.sh runs both.
cargo build --quiet --locked --workspace
LIB_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
SERVER_BIN="$LIB_DIR/yibiao-server"
echo "built in $(elapsed "$t")"

step "generate bindings (scripts/bindings.sh)"
OUT="$ROOT/target/bindings"
BINDGEN="$LIB_DIR/uniffi-bindgen" bash scripts/bindings.sh "$LIB_DIR/libyibiao_ffi.so" "$OUT"

if [ "${ONLY:-python}" = python ]; then
  step "Python bindings: the wheel installed with pip, pytest against a real server"
  t=$(date +%s)
  # Installed as an app developer would (pip, from the wheel alone), into a directory of
  # its own so the shared tools venv is left as it was.
  SITE="$ROOT/target/python-site"
  rm -rf "$SITE"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
    --target "$SITE" "$OUT"/python/dist/yibiao-*.whl
  YIBIAO_BINDINGS_PY="$SITE" YIBIAO_SERVER_BIN="$SERVER_BIN" \
    "$PYTHON" -m pytest -q -p no:cacheprovider mobile-ffi/tests/python
  echo "python bindings: $(elapsed "$t")"
fi

if [ "${ONLY:-kotlin}" = kotlin ]; then
  step "Kotlin bindings: the test program on the JVM with JNA"
  KT_OUT="$ROOT/target/kotlin-test"
  JAR="$KT_OUT/bindings-test.jar"
  SOURCES=("$OUT/android/src/main/kotlin/yibiao/yibiao.kt" mobile-ffi/tests/kotlin/*.kt)
  CP_RUN="$JNA_JAR:$KOTLIN_LIB/kotlin-stdlib.jar:$KOTLIN_LIB/kotlin-test.jar"
  # kotlinc is slow (~1 min): compile only when a source is newer than the jar.
  stale=0
  [ -f "$JAR" ] || stale=1
  for s in "${SOURCES[@]}"; do [ "$s" -nt "$JAR" ] && stale=1; done
  if [ "$stale" = 1 ]; then
    t=$(date +%s)
    mkdir -p "$KT_OUT"
    rm -f "$JAR"
    if ! JAVA_OPTS="-Xss4m" "$KOTLINC" -nowarn -jvm-target 17 \
      -cp "$JNA_JAR:$KOTLIN_LIB/kotlin-test.jar" -d "$JAR" "${SOURCES[@]}" >"$KT_OUT/kotlinc.log" 2>&1; then
      cat "$KT_OUT/kotlinc.log" >&2
      rm -f "$JAR"
      echo "kotlinc failed" >&2
      exit 1
    fi
    echo "kotlinc: $(elapsed "$t")"
  else
    echo "kotlin test jar is up to date"
  fi
  t=$(date +%s)
  WORK="$KT_OUT/run"
  rm -rf "$WORK"
  # The library from the Android module's JVM-test resources, where JNA looks for it.
  java -cp "$CP_RUN:$JAR:$OUT/android/src/test/resources" \
    yibiao.test.BindingsTestKt "$SERVER_BIN" "$WORK"
  echo "kotlin bindings: $(elapsed "$t")"
fi

step "Swift bindings: generated and complete (compiling them needs Xcode; see docs/mobile.md)"
SWIFT="$OUT/swift/Yibiao.swift"
HEADER="$OUT/swift/YibiaoFFI.h"
grep -q 'open class YibiaoStore' "$SWIFT"
grep -q 'public protocol AppTransport' "$SWIFT"
grep -q 'enum YibiaoError: Swift.Error' "$SWIFT"
grep -q 'module YibiaoFFI' "$OUT/swift/YibiaoFFI.modulemap"
# Every FFI function the Swift file calls must be declared in the header it imports.
missing=0
for sym in $(grep -o 'uniffi_yibiao_ffi_[a-z0-9_]*\|ffi_yibiao_ffi_[a-z0-9_]*' "$SWIFT" | sort -u); do
  grep -q "$sym" "$HEADER" || { echo "missing in header: $sym" >&2; missing=1; }
done
[ "$missing" = 0 ]
if command -v swiftc >/dev/null 2>&1; then
  swiftc -parse "$SWIFT" && echo "swiftc -parse: ok"
else
  echo "swiftc not installed: Swift bindings generated and cross-checked, not compiled"
fi
step "bindings tests passed"
