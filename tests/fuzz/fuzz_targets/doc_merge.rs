//! Fuzz target `doc_merge`: see `yibiao_fuzz::doc_merge` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yibiao_fuzz::doc_merge::run(data));
