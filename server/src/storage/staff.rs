//! The web console's tables on SQLite: staff accounts (argon2id PHC strings, never the
//! password), sessions (by the SHA-256 of their id, never the id), login attempts and the
//! console audit log. One migration step ([`MIGRATION`]) adds all four.

use rusqlite::{OptionalExtension, params};
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, lock};

/// The migration step of the console's tables (self-contained: it may be renumbered).
pub(crate) const MIGRATION: &str = r#"
    -- People who sign in to the web console. `role` is admin, leader or clerk;
    -- `department` is set for a department's clerk (role clerk) and NULL for township staff.
    CREATE TABLE staff (
        login         TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        role          TEXT NOT NULL,
        department    TEXT,
        password_hash TEXT NOT NULL,
        created_ms    INTEGER NOT NULL,
        disabled_ms   INTEGER
    );
    -- Console sessions, by the SHA-256 of the cookie's random id.
    CREATE TABLE staff_sessions (
        id_hash      BLOB PRIMARY KEY,
        login        TEXT NOT NULL,
        csrf         TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX staff_sessions_by_login ON staff_sessions (login);
    -- Every sign-in attempt: outcome ok, wrong (password or account) or locked.
    CREATE TABLE login_attempts (
        at_ms   INTEGER NOT NULL,
        addr    TEXT NOT NULL,
        login   TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX login_attempts_by_login ON login_attempts (login, at_ms);
    CREATE INDEX login_attempts_by_addr ON login_attempts (addr, at_ms);
    -- Who did what in the console, when, from where.
    CREATE TABLE console_audit (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms  INTEGER NOT NULL,
        login  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        addr   TEXT NOT NULL
    );
"#;

/// A staff account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRow {
    /// Login name (ASCII).
    pub login: String,
    /// Name as people write it.
    pub name: String,
    /// `admin`, `leader` or `clerk`.
    pub role: String,
    /// The department of a department's clerk; `None` for township staff.
    pub department: Option<String>,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_ms: i64,
    /// When the account was disabled.
    pub disabled_ms: Option<i64>,
}

/// A console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session id.
    pub id_hash: Vec<u8>,
    /// Whose session.
    pub login: String,
    /// The session's CSRF token (a random secret of the session, never sent in a URL).
    pub csrf: String,
    /// Sign-in time.
    pub created_ms: i64,
    /// Last request.
    pub last_seen_ms: i64,
}

/// One line of the console audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    /// When.
    pub at_ms: i64,
    /// Who (a staff login, or `cli` for the command line).
    pub login: String,
    /// What, e.g. `sign_in`, `password_reset`.
    pub action: String,
    /// On what, e.g. the account reset.
    pub target: String,
    /// From where (client address; `cli` for the command line).
    pub addr: String,
}

/// The console's storage: staff, sessions, login attempts, audit log.
pub trait StaffStorage: Send + Sync {
    /// Adds an account; false when the login is taken.
    fn add_staff(&self, row: &StaffRow) -> Result<bool, StorageError>;
    /// One account, disabled or not.
    fn staff(&self, login: &str) -> Result<Option<StaffRow>, StorageError>;
    /// Every account.
    fn staff_list(&self) -> Result<Vec<StaffRow>, StorageError>;
    /// True when an enabled admin account exists.
    fn has_admin_staff(&self) -> Result<bool, StorageError>;
    /// Replaces an account's password hash and ends its sessions; false if unknown.
    fn set_staff_password(&self, login: &str, hash: &str) -> Result<bool, StorageError>;
    /// Disables an account and ends its sessions; false if unknown or already disabled.
    fn disable_staff(&self, login: &str, now_ms: i64) -> Result<bool, StorageError>;
    /// Stores a new session.
    fn add_session(&self, row: &SessionRow) -> Result<(), StorageError>;
    /// The session with this id hash.
    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>, StorageError>;
    /// Notes a request of the session.
    fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), StorageError>;
    /// Ends a session.
    fn end_session(&self, id_hash: &[u8]) -> Result<(), StorageError>;
    /// Notes a sign-in attempt (`outcome`: ok, wrong, locked).
    fn note_login(
        &self,
        at_ms: i64,
        addr: &str,
        login: &str,
        outcome: &str,
    ) -> Result<(), StorageError>;
    /// Wrong passwords since `since_ms` for `login` and from `addr`, and the time of the
    /// oldest of the login's (when its lock ends).
    fn failed_logins(
        &self,
        login: &str,
        addr: &str,
        since_ms: i64,
    ) -> Result<FailedLogins, StorageError>;
    /// Forgets the wrong passwords of `login` (an admin's reset unlocks it).
    fn clear_failed_logins(&self, login: &str) -> Result<(), StorageError>;
    /// Appends to the audit log.
    fn audit(&self, row: &AuditRow) -> Result<(), StorageError>;
    /// The newest `limit` lines of the audit log, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, StorageError>;
}

/// Recent wrong passwords, for the lockout rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedLogins {
    /// Of the account.
    pub login: u32,
    /// Oldest of the account's, if any.
    pub login_oldest_ms: Option<i64>,
    /// From the address, any account.
    pub addr: u32,
    /// Oldest of the address's, if any.
    pub addr_oldest_ms: Option<i64>,
}

