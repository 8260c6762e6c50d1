//! `uniffi-bindgen`, pinned to the same uniffi as the library (see Cargo.toml):
//! `cargo run -p yibiao-mobile-ffi --bin uniffi-bindgen -- generate --library ...`.
//! `scripts/bindings.sh` is the one place that calls it.

fn main() {
    uniffi::uniffi_bindgen_main()
}
