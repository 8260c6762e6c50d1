//! End-to-end tests of yibiao: real SQLite files on disk and real child processes.
//!
//! One integration-test binary for the crate; each concern lives in its own module
//! (under `tests/e2e/`).

#[cfg(unix)]
#[path = "e2e/crash.rs"]
mod crash;
