//! What every handler may use: the hub, storage, configuration, metrics, rate limits
//! and the clock, built once at start-up.

use std::sync::Arc;

use yibiao_model::Schema;
use yibiao_model::clock::{Clock, SystemClock};
use yibiao_sync::{Hub, HubConfig};

use crate::config::Config;
use crate::storage::{ServerStorage, SqliteStorage};
use crate::{limits, metrics};

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
        let path = config.data_dir.join("yibiao.db");
        let storage: Arc<dyn ServerStorage> =
            Arc::new(SqliteStorage::open(&path).map_err(|e| e.to_string())?);
        // A damaged database is refused here, with a message, rather than served as a
        // stream of 500s.
        let check = storage
            .integrity_check()
            .map_err(|e| format!("database {} cannot be checked: {e}", path.display()))?;
        if check != "ok" {
            return Err(format!(
                "database {} is damaged (integrity_check: {check}); restore it from a backup",
                path.display()
            ));
        }
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
