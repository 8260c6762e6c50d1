//! # yibiao server
//!
//! One binary: the sync endpoint phones talk to, the department pull, accounts, tasks,
//! reports, metrics, on embedded SQLite by default. Shaped like the axum examples:
//! [`app`] builds the router from an [`AppState`]; [`cli`] parses the command line and
//! serves.
//!
//! The data path, by module: [`routes`] (one router per resource, documented with
//! utoipa), [`auth`] (extractors that say who may call: authenticate, rate-limit,
//! count), [`params`] (typed query strings and bodies), [`error`] (the one JSON error
//! envelope), then the operations both HTTP and the CLI call: [`accounts`] and
//! [`tasks`], over [`storage`]. Handlers parse, authorise, call core or those
//! operations, and map errors. [`console`] is the web console at `/` (HTML pages for
//! staff who sign in), built on the same operations and department views.

pub mod accounts;
pub mod auth;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod findings;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod params;
pub mod routes;
pub mod schema_change;
pub mod state;
pub mod storage;
pub mod tasks;
pub mod tls;
pub mod tokens;
pub mod webhooks;

pub use config::Config;
pub use state::{AppState, ServerHub};

/// The server's router: the HTTP API ([`routes`]) and the web console ([`console`]),
/// under one set of limits.
pub fn app(state: AppState) -> axum::Router {
    routes::app_with(state, console::router())
}
