//! When each device last synced ([`DeviceSeenStorage`]), and the cadre's own state the
//! township admin pages change (disabled, moved): one self-contained migration step,
//! [`MIGRATION`].
//!
//! Last-seen is written at most once a minute per device: `LastSeen` (in the server state)
//! remembers in memory when each key was last written, so a sync request normally adds
//! no write at all; the column is an indication for people ("synced 3 minutes ago"),
//! not an audit record.

use rusqlite::params;
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, lock};

/// The columns: `devices.last_seen_ms` (ms since the epoch, `NULL` before the first
/// sync of this build) and `cadres.disabled_ms` (the admin disabled the cadre; their
/// devices are revoked at the same time).
pub(super) const MIGRATION: &str = r#"
    ALTER TABLE devices ADD COLUMN last_seen_ms INTEGER;
    ALTER TABLE cadres ADD COLUMN disabled_ms INTEGER;
"#;

/// When devices last synced.
pub trait DeviceSeenStorage: Send + Sync {
    /// Records that the device `key` synced at `now_ms` (never moves backwards).
    fn touch_device(&self, key: &str, now_ms: i64) -> Result<(), StorageError>;
    /// Every device's last sync, by key (devices never seen are absent).
    fn devices_last_seen(&self) -> Result<Vec<(String, i64)>, StorageError>;
}

impl DeviceSeenStorage for SqliteStorage {
    fn touch_device(&self, key: &str, now_ms: i64) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "UPDATE devices SET last_seen_ms = ?2
                 WHERE key = ?1 AND (last_seen_ms IS NULL OR last_seen_ms < ?2)",
                params![key, now_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn devices_last_seen(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT key, last_seen_ms FROM devices WHERE last_seen_ms IS NOT NULL")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}
