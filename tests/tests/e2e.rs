//! End-to-end tests of yibiao: real SQLite files on disk and real child processes.
//!
//! One integration-test binary for the crate; each concern lives in its own module
//! (under `tests/e2e/`).

#[cfg(unix)]
#[path = "e2e/crash.rs"]
mod crash;

#[path = "e2e/proxy.rs"]
mod proxy;

#[cfg(unix)]
#[path = "e2e/sync_http.rs"]
mod sync_http;

#[cfg(unix)]
#[path = "e2e/server_process.rs"]
mod server_process;
