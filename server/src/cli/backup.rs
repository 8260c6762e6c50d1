//! `yibiao-server backup --to FILE` and `restore --from FILE`: the database copied with
//! SQLite's online backup API ([`crate::storage::backup`]). A backup may run while the
//! server serves and writes; a restore takes the data directory's lock, so it never runs
//! under a serving server.

use std::path::PathBuf;

use super::Paths;
use super::datadir::{self, DataDirLock};
use crate::config::Overrides;
use crate::storage::backup;

/// Options of `backup`.
#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    /// The file to write (a single SQLite file; refused if it exists, unless --force).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Options of `restore`.
#[derive(clap::Args)]
pub(crate) struct RestoreArgs {
    /// A file written by `backup`.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Replace the database the data directory holds (back it up first).
    #[arg(long)]
    force: bool,
}

impl BackupArgs {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let cfg = paths.config(Overrides::default())?;
        datadir::sqlite_only(&cfg, "backup")?;
        datadir::require_database(&cfg.data_dir, false)?;
        if self.to.exists() && !self.force {
            return Err(format!(
                "{} exists; give a new file name, or --force to replace it",
                self.to.display()
            ));
        }
        let info = backup::backup(&datadir::database(&cfg.data_dir), &self.to)
            .map_err(|e| format!("backup failed: {e}"))?;
        println!(
            "backed up {} to {} ({} bytes, database version {}, integrity ok)",
            cfg.data_dir.display(),
            self.to.display(),
            info.bytes,
            info.version
        );
        Ok(())
    }
}

impl RestoreArgs {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let cfg = paths.config(Overrides::default())?;
        datadir::sqlite_only(&cfg, "restore")?;
        // Checked before anything is made or locked: a wrong file changes nothing.
        backup::check(&self.from).map_err(|e| format!("cannot restore: {e}"))?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                cfg.data_dir.display()
            )
        })?;
        let _lock = DataDirLock::acquire(&cfg.data_dir)?;
        let db = datadir::database(&cfg.data_dir);
        if db.exists() && !self.force {
            return Err(format!(
                "{} already holds a yibiao database; restore into an empty data directory, or give --force to replace it (back it up first)",
                cfg.data_dir.display()
            ));
        }
        let info = backup::restore(&self.from, &db).map_err(|e| format!("restore failed: {e}"))?;
        println!(
            "restored {} into {} ({} bytes, database version {}, integrity ok); `serve` migrates it if it is older",
            self.from.display(),
            cfg.data_dir.display(),
            info.bytes,
            info.version
        );
        Ok(())
    }
}
