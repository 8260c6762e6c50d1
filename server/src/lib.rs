//! # yibiao server
//!
//! One binary: the sync endpoint phones talk to, the department pull, accounts, metrics,
//! on embedded SQLite by default. Shaped like the axum examples: [`app`] builds the router
//! from an [`AppState`]; `cli.rs` parses the command line and serves. Handlers parse,
//! authorise, call core (or the account operations), map errors.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod params;
pub mod routes;
pub mod state;
pub mod storage;
pub mod tasks;
pub mod tokens;

pub use config::Config;
pub use routes::app;
pub use state::{AppState, ServerHub};
