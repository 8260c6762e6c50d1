//! `yibiao-server migrate --to postgres://...`: moves a SQLite data directory up to
//! PostgreSQL (ADR 0010), verified table by table.

use clap::Args;

use super::Paths;
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
        println!(
            "migrated {} rows of {} tables from {} into PostgreSQL; serve with --database",
            copied.iter().map(|c| c.rows.1).sum::<u64>(),
            copied.len(),
            source.display()
        );
        Ok(())
    }
}
