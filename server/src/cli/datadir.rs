//! The data directory as an operator meets it: who may use it at once, and what a
//! command may assume is in it.
//!
//! - `serve` holds an OS lock (`flock`, released by the kernel when the process dies, even
//!   by SIGKILL) on `DATA_DIR/yibiao.lock`, which also names the holder's pid. A second
//!   `serve`, or a `restore`, on the same directory fails at once with that pid.
//! - Operator commands (`cadre add`, `task add`, `backup`, ...) take no lock: SQLite in WAL
//!   mode lets them write beside a running server (one writer at a time, each waiting up
//!   to 10 s for the other), and the server reads their rows on its next request.
//! - Operator commands refuse a directory with no database (a mistyped `--data-dir` would
//!   otherwise make a new empty one and report "added"); `init`, `serve` or `--create`
//!   make one.
//! - With `--database postgres://...` (ADR 0010) the same rule applies to the PostgreSQL
//!   database: it must exist (yibiao never runs `CREATE DATABASE`, so a mistyped name fails
//!   to connect) and operator commands refuse one without yibiao's tables unless
//!   `--create`; `init` and `serve` make them. The data directory still holds the blobs,
//!   the admin token file and the served schema, and `serve` still takes its lock: each
//!   process serving one PostgreSQL database has its own data directory. `backup` and
//!   `restore` are SQLite's; PostgreSQL is backed up with its own tools (`pg_dump`), the
//!   data directory's `blobs/` beside it.
//! - Everything the process creates is owner-only: the umask is set to 077 at start
//!   ([`private_umask`]), so the directory is 0700 and the database, its `-wal`/`-shm`,
//!   backups and the admin token file are 0600.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The database file in a data directory.
pub(crate) fn database(dir: &Path) -> PathBuf {
    dir.join("yibiao.db")
}

/// The lock file in a data directory.
fn lock_path(dir: &Path) -> PathBuf {
    dir.join("yibiao.lock")
}

/// Makes every file and directory this process creates owner-only (umask 077).
pub(crate) fn private_umask() {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    }
}

/// Refuses a data directory with no database, unless `create` (the directory and the
/// database are then made by the caller's open).
pub(crate) fn require_database(dir: &Path, create: bool) -> Result<(), String> {
    if create || database(dir).exists() {
        return Ok(());
    }
    Err(format!(
        "no yibiao database in {}; did you mistype --data-dir? use --create (or `yibiao-server init`) to make a new one",
        dir.display()
    ))
}

/// Refuses a PostgreSQL database that yibiao never migrated, unless `create`.
pub(crate) fn require_postgres(url: &str, create: bool) -> Result<(), String> {
    if create {
        return Ok(());
    }
    let ready = crate::storage::postgres::is_migrated(url).map_err(|e| {
        format!(
            "database {} cannot be opened: {e}",
            crate::state::redact(url)
        )
    })?;
    if ready {
        return Ok(());
    }
    Err(format!(
        "the PostgreSQL database {} holds no yibiao tables; use --create (or `yibiao-server init`) to make them",
        crate::state::redact(url)
    ))
}

/// Refuses a command that reads or writes the SQLite file when the configuration names a
/// PostgreSQL database.
pub(crate) fn sqlite_only(cfg: &crate::config::Config, command: &str) -> Result<(), String> {
    match cfg.database {
        Some(_) => Err(format!(
            "`{command}` copies the SQLite database of a data directory; with --database postgres://... use PostgreSQL's own tools (pg_dump, pg_restore) and copy the data directory's blobs/ beside them"
        )),
        None => Ok(()),
    }
}

/// The running server's exclusive hold on a data directory; released when dropped or
/// when the process ends in any way.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `dir` (which must exist) for this process, or says which
    /// process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, String> {
        let path = lock_path(dir);
        let fail = |e: std::io::Error| format!("cannot open the lock file {}: {e}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("another yibiao-server (pid {holder})")
                };
                return Err(format!(
                    "data directory {} is in use by {who}; stop it first, or give another --data-dir",
                    dir.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { _file: file })
    }
}
