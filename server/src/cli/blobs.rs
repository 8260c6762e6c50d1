//! `yibiao-server blobs gc`: the attachments' garbage pass ([`crate::blobs::collect`]):
//! removes blobs no stored record references once older than `[blobs] grace_secs`, and
//! partial uploads untouched that long. Safe beside a running server: a blob is only
//! removed when old and unreferenced, and a new reference to it arrives with a phone
//! that still holds the bytes and uploads them again.

use std::sync::Arc;

use clap::Subcommand;

use super::Paths;
use crate::blobs::{self, BlobStore, fs::FsBlobStore};
use crate::config::Overrides;
use crate::storage::{BlobRefStorage, PostgresStorage, SqliteStorage};

#[derive(Subcommand)]
pub(crate) enum BlobsAction {
    /// Remove unreferenced blobs and stale partial uploads older than the grace period.
    Gc,
}

impl BlobsAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let cfg = paths.config(Overrides::default())?;
        // On PostgreSQL the blobs are in the database beside the references; on SQLite
        // they are files in the data directory.
        let (storage, store): (Arc<dyn BlobRefStorage>, Arc<dyn BlobStore>) = match &cfg.database {
            Some(url) => {
                let pg = Arc::new(PostgresStorage::open(url).map_err(|e| {
                    format!(
                        "database {} cannot be opened: {e}",
                        crate::state::redact(url)
                    )
                })?);
                (pg.clone(), pg)
            }
            None => {
                let db = cfg.data_dir.join("yibiao.db");
                if !db.exists() {
                    return Err(format!("no database at {}", db.display()));
                }
                (
                    Arc::new(SqliteStorage::open(&db).map_err(|e| e.to_string())?),
                    Arc::new(FsBlobStore::new(cfg.data_dir.join("blobs"))),
                )
            }
        };
        let now = chrono::Utc::now().timestamp_millis();
        let grace = i64::try_from(cfg.blobs.grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        match self {
            BlobsAction::Gc => {
                let r = blobs::collect(store.as_ref(), storage.as_ref(), now, grace)?;
                println!(
                    "removed {} blobs and {} partial uploads ({} bytes); kept {} blobs",
                    r.removed, r.partials_removed, r.bytes_freed, r.kept
                );
                Ok(())
            }
        }
    }
}
