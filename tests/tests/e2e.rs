//! End-to-end tests of yibiao: real SQLite files on disk and real child processes, and
//! deterministic multi-phone sync through the test kit's simulated network.
//!
//! One integration-test binary for the crate; each concern lives in its own module
//! (under `tests/e2e/`).

#[cfg(unix)]
#[path = "e2e/attachments.rs"]
mod attachments;

#[cfg(unix)]
#[path = "e2e/crash.rs"]
mod crash;

#[path = "e2e/findings_sim.rs"]
mod findings_sim;

#[path = "e2e/proxy.rs"]
mod proxy;

#[cfg(unix)]
#[path = "e2e/sync_http.rs"]
mod sync_http;

#[path = "e2e/schema_sync.rs"]
mod schema_sync;

#[path = "e2e/sync_sim.rs"]
mod sync_sim;

#[cfg(unix)]
#[path = "e2e/trust_budgets.rs"]
mod trust_budgets;

#[cfg(unix)]
#[path = "e2e/postgres.rs"]
mod postgres;
