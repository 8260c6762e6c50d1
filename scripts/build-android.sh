#!/usr/bin/env bash
# Builds the yibiao core for Android: libyibiao_ffi.so for each ABI (cargo-ndk) and the
# Kotlin bindings, laid out as an Android library module; with Gradle and the Android SDK
# present it also assembles the AAR.
#
#   ANDROID_NDK_HOME=/path/to/ndk scripts/build-android.sh [OUT_DIR]
#     OUT_DIR   default target/android/yibiao   (a Gradle library module)
#     ABIS      default "arm64-v8a armeabi-v7a x86_64"
#     API       default 24 (Android 7.0: the cheap phones cadres carry)
#     PROFILE   default release
#
# Result:
#   OUT_DIR/src/main/jniLibs/<abi>/libyibiao_ffi.so
#   OUT_DIR/src/main/kotlin/yibiao/yibiao.kt
#   OUT_DIR/build.gradle.kts, OUT_DIR/src/main/AndroidManifest.xml  (written once)
#   OUT_DIR/build/outputs/aar/*.aar       (only when `gradle` and ANDROID_HOME are there)
#
# NOT RUN on the project's Linux CI machine (no NDK, no Android SDK, no rustup targets
# reachable there); see docs/mobile.md for what is and is not verified.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-target/android/yibiao}"
ABIS="${ABIS:-arm64-v8a armeabi-v7a x86_64}"
API="${API:-24}"
PROFILE="${PROFILE:-release}"
CARGO_NDK_VERSION="4.1.2"

die() { echo "build-android.sh: $*" >&2; exit 1; }
[ -n "${ANDROID_NDK_HOME:-}" ] && [ -d "$ANDROID_NDK_HOME" ] ||
  die "set ANDROID_NDK_HOME to an installed NDK (r26 or newer), e.g. \$ANDROID_HOME/ndk/27.2.12479018"

triple() {
  case "$1" in
    arm64-v8a) echo aarch64-linux-android ;;
    armeabi-v7a) echo armv7-linux-androideabi ;;
    x86_64) echo x86_64-linux-android ;;
    x86) echo i686-linux-android ;;
    *) die "unknown ABI $1" ;;
  esac
}

targets=()
for abi in $ABIS; do targets+=("$(triple "$abi")"); done
rustup target add "${targets[@]}" >/dev/null
command -v cargo-ndk >/dev/null 2>&1 ||
  cargo install --quiet --locked cargo-ndk --version "$CARGO_NDK_VERSION"

# --no-default-features: the library without the uniffi-bindgen CLI.
# Release: thin LTO and one codegen unit for size; symbols stripped (the exported
# uniffi functions stay in the dynamic symbol table, which is what JNA looks up).
# panic stays "unwind": the FFI turns panics into YibiaoError.Internal (docs/mobile.md).
ndk_args=()
for abi in $ABIS; do ndk_args+=(-t "$abi"); done
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
CARGO_PROFILE_RELEASE_LTO=thin \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo ndk "${ndk_args[@]}" --platform "$API" -o "$OUT/src/main/jniLibs" \
  build --locked "${profile_flag[@]}" -p yibiao-mobile-ffi --lib --no-default-features

# Bindings come from the library's metadata, which is the same for every target: read it
# from a host build (the stripped phone libraries no longer carry the metadata symbols).
bash scripts/bindings.sh "" target/bindings-android
mkdir -p "$OUT/src/main/kotlin/yibiao"
cp target/bindings-android/kotlin/yibiao/yibiao.kt "$OUT/src/main/kotlin/yibiao/"

# A minimal Android library module, written once (edit freely afterwards).
if [ ! -f "$OUT/build.gradle.kts" ]; then
  cat >"$OUT/build.gradle.kts" <<'EOF'
// The yibiao core for Android: Kotlin bindings + libyibiao_ffi.so per ABI (jniLibs).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "yibiao"
    compileSdk = 35
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    // The generated bindings load the library through JNA; on Android use its AAR.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
}
EOF
  cat >"$OUT/consumer-rules.pro" <<'EOF'
# JNA and the generated bindings are called reflectively from native code.
-keep class com.sun.jna.** { *; }
-keep class * implements com.sun.jna.** { *; }
-keep class yibiao.** { *; }
EOF
  mkdir -p "$OUT/src/main"
  echo '<manifest xmlns:android="http://schemas.android.com/apk/res/android" />' \
    >"$OUT/src/main/AndroidManifest.xml"
fi

if command -v gradle >/dev/null 2>&1 && [ -n "${ANDROID_HOME:-}" ]; then
  (cd "$OUT" && gradle --quiet assembleRelease)
  ls "$OUT"/build/outputs/aar/*.aar
else
  echo "Android library module ready in $OUT:"
  echo "  include it in the app's settings.gradle.kts (include(\":yibiao\"); project(\":yibiao\").projectDir = file(\"$OUT\"))"
  echo "  or run 'gradle assembleRelease' there (needs ANDROID_HOME) for build/outputs/aar/yibiao-release.aar"
fi
find "$OUT/src/main/jniLibs" -name '*.so' -exec ls -l {} +
