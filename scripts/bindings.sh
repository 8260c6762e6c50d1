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

for f in "$OUT/kotlin/yibiao/yibiao.kt" "$OUT/swift/Yibiao.swift" "$OUT/swift/YibiaoFFI.h" \
  "$OUT/swift/YibiaoFFI.modulemap" "$OUT/python/yibiao.py"; do
  [ -s "$f" ] || { echo "bindings.sh: $f was not generated" >&2; exit 1; }
done
echo "bindings in $OUT: kotlin/yibiao/yibiao.kt swift/Yibiao.swift swift/YibiaoFFI.{h,modulemap} python/yibiao.py"
