//! Fuzz target `http_json`: see `yibiao_fuzz::http_json` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yibiao_fuzz::http_json::run(data));