fn staff_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaffRow> {
    Ok(StaffRow {
        login: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        department: r.get(3)?,
        password_hash: r.get(4)?,
        created_ms: r.get(5)?,
        disabled_ms: r.get(6)?,
    })
}

const STAFF_COLUMNS: &str = "login, name, role, department, password_hash, created_ms, disabled_ms";

impl StaffStorage for SqliteStorage {
    fn add_staff(&self, row: &StaffRow) -> Result<bool, StorageError> {
        let n = lock(&self.writer)
            .execute(
                &format!("INSERT OR IGNORE INTO staff ({STAFF_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![row.login, row.name, row.role, row.department, row.password_hash, row.created_ms, row.disabled_ms],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    fn staff(&self, login: &str) -> Result<Option<StaffRow>, StorageError> {
        lock(&self.reader)
            .query_row(
                &format!("SELECT {STAFF_COLUMNS} FROM staff WHERE login = ?1"),
                [login],
                staff_row,
            )
            .optional()
            .map_err(err)
    }

    fn staff_list(&self) -> Result<Vec<StaffRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare(&format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY login"))
            .map_err(err)?;
        let rows = stmt.query_map([], staff_row).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    fn has_admin_staff(&self) -> Result<bool, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM staff WHERE role = 'admin' AND department IS NULL AND disabled_ms IS NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(err)
    }

    fn set_staff_password(&self, login: &str, hash: &str) -> Result<bool, StorageError> {
        self.update_staff_ending_sessions(
            "UPDATE staff SET password_hash = ?2 WHERE login = ?1",
            login,
            params![login, hash],
        )
    }

    fn disable_staff(&self, login: &str, now_ms: i64) -> Result<bool, StorageError> {
        self.update_staff_ending_sessions(
            "UPDATE staff SET disabled_ms = ?2 WHERE login = ?1 AND disabled_ms IS NULL",
            login,
            params![login, now_ms],
        )
    }

    fn add_session(&self, row: &SessionRow) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO staff_sessions (id_hash, login, csrf, created_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.id_hash, row.login, row.csrf, row.created_ms, row.last_seen_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT id_hash, login, csrf, created_ms, last_seen_ms FROM staff_sessions WHERE id_hash = ?1",
                [id_hash],
                |r| {
                    Ok(SessionRow {
                        id_hash: r.get(0)?,
                        login: r.get(1)?,
                        csrf: r.get(2)?,
                        created_ms: r.get(3)?,
                        last_seen_ms: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(err)
    }

    fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "UPDATE staff_sessions SET last_seen_ms = ?2 WHERE id_hash = ?1",
                params![id_hash, now_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn end_session(&self, id_hash: &[u8]) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute("DELETE FROM staff_sessions WHERE id_hash = ?1", [id_hash])
            .map_err(err)?;
        Ok(())
    }

    fn note_login(
        &self,
        at_ms: i64,
        addr: &str,
        login: &str,
        outcome: &str,
    ) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO login_attempts (at_ms, addr, login, outcome) VALUES (?1, ?2, ?3, ?4)",
                params![at_ms, addr, login, outcome],
            )
            .map_err(err)?;
        Ok(())
    }

    fn failed_logins(
        &self,
        login: &str,
        addr: &str,
        since_ms: i64,
    ) -> Result<FailedLogins, StorageError> {
        let conn = lock(&self.reader);
        let count = |column: &str, key: &str| -> Result<(u32, Option<i64>), StorageError> {
            conn.query_row(
                &format!(
                    "SELECT COUNT(*), MIN(at_ms) FROM login_attempts
                     WHERE {column} = ?1 AND at_ms >= ?2 AND outcome = 'wrong'"
                ),
                params![key, since_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)
        };
        let (login, login_oldest_ms) = count("login", login)?;
        let (addr, addr_oldest_ms) = count("addr", addr)?;
        Ok(FailedLogins {
            login,
            login_oldest_ms,
            addr,
            addr_oldest_ms,
        })
    }

    fn clear_failed_logins(&self, login: &str) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "UPDATE login_attempts SET outcome = 'wrong-cleared' WHERE login = ?1 AND outcome = 'wrong'",
                [login],
            )
            .map_err(err)?;
        Ok(())
    }

    fn audit(&self, row: &AuditRow) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO console_audit (at_ms, login, action, target, addr) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.at_ms, row.login, row.action, row.target, row.addr],
            )
            .map_err(err)?;
        Ok(())
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare(
                "SELECT at_ms, login, action, target, addr FROM console_audit ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(AuditRow {
                    at_ms: r.get(0)?,
                    login: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    addr: r.get(4)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}

impl SqliteStorage {
    /// Runs one update of `login`'s account and ends its sessions in the same
    /// transaction (a new password or a disabled account signs every browser out).
    /// True when the update changed the account.
    fn update_staff_ending_sessions(
        &self,
        update: &str,
        login: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        let n = tx.execute(update, values).map_err(err)?;
        tx.execute("DELETE FROM staff_sessions WHERE login = ?1", [login])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n == 1)
    }
}
