//! What every handler may use: the hub, storage, configuration, metrics, rate limits
//! and the clock, built once at start-up.

use std::path::Path;
use std::sync::Arc;

use yibiao_model::Schema;
use yibiao_model::clock::{Clock, SystemClock};
use yibiao_sync::{Hub, HubConfig};

use crate::blobs::BlobStore;
use crate::blobs::fs::FsBlobStore;
use crate::blobs::thumbnail::Thumbnails;
use crate::config::Config;
use crate::storage::{ServerStorage, SqliteStorage};
use crate::{limits, metrics};

/// Opens (and migrates) the PostgreSQL database at `url`; the error names the address
/// without its password.
pub fn open_postgres(url: &str) -> Result<Arc<dyn ServerStorage>, String> {
    Ok(open_postgres_shared(url)?)
}

/// [`open_postgres`] as the concrete type, which is also the processes' shared
/// [`BlobStore`] (ADR 0013: on PostgreSQL the photos live in the database).
pub fn open_postgres_shared(url: &str) -> Result<Arc<crate::storage::PostgresStorage>, String> {
    let storage = crate::storage::PostgresStorage::open(url)
        .map_err(|e| format!("database {} cannot be opened: {e}", redact(url)))?;
    Ok(Arc::new(storage))
}

/// `url` with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.split_once(':') {
                Some((name, _)) => format!("{}{name}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

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
    /// The limit of enrolment attempts (all clients together; each address and each code
    /// has its own in [`AppState::guards`]).
    pub limiter_enrol: Arc<limits::RateLimiter>,
    /// Requests in flight, streams, enrolment per address and per code.
    pub guards: Arc<limits::Guards>,
    /// Attachments' bytes (`<data_dir>/blobs` on SQLite, the database on PostgreSQL;
    /// ADR 0013).
    pub blobs: Arc<dyn BlobStore>,
    /// Thumbnails of photos made on request, kept in memory by the original's hash.
    pub thumbnails: Arc<Thumbnails>,
    /// Webhook endpoints and their delivery log (ADR 0011), on the same database;
    /// `None` for a state built over storage that keeps none (some tests).
    pub webhooks: Option<Arc<dyn crate::storage::WebhookStorage>>,
    /// The server's clock (due dates, receipts' overdue status); a manual one in tests.
    pub clock: Arc<dyn Clock>,
    /// When each device's last-seen time was last written (at most once a minute).
    pub last_seen: Arc<LastSeen>,
}

/// Throttles the last-seen write: a device's sync writes its time only when this process
/// has not written it within [`LastSeen::EVERY_MS`], so most sync requests add no write.
#[derive(Debug, Default)]
pub struct LastSeen(std::sync::Mutex<std::collections::HashMap<String, i64>>);

impl LastSeen {
    /// How stale a stored last-seen time may be.
    pub const EVERY_MS: i64 = 60_000;

    /// True when device `key`, seen at `now_ms`, should have its time written (and
    /// remembers that it was).
    pub fn due(&self, key: &str, now_ms: i64) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(&at) if now_ms - at < Self::EVERY_MS && now_ms >= at => false,
            _ => {
                map.insert(key.to_owned(), now_ms);
                true
            }
        }
    }
}

impl AppState {
    /// Opens the data directory's SQLite database and builds the state.
    pub fn open(config: Config, schema: Schema) -> Result<Self, String> {
        private_dir(&config.data_dir)?;
        if let Some(url) = &config.database {
            // Every process shares the database, so attachments live there too: a phone's
            // upload may resume through another process after a cut.
            let pg = open_postgres_shared(url)?;
            let mut state = Self::with_storage(config, schema, pg.clone());
            state.blobs = pg.clone();
            state.webhooks = Some(pg);
            return Ok(state);
        }
        let path = config.data_dir.join("yibiao.db");
        private_file(&path)?;
        for side in ["yibiao.db-wal", "yibiao.db-shm"] {
            let side = config.data_dir.join(side);
            if side.exists() {
                private_file(&side)?;
            }
        }
        let sqlite = Arc::new(
            SqliteStorage::open(&path)
                .map_err(|e| format!("database {} cannot be opened: {e}", path.display()))?,
        );
        let storage: Arc<dyn ServerStorage> = sqlite.clone();
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
        let mut state = Self::with_storage(config, schema, storage);
        state.webhooks = Some(sqlite);
        Ok(state)
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
        // Records set aside as too large for an older budget are served again once they
        // fit this one (the hub reads the list once, below).
        if let Err(e) = storage.release_fitting(config.budgets.max_record_bytes) {
            tracing::error!(error = %e, "cannot check the quarantine list against the budget");
        }
        let hub = Hub::new(
            Arc::new(schema),
            storage.clone(),
            clock.clone(),
            HubConfig {
                budgets: config.budgets.clone(),
                response_bytes: (
                    HubConfig::default().response_bytes.0,
                    config.max_response_bytes,
                ),
                ..HubConfig::default()
            },
        );
        let limiter = limits::RateLimiter::new(config.rate_per_minute, config.rate_burst);
        Self {
            hub: Arc::new(hub),
            storage,
            metrics: Arc::new(metrics::Metrics::default()),
            limiter: Arc::new(limiter),
            limiter_enrol: Arc::new(limits::RateLimiter::new(300, 100)),
            guards: Arc::new(limits::Guards::new(&config)),
            blobs: Arc::new(FsBlobStore::new(config.data_dir.join("blobs"))),
            thumbnails: Arc::default(),
            webhooks: None,
            config: Arc::new(config),
            clock,
            last_seen: Arc::default(),
        }
    }
}

/// Creates the data directory readable by the server's user only (0700), or narrows an
/// existing one to that: it holds every record and the admin token.
fn private_dir(dir: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot create data directory {}: {e}", dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "data directory was readable by others; narrowing it to 0700");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(fail)?;
    Ok(())
}

/// Creates the database file 0600 before SQLite opens it (SQLite gives its `-wal` and
/// `-shm` files the database file's mode), or narrows an existing one.
fn private_file(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |e: std::io::Error| format!("cannot create {}: {e}", path.display());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        let mode = std::fs::metadata(path).map_err(fail)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn a_database_address_in_an_error_hides_its_password() {
        assert_eq!(
            super::redact("postgres://yb:s3cret@db:5432/yibiao"),
            "postgres://yb:***@db:5432/yibiao"
        );
        assert_eq!(super::redact("postgres://yb@db/y"), "postgres://yb@db/y");
        let e = super::open_postgres("postgres://yb:s3cret@127.0.0.1:1/none")
            .err()
            .unwrap_or_default();
        assert!(e.contains("yb:***@") && !e.contains("s3cret"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::LastSeen;

    #[test]
    fn a_devices_last_seen_is_written_at_most_once_a_minute() {
        let seen = LastSeen::default();
        assert!(seen.due("a", 1_000_000), "first sync");
        assert!(!seen.due("a", 1_000_000 + 59_999), "within the minute");
        assert!(seen.due("b", 1_000_001), "another device");
        assert!(seen.due("a", 1_000_000 + 60_000), "a minute later");
        assert!(seen.due("a", 0), "a clock set back writes again");
    }
}
