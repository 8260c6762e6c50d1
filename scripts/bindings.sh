#!/usr/bin/env bash
# Generates the Kotlin, Swift and Python bindings of mobile-ffi with the workspace's own
# uniffi-bindgen (pinned to the runtime's exact uniffi version), from the built library's
# metadata ("library mode": no UDL file; names come from mobile-ffi/uniffi.toml).
#
#   scripts/bindings.sh [LIBRARY] [OUT_DIR]
#     LIBRARY  default: $CARGO_TARGET_DIR (or target)/debug/libyibiao_ffi.so (built here if
#              missing or stale)
#     OUT_DIR  default: target/bindings  ->  {kotlin/yibiao/yibiao.kt,
#              swift/{Yibiao.swift,YibiaoFFI.h,YibiaoFFI.modulemap}, python/yibiao.py}
#
# and, ready to use:
#   OUT_DIR/python/dist/yibiao-<version>-py3-none-<platform>.whl
#       the package `yibiao` (the generated module + the library beside it):
#       `pip install OUT_DIR/python/dist/yibiao-*.whl`, then `import yibiao`
#   OUT_DIR/android/  an Android library module's source tree:
#       src/main/kotlin/yibiao/yibiao.kt
#       src/main/jniLibs/<abi>/libyibiao_ffi.so   from JNILIBS=DIR holding <abi>/libyibiao_ffi.so
#                                                 (scripts/build-android.sh builds them)
#       src/test/resources/<jna-platform>/libyibiao_ffi.so   this host's library, where JNA
#                                                 finds it in JVM unit tests
#
# Any library built from this crate works (an Android .so, an iOS .a/.dylib): the
# metadata is the same; only the host one is used here.
set -euo pipefail
cd "$(dirname "$0")/.."

LIB="${1:-}"
BUILT="${CARGO_TARGET_DIR:-target}/debug"
OUT="${2:-target/bindings}"
if [ -z "$LIB" ]; then
  cargo build --quiet --locked -p yibiao-mobile-ffi --lib
  case "$(uname -s)" in
    Darwin) LIB="$BUILT/libyibiao_ffi.dylib" ;;
    *) LIB="$BUILT/libyibiao_ffi.so" ;;
  esac
fi
[ -f "$LIB" ] || { echo "bindings.sh: no library at $LIB" >&2; exit 1; }

# BINDGEN: a prebuilt uniffi-bindgen of this workspace (scripts/test-bindings.sh passes the
# one from its own build, so no second feature set of the dependencies is compiled).
if [ -z "${BINDGEN:-}" ]; then
  cargo build --quiet --locked -p yibiao-mobile-ffi --bin uniffi-bindgen
  BINDGEN="$BUILT/uniffi-bindgen"
fi

NEW="$(mktemp -d)"
trap 'rm -rf "$NEW"' EXIT
for lang in kotlin swift python; do
  # --no-format: ktlint/swiftformat/yapf are not part of the toolchain we install.
  "$BINDGEN" generate "$LIB" --language "$lang" --out-dir "$NEW/$lang" --no-format >/dev/null
done
# Replace only files whose content changed, so their timestamps tell the test script
# when the (slow) Kotlin compile is needed.
(cd "$NEW" && find . -type f) | while read -r f; do
  if ! cmp -s "$NEW/$f" "$OUT/$f"; then
    mkdir -p "$(dirname "$OUT/$f")"
    cp "$NEW/$f" "$OUT/$f"
  fi
done

# The Python wheel: the generated module and the library in one package.
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
rm -f "$OUT"/python/dist/yibiao-*.whl
WHEEL="$(python3 scripts/python_wheel.py "$OUT/python" "$LIB" "$OUT/python/dist" "$VERSION")"

# The Android library module's layout (Gradle's defaults for src/main/kotlin, jniLibs).
ANDROID="$OUT/android"
mkdir -p "$ANDROID/src/main/kotlin/yibiao"
cmp -s "$OUT/kotlin/yibiao/yibiao.kt" "$ANDROID/src/main/kotlin/yibiao/yibiao.kt" ||
  cp "$OUT/kotlin/yibiao/yibiao.kt" "$ANDROID/src/main/kotlin/yibiao/yibiao.kt"
if [ -n "${JNILIBS:-}" ]; then
  for so in "$JNILIBS"/*/libyibiao_ffi.so; do
    abi="$(basename "$(dirname "$so")")"
    mkdir -p "$ANDROID/src/main/jniLibs/$abi"
    cp "$so" "$ANDROID/src/main/jniLibs/$abi/"
  done
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) JNA_PLATFORM=linux-x86-64 ;;
  Linux-aarch64) JNA_PLATFORM=linux-aarch64 ;;
  Darwin-arm64) JNA_PLATFORM=darwin-aarch64 ;;
  Darwin-x86_64) JNA_PLATFORM=darwin-x86-64 ;;
  *) JNA_PLATFORM="$(uname -s | tr A-Z a-z)-$(uname -m)" ;;
esac
mkdir -p "$ANDROID/src/test/resources/$JNA_PLATFORM"
cp "$LIB" "$ANDROID/src/test/resources/$JNA_PLATFORM/"

for f in "$OUT/kotlin/yibiao/yibiao.kt" "$OUT/swift/Yibiao.swift" "$OUT/swift/YibiaoFFI.h" \
  "$OUT/swift/YibiaoFFI.modulemap" "$OUT/python/yibiao.py"; do
  [ -s "$f" ] || { echo "bindings.sh: $f was not generated" >&2; exit 1; }
done
echo "bindings in $OUT: kotlin/yibiao/yibiao.kt swift/Yibiao.swift swift/YibiaoFFI.{h,modulemap} python/yibiao.py"
echo "python wheel: $WHEEL"
echo "android module: $ANDROID (src/main/kotlin, src/main/jniLibs from JNILIBS, src/test/resources/$JNA_PLATFORM)"
