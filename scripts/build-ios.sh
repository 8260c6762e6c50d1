#!/usr/bin/env bash
# Builds the yibiao core for iOS: a static library per target, one XCFramework
# (device + simulator), the Swift bindings, and a Swift package wrapping both.
#
#   scripts/build-ios.sh [OUT_DIR]      (macOS with Xcode 15+ only)
#     OUT_DIR  default target/ios
#
# Result:
#   OUT_DIR/YibiaoFFI.xcframework        libyibiao_ffi.a for ios-arm64 and
#                                        ios-arm64_x86_64-simulator, headers + module map
#   OUT_DIR/Yibiao/Package.swift         a Swift package: add it in Xcode
#   OUT_DIR/Yibiao/Sources/Yibiao/Yibiao.swift
#
# NOT RUN on the project's Linux CI machine (no Xcode there); the Swift bindings are
# generated and cross-checked by scripts/test-bindings.sh. See docs/mobile.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-target/ios}"
PROFILE_DIR=release
die() { echo "build-ios.sh: $*" >&2; exit 1; }
[ "$(uname -s)" = Darwin ] || die "needs macOS with Xcode (xcodebuild, lipo)"
command -v xcodebuild >/dev/null || die "xcodebuild not found: install Xcode"

DEVICE=aarch64-apple-ios
SIMS=(aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "$DEVICE" "${SIMS[@]}" >/dev/null

# --no-default-features: the library without the uniffi-bindgen CLI.
# panic stays "unwind": the FFI turns panics into YibiaoError.Internal (docs/mobile.md).
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-13.0}"
for t in "$DEVICE" "${SIMS[@]}"; do
  CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    cargo build --locked --release -p yibiao-mobile-ffi --lib --no-default-features --target "$t"
done

rm -rf "$OUT"
mkdir -p "$OUT/sim" "$OUT/headers"
# One simulator slice for both simulator architectures.
lipo -create -output "$OUT/sim/libyibiao_ffi.a" \
  "target/${SIMS[0]}/$PROFILE_DIR/libyibiao_ffi.a" "target/${SIMS[1]}/$PROFILE_DIR/libyibiao_ffi.a"

# Swift bindings from the host library's metadata (the same for every target).
bash scripts/bindings.sh "" target/bindings-ios
cp target/bindings-ios/swift/YibiaoFFI.h "$OUT/headers/"
# Inside an XCFramework the module map must be called module.modulemap.
cp target/bindings-ios/swift/YibiaoFFI.modulemap "$OUT/headers/module.modulemap"

xcodebuild -create-xcframework \
  -library "target/$DEVICE/$PROFILE_DIR/libyibiao_ffi.a" -headers "$OUT/headers" \
  -library "$OUT/sim/libyibiao_ffi.a" -headers "$OUT/headers" \
  -output "$OUT/YibiaoFFI.xcframework"

PKG="$OUT/Yibiao"
mkdir -p "$PKG/Sources/Yibiao"
cp target/bindings-ios/swift/Yibiao.swift "$PKG/Sources/Yibiao/"
mv "$OUT/YibiaoFFI.xcframework" "$PKG/"
cat >"$PKG/Package.swift" <<'EOF'
// swift-tools-version:5.9
// The yibiao core for iOS: the Rust library as an XCFramework plus its Swift bindings.
import PackageDescription

let package = Package(
    name: "Yibiao",
    platforms: [.iOS(.v13)],
    products: [.library(name: "Yibiao", targets: ["Yibiao"])],
    targets: [
        .binaryTarget(name: "YibiaoFFI", path: "YibiaoFFI.xcframework"),
        .target(
            name: "Yibiao",
            dependencies: ["YibiaoFFI"],
            path: "Sources/Yibiao"
        ),
    ]
)
EOF
rm -rf "$OUT/sim" "$OUT/headers"
# A compile check of the bindings against the framework (simulator SDK).
(cd "$PKG" && xcodebuild -quiet -scheme Yibiao -destination 'generic/platform=iOS Simulator' build)
echo "Swift package ready: $PKG (add it in Xcode: File > Add Package Dependencies > Add Local)"
