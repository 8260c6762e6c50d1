//! The one test and bench kit of yibiao, shared by tests, benches and examples.
//!
//! A test or bench holds only what is particular to it; everything they share is here:
//! - [`rng`]: the one seeded random generator (SplitMix64), so every run is reproducible;
//! - [`data`]: households and field values valid against the Baru schema
//!   (`examples/schema/baru.toml`, [`yibiao_model::Schema::baru_example`]);
//! - [`transport`]: the in-process transport, a sync [`Transport`](yibiao_sync::Transport)
//!   straight into a [`Hub`](yibiao_sync::Hub);
//! - [`simnet`]: a deterministic simulated network of many phones and one hub that cuts
//!   requests, cuts responses after the hub committed and replays requests;
//! - [`server`]: the real server binary as a child process on a free loopback port;
//! - [`bench`]: bench settings from the environment, latency summaries and ratios;
//! - [`http`]: a plain HTTP/1.1 client that streams a response body to the caller;
//! - [`procfs`]: memory and CPU of a process, read from `/proc`.
//!
//! The kit depends on `yibiao-core` only, never on `yibiao-server`: the server process is
//! reached through its binary (the caller passes `env!("CARGO_BIN_EXE_…")`), so the
//! server's own tests can use the kit without a dependency cycle.

pub mod bench;
pub mod data;
pub mod http;
pub mod pg;
pub mod procfs;
pub mod rng;
pub mod server;
pub mod simnet;
pub mod transport;

/// Errors of the kit: test and bench plumbing, where any failure ends the run.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result of the kit's fallible helpers.
pub type Result<T> = std::result::Result<T, Error>;
