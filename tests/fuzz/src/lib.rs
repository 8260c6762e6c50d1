//! # yibiao fuzz targets
//!
//! One module per target, each a `run(data)` that feeds untrusted bytes to the real entry
//! point the server uses and asserts what must hold for *any* input (beyond "no panic").
//! The `fuzz_targets/*.rs` binaries only call `run`; the seed writer
//! (`examples/write_seeds.rs`) builds valid inputs with the same fixtures, so the fuzzer
//! starts from what phones, operators and departments really send.
//!
//! - [`sync_request`]: a sync body as `POST /v1/sync` reads it (magic, version,
//!   bounded zstd, postcard), both messages.
//! - [`doc_merge`]: a pushed document through a real `Hub` on `MemoryHubStorage`
//!   (budgets, strict load, checks, merge into a stored record, commit, pull).
//! - [`schema_toml`]: schema TOML text into a checked `Schema`, then values through it.
//! - [`http_json`]: the JSON body of every JSON route through the real router.

pub mod doc_merge;
pub mod http_json;
pub mod schema_toml;
pub mod sync_request;
