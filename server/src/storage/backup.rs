//! Copies of the SQLite database, taken while the server serves: `backup` and `restore`.
//!
//! Both use SQLite's online backup API, in one step: the copy reads every page inside one
//! read transaction, so it is the database as of one commit, and in WAL mode the server's
//! writers go on meanwhile (they append to the WAL; the reader keeps its snapshot). A copy
//! is written to a temporary file beside its destination, checked (`integrity_check`,
//! version), synced and renamed into place: a destination is either the old file or a
//! whole checked copy, never half of one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// SQLite refused a step.
    #[error("{what} {path}: {source}")]
    Sqlite {
        /// The step.
        what: &'static str,
        /// The file it was about.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The file it was about.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is not a sound SQLite database.
    #[error("{path} is damaged (integrity_check: {check})")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What `integrity_check` said.
        check: String,
    },
    /// The file is not a yibiao database, or one this build cannot read.
    #[error("{path} {why}")]
    NotOurs {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// What a checked copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInfo {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its database version (`PRAGMA user_version`).
    pub version: i64,
}

fn sqlite(what: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Sqlite { what, path, source }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

/// Opens an existing database without creating it.
fn open_existing(path: &Path, flags: OpenFlags) -> Result<Connection, BackupError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sqlite("cannot open", path))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sqlite("cannot open", path))?;
    Ok(conn)
}

/// Checks that `path` is a sound yibiao database this build can serve.
pub fn check(path: &Path) -> Result<CopyInfo, BackupError> {
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                BackupError::NotOurs {
                    path: path.to_owned(),
                    why: "is not a SQLite database".into(),
                }
            }
            e => sqlite("cannot check", path)(e),
        })?;
    if check != "ok" {
        return Err(BackupError::Damaged {
            path: path.to_owned(),
            check,
        });
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("cannot read the version of", path))?;
    let known = super::sqlite::known_version();
    let why = if version == 0 {
        Some("is not a yibiao database (version 0)".to_owned())
    } else if version > known {
        Some(format!(
            "was written by a newer yibiao-server (version {version}, this build reads up to {known})"
        ))
    } else {
        None
    };
    if let Some(why) = why {
        return Err(BackupError::NotOurs {
            path: path.to_owned(),
            why,
        });
    }
    let bytes = std::fs::metadata(path)
        .map_err(io("cannot read", path))?
        .len();
    Ok(CopyInfo { bytes, version })
}

/// Copies the database at `from` (which may be serving) to `to`, checked.
pub fn backup(from: &Path, to: &Path) -> Result<CopyInfo, BackupError> {
    let source = open_existing(from, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    copy_checked(&source, from, to)
}

/// Replaces the database at `db` with a checked copy of `from`. The caller holds the data
/// directory's lock (no server is running on it).
pub fn restore(from: &Path, db: &Path) -> Result<CopyInfo, BackupError> {
    check(from)?;
    let source = open_existing(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // The old database's WAL must go first: SQLite would replay it onto the new file.
    for side in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(side);
        match std::fs::remove_file(PathBuf::from(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("cannot remove", db)(e));
            }
            _ => {}
        }
    }
    copy_checked(&source, from, db)
}

/// The online backup of `source` into a temporary file beside `to`, checked, synced and
/// renamed over `to`.
fn copy_checked(source: &Connection, from: &Path, to: &Path) -> Result<CopyInfo, BackupError> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(format!(".partial-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let result = copy_into(source, from, &tmp).and_then(|()| {
        let info = check(&tmp)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io("cannot sync", &tmp))?;
        std::fs::rename(&tmp, to).map_err(io("cannot write", to))?;
        Ok(info)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn copy_into(source: &Connection, from: &Path, tmp: &Path) -> Result<(), BackupError> {
    let mut dest = Connection::open(tmp).map_err(sqlite("cannot create", tmp))?;
    {
        let backup = rusqlite::backup::Backup::new(source, &mut dest)
            .map_err(sqlite("cannot start a backup of", from))?;
        // All pages in one step: one read transaction, one commit's state. Busy or
        // locked (a checkpoint at that instant) is retried for up to ten seconds.
        let mut tries = 0;
        loop {
            match backup.step(-1).map_err(sqlite("cannot copy", from))? {
                rusqlite::backup::StepResult::Done => break,
                _ if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    return Err(BackupError::NotOurs {
                        path: from.to_owned(),
                        why: "stayed locked for 10 s; try again".into(),
                    });
                }
            }
        }
    }
    // A backup is one self-contained file: no `-wal` beside it (serving turns WAL on again).
    let _: String = dest
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(sqlite("cannot finish", tmp))?;
    dest.close()
        .map_err(|(_, e)| sqlite("cannot close", tmp)(e))
}
