//! Fuzz target `sync_request`: see `yibiao_fuzz::sync_request` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yibiao_fuzz::sync_request::run(data));
