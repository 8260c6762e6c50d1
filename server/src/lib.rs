//! # yibiao server
//!
//! One binary: the sync endpoint phones talk to, on embedded SQLite by default. Shaped
//! like the axum examples: [`app`] builds the router from an [`AppState`]; `main.rs` only
//! parses the command line and serves. Handlers parse, authorise, call core, map errors.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod routes;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use yibiao_core::Schema;
use yibiao_core::clock::SystemClock;
use yibiao_core::sync::{Hub, HubConfig};

pub use config::Config;
use storage::SqliteStorage;

/// The hub as the server runs it.
pub type ServerHub = Hub<Arc<SqliteStorage>>;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The sync engine.
    pub hub: Arc<ServerHub>,
    /// Device registry (and the hub's storage).
    pub storage: Arc<SqliteStorage>,
    /// Effective configuration.
    pub config: Arc<Config>,
}

impl AppState {
    /// Opens the data directory and builds the state.
    pub fn open(config: Config, schema: Schema) -> Result<Self, String> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let storage = Arc::new(
            SqliteStorage::open(&config.data_dir.join("yibiao.db")).map_err(|e| e.to_string())?,
        );
        let hub = Hub::new(
            Arc::new(schema),
            storage.clone(),
            Arc::new(SystemClock),
            HubConfig::default(),
        );
        Ok(Self {
            hub: Arc::new(hub),
            storage,
            config: Arc::new(config),
        })
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/v1/sync", post(routes::sync::sync))
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
