//! PostgreSQL: every storage trait on one database that several `yibiao-server`
//! processes share (ADR 0010).
//!
//! The traits are blocking (the server calls them on tokio's blocking pool), so this uses
//! the synchronous `postgres` client with an `r2d2` pool. One transaction per logical
//! write, as on SQLite. Numbered migrations ([`STEPS`]) run under an advisory lock, so
//! processes starting together migrate once.
//!
//! **The feed**: a record's feed position comes from the one-row `feed_head` counter,
//! taken with `UPDATE feed_head SET pos = pos + 1 RETURNING pos` as the *last* statements
//! of the committing transaction. The row lock is held until that transaction commits or
//! aborts, so a second committer waits for it before it gets a position: positions are
//! handed out in commit order, and no reader can ever see position `p` while a smaller
//! position is still uncommitted. A cursor therefore never passes a row that becomes
//! visible later (the trap a sequence would set: `nextval` hands out numbers that commit
//! out of order). See `hub.rs`.

mod accounts;
mod admin;
pub mod copy;
mod hub;
mod quarantine;
mod views;
mod webhooks;

use std::str::FromStr;

use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

/// The pool's connection type.
type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// The schema, one step per released version (the same history as SQLite's steps, in
/// PostgreSQL's types). Append only.
const STEPS: &[&str] = &[
    // 1: everything up to SQLite's step 5.
    r#"
    CREATE TABLE docs (
        id             BYTEA PRIMARY KEY,
        entity         TEXT NOT NULL,
        village        TEXT,
        heads          BYTEA NOT NULL,
        chunk_count    BIGINT NOT NULL,
        values_json    TEXT NOT NULL DEFAULT '{}',
        conflicts_json TEXT NOT NULL DEFAULT '{}',
        deleted        BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX docs_by_village ON docs (village, id);
    CREATE TABLE chunks (
        record_id BYTEA NOT NULL,
        seq       BIGINT NOT NULL,
        bytes     BYTEA NOT NULL,
        PRIMARY KEY (record_id, seq)
    );
    -- Positions come from feed_head (one row), never from a sequence: see the module doc.
    CREATE TABLE feed_head (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        pos BIGINT NOT NULL
    );
    INSERT INTO feed_head (pos) VALUES (0);
    CREATE TABLE feed (
        seq       BIGINT PRIMARY KEY,
        record_id BYTEA NOT NULL UNIQUE,
        village   TEXT
    );
    CREATE INDEX feed_by_village ON feed (village, seq);
    CREATE TABLE device_heads (
        device    TEXT NOT NULL,
        record_id BYTEA NOT NULL,
        heads     BYTEA NOT NULL,
        PRIMARY KEY (device, record_id)
    );
    CREATE TABLE device_sent (
        device    TEXT NOT NULL,
        record_id BYTEA NOT NULL,
        heads     BYTEA NOT NULL,
        seq       BIGINT NOT NULL,
        PRIMARY KEY (device, record_id)
    );
    CREATE TABLE devices (
        key          TEXT PRIMARY KEY,
        token_hash   BYTEA NOT NULL UNIQUE,
        name         TEXT NOT NULL,
        cadre        TEXT,
        village      TEXT,
        created_ms   BIGINT NOT NULL,
        revoked_ms   BIGINT,
        phone_device TEXT
    );
    CREATE INDEX devices_by_phone ON devices (phone_device);
    CREATE TABLE admin_tokens (
        token_hash BYTEA PRIMARY KEY,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE cadres (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        village    TEXT,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE enrol_codes (
        code_hash  BYTEA PRIMARY KEY,
        cadre_id   TEXT NOT NULL REFERENCES cadres (id),
        expires_ms BIGINT NOT NULL,
        used_ms    BIGINT,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE department_tokens (
        key        TEXT PRIMARY KEY,
        token_hash BYTEA NOT NULL UNIQUE,
        department TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT
    );
    CREATE TABLE task_docs (
        record_id BYTEA PRIMARY KEY,
        task_id   TEXT NOT NULL,
        issuer    TEXT NOT NULL,
        village   TEXT
    );
    CREATE INDEX task_docs_by_task ON task_docs (task_id);
    CREATE INDEX task_docs_by_issuer ON task_docs (issuer, task_id);
    CREATE TABLE typed (
        at_ms     BIGINT NOT NULL,
        record_id BYTEA NOT NULL,
        entity    TEXT NOT NULL,
        village   TEXT,
        field     TEXT NOT NULL,
        device    TEXT NOT NULL
    );
    CREATE INDEX typed_by_time ON typed (at_ms);
    CREATE TABLE actors (
        actor  BYTEA PRIMARY KEY,
        device TEXT NOT NULL
    );
    CREATE TABLE staff (
        login         TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        role          TEXT NOT NULL,
        department    TEXT,
        password_hash TEXT NOT NULL,
        created_ms    BIGINT NOT NULL,
        disabled_ms   BIGINT
    );
    CREATE TABLE staff_sessions (
        id_hash      BYTEA PRIMARY KEY,
        login        TEXT NOT NULL,
        csrf         TEXT NOT NULL,
        created_ms   BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL
    );
    CREATE INDEX staff_sessions_by_login ON staff_sessions (login);
    CREATE TABLE login_attempts (
        at_ms   BIGINT NOT NULL,
        addr    TEXT NOT NULL,
        login   TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX login_attempts_by_login ON login_attempts (login, at_ms);
    CREATE INDEX login_attempts_by_addr ON login_attempts (addr, at_ms);
    CREATE TABLE console_audit (
        seq    BIGSERIAL PRIMARY KEY,
        at_ms  BIGINT NOT NULL,
        login  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        addr   TEXT NOT NULL
    );
    CREATE TABLE quarantine (
        record_id BYTEA PRIMARY KEY,
        village   TEXT,
        reason    TEXT NOT NULL,
        since_ms  BIGINT NOT NULL
    );
"#,
    // 2: when each device last synced; disabled cadres (SQLite's step 6).
    r#"
    ALTER TABLE devices ADD COLUMN last_seen_ms BIGINT;
    ALTER TABLE cadres ADD COLUMN disabled_ms BIGINT;
"#,
    // 3: webhook endpoints with their delivery lease, and the delivery log (SQLite's
    // step 7).
    r#"
    CREATE TABLE webhooks (
        id             TEXT PRIMARY KEY,
        department     TEXT NOT NULL,
        url            TEXT NOT NULL,
        secret         TEXT NOT NULL,
        created_ms     BIGINT NOT NULL,
        cursor         BIGINT NOT NULL DEFAULT 0,
        lease_holder   TEXT,
        lease_until_ms BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE webhook_deliveries (
        id              BIGSERIAL PRIMARY KEY,
        webhook         TEXT NOT NULL,
        first_position  BIGINT NOT NULL,
        last_position   BIGINT NOT NULL,
        records         BIGINT NOT NULL,
        body            TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        BIGINT NOT NULL DEFAULT 0,
        last_error      TEXT,
        created_ms      BIGINT NOT NULL,
        last_attempt_ms BIGINT,
        delivered_ms    BIGINT
    );
    CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, status, id);
"#,
    // 4: attachments' bytes, shared by every process (blobs.rs; SQLite keeps them as
    // files in the data directory).
    r#"
    CREATE TABLE blob_parts (
        hash         TEXT NOT NULL,
        uploader     TEXT NOT NULL,
        offset_bytes BIGINT NOT NULL,
        bytes        BYTEA NOT NULL,
        written_ms   BIGINT NOT NULL,
        PRIMARY KEY (hash, uploader, offset_bytes)
    );
    CREATE INDEX blob_parts_by_uploader ON blob_parts (uploader);
    CREATE TABLE blobs (
        hash       TEXT PRIMARY KEY,
        size       BIGINT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE blob_chunks (
        hash         TEXT NOT NULL REFERENCES blobs (hash),
        offset_bytes BIGINT NOT NULL,
        bytes        BYTEA NOT NULL,
        PRIMARY KEY (hash, offset_bytes)
    );
"#,
    // 5: the typed trail by record (SQLite's step 8): "last changed" of an export page,
    // and a dropped record's rows, without scanning the trail.
    r#"
    CREATE INDEX typed_by_record ON typed (record_id, at_ms);
"#,
];

/// The advisory lock key of migrations ("yibiao" in ASCII).
const MIGRATE_LOCK: i64 = 0x7969_6269_616f;

/// Every storage trait on PostgreSQL, through a pool of connections.
pub struct PostgresStorage {
    pool: r2d2::Pool<PostgresConnectionManager<NoTls>>,
}

pub(crate) fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(format!("postgresql: {e}"))
}

pub(crate) fn id_of(bytes: Vec<u8>) -> Result<RecordId, StorageError> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| err("stored record id is not 16 bytes"))?;
    Ok(RecordId::from_bytes(arr))
}

/// `usize` as a SQL `LIMIT`.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user@host:port/db`), creating and migrating the
    /// schema. The password, if any, is never part of an error.
    pub fn open(url: &str) -> Result<Self, StorageError> {
        let config = postgres::Config::from_str(url)
            .map_err(|e| err(format!("the database address is not valid: {e}")))?;
        Self::open_config(config)
    }

    /// Connects with `config`, creating and migrating the schema. A database that cannot
    /// be reached fails here at once (one direct connection migrates, then the pool
    /// starts).
    pub fn open_config(config: postgres::Config) -> Result<Self, StorageError> {
        let mut first = config
            .connect(NoTls)
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        migrate(&mut first)?;
        drop(first);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        Ok(Self { pool })
    }

    pub(crate) fn conn(&self) -> Result<Conn, StorageError> {
        self.pool.get().map_err(err)
    }
}

/// True when the database at `url` holds yibiao's tables (any version); connects once,
/// migrates nothing.
pub fn is_migrated(url: &str) -> Result<bool, StorageError> {
    let config = postgres::Config::from_str(url)
        .map_err(|e| err(format!("the database address is not valid: {e}")))?;
    let mut c = config
        .connect(NoTls)
        .map_err(|e| err(format!("cannot connect: {e}")))?;
    let row = c
        .query_one("SELECT to_regclass('yibiao_schema') IS NOT NULL", &[])
        .map_err(err)?;
    Ok(row.get(0))
}

/// Runs the missing [`STEPS`] in one transaction, under an advisory lock.
fn migrate(c: &mut postgres::Client) -> Result<(), StorageError> {
    let mut tx = c.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS yibiao_schema (version BIGINT NOT NULL)")
        .map_err(err)?;
    let version: i64 = tx
        .query_opt("SELECT version FROM yibiao_schema", &[])
        .map_err(err)?
        .map_or(0, |r| r.get(0));
    let known = STEPS.len() as i64;
    if version > known {
        return Err(err(format!(
            "the database was written by a newer yibiao-server (version {version}, this build reads up to {known})"
        )));
    }
    for v in version..known {
        tx.batch_execute(STEPS[v as usize]).map_err(err)?;
    }
    tx.execute("DELETE FROM yibiao_schema", &[]).map_err(err)?;
    tx.execute("INSERT INTO yibiao_schema (version) VALUES ($1)", &[&known])
        .map_err(err)?;
    tx.commit().map_err(err)
}

#[cfg(test)]
pub(crate) mod tests;
