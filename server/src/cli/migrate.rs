//! `yibiao-server migrate --to postgres://...`: moves a SQLite data directory up to
//! PostgreSQL (ADR 0010), verified table by table.

use clap::Args;

use super::Paths;
use crate::blobs::fs::FsBlobStore;
use crate::blobs::{BlobHash, BlobStore, Held};
use crate::storage::PostgresStorage;
use crate::storage::postgres::copy;

/// Options of `migrate`.
#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// The new, empty PostgreSQL database (postgres://user@host:port/db).
    #[arg(long)]
    to: String,
}

impl MigrateArgs {
    /// Copies `DATA_DIR/yibiao.db` into `--to` and prints each table's count and checksum.
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let cfg = paths.config(crate::config::Overrides::default())?;
        let source = cfg.data_dir.join("yibiao.db");
        if !source.is_file() {
            return Err(format!(
                "{} holds no yibiao database (yibiao.db); check --data-dir",
                cfg.data_dir.display()
            ));
        }
        // Opened (and migrated) through the same code as the running server: the schema
        // of the target is the one a PostgreSQL server expects. The source is opened the
        // same way first, so it is at this build's schema version.
        crate::storage::SqliteStorage::open(&source).map_err(|e| e.to_string())?;
        let target = PostgresStorage::open(&self.to).map_err(|e| {
            format!(
                "database {} cannot be opened: {e}",
                crate::state::redact(&self.to)
            )
        })?;
        let copied = copy::copy_from_sqlite(&source, &target).map_err(|e| e.to_string())?;
        println!(
            "{:<18} {:>9} {:>9}  checksum (SQLite = PostgreSQL)",
            "table", "SQLite", "PG"
        );
        for c in &copied {
            println!(
                "{:<18} {:>9} {:>9}  {}",
                c.table, c.rows.0, c.rows.1, c.checksums.1
            );
        }
        let (blobs, bytes) = copy_blobs(&cfg.data_dir.join("blobs"), &target)?;
        println!(
            "attachments: {blobs} blobs ({bytes} bytes) copied, each read back and checked by its SHA-256"
        );
        println!(
            "migrated {} rows of {} tables from {} into PostgreSQL; serve with --database",
            copied.iter().map(|c| c.rows.1).sum::<u64>(),
            copied.len(),
            source.display()
        );
        Ok(())
    }
}

/// Copies every complete blob of the data directory's files into the database's blob
/// store (on PostgreSQL the processes share the photos there, ADR 0013), in chunks, and
/// reads each back to check its hash. Partial uploads stay behind: the phone asks the
/// new server what it holds (nothing) and sends the photo again.
fn copy_blobs(dir: &std::path::Path, target: &PostgresStorage) -> Result<(u64, u64), String> {
    const CHUNK: usize = 256 * 1024;
    let files = FsBlobStore::new(dir);
    let (mut count, mut bytes) = (0u64, 0u64);
    for entry in files.list().map_err(|e| e.to_string())? {
        if entry.uploader.is_some() {
            continue;
        }
        let Some(data) = files.read(&entry.hash).map_err(|e| e.to_string())? else {
            continue;
        };
        if BlobHash::of(&data) != entry.hash {
            return Err(format!(
                "blob {} in {} does not hash to its name; the data directory is damaged (restore it from a backup)",
                entry.hash,
                dir.display()
            ));
        }
        let size = data.len() as u64;
        let mut offset = 0u64;
        for chunk in data.chunks(CHUNK) {
            match target
                .append(&entry.hash, "migrate", offset, size, chunk)
                .map_err(|e| format!("blob {}: {e}", entry.hash))?
            {
                Held::Complete { .. } => break,
                Held::Partial { held } => offset = held,
            }
        }
        let back = target
            .read(&entry.hash)
            .map_err(|e| format!("blob {}: {e}", entry.hash))?;
        if back.as_deref().map(BlobHash::of).as_ref() != Some(&entry.hash) {
            return Err(format!(
                "blob {} did not read back whole from PostgreSQL",
                entry.hash
            ));
        }
        count += 1;
        bytes += size;
    }
    Ok((count, bytes))
}
