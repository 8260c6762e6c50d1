//! Fuzz target `schema_toml`: see `yibiao_fuzz::schema_toml` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yibiao_fuzz::schema_toml::run(data));
