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
pub mod routes;
pub mod storage;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use yibiao_model::Schema;
use yibiao_model::clock::{Clock, SystemClock};
use yibiao_sync::{Hub, HubConfig};

pub use config::Config;
use storage::{ServerStorage, SqliteStorage};

/// The hub as the server runs it.
pub type ServerHub = Hub<Arc<dyn ServerStorage>>;

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The sync engine.
    pub hub: Arc<ServerHub>,
    /// Accounts, devices, the department read model (and the hub's storage).
    pub storage: Arc<dyn ServerStorage>,
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Per-token rate limits of sync and department requests.
    pub limiter: Arc<limits::RateLimiter>,
    /// The limit of enrolment attempts (all clients together).
    pub limiter_enrol: Arc<limits::RateLimiter>,
    /// The server's clock (due dates, receipts' overdue status); a manual one in tests.
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// Opens the data directory's SQLite database and builds the state.
    pub fn open(config: Config, schema: Schema) -> Result<Self, String> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let storage: Arc<dyn ServerStorage> = Arc::new(
            SqliteStorage::open(&config.data_dir.join("yibiao.db")).map_err(|e| e.to_string())?,
        );
        Ok(Self::with_storage(config, schema, storage))
    }

    /// Builds the state over any storage implementation.
    pub fn with_storage(config: Config, schema: Schema, storage: Arc<dyn ServerStorage>) -> Self {
        Self::with_clock(config, schema, storage, Arc::new(SystemClock))
    }

    /// Builds the state with a given clock (tests drive time by hand).
    pub fn with_clock(
        config: Config,
        schema: Schema,
        storage: Arc<dyn ServerStorage>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hub = Hub::new(
            Arc::new(schema),
            storage.clone(),
            clock.clone(),
            HubConfig::default(),
        );
        let limiter = limits::RateLimiter::new(config.rate_per_minute, config.rate_burst);
        Self {
            hub: Arc::new(hub),
            storage,
            metrics: Arc::new(metrics::Metrics::default()),
            limiter: Arc::new(limiter),
            limiter_enrol: Arc::new(limits::RateLimiter::new(60, 20)),
            config: Arc::new(config),
            clock,
        }
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    use axum::routing::delete;
    use routes::{admin, enrol, health, openapi, records, sync, tasks};
    let limit = state.config.max_body_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route("/v1/sync", post(sync::sync))
        .route("/v1/enrol", post(enrol::enrol))
        .route("/v1/records", get(records::list))
        .route("/v1/records.ndjson", get(records::ndjson))
        .route("/v1/records.csv", get(records::csv))
        .route("/v1/feed", get(records::feed))
        .route("/v1/tasks", post(tasks::create).get(tasks::list))
        .route(
            "/v1/tasks/{task}",
            get(tasks::show).merge(delete(tasks::cancel)),
        )
        .route("/v1/summary", get(tasks::summary))
        .route("/v1/burden", get(tasks::burden))
        .route(
            "/v1/admin/cadres",
            post(admin::create_cadre).get(admin::list_cadres),
        )
        .route("/v1/admin/cadres/{id}/codes", post(admin::issue_code))
        .route("/v1/admin/devices", get(admin::list_devices))
        .route("/v1/admin/devices/{key}/revoke", post(admin::revoke_device))
        .route(
            "/v1/admin/departments/{department}/tokens",
            post(admin::issue_department_token),
        )
        .route(
            "/v1/admin/department-tokens",
            get(admin::list_department_tokens),
        )
        .route(
            "/v1/admin/department-tokens/{key}/revoke",
            post(admin::revoke_department_token),
        )
        .fallback(|| async {
            error::ApiError::NotFound("no such endpoint; see /openapi.json".into())
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
