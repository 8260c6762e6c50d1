//! Numbered migrations of the local store, tracked in `PRAGMA user_version`.
//!
//! Each step runs in its own transaction; a store written by any older build opens by
//! running the missing steps in order. A store from a *newer* build is refused with
//! [`Error::StoreTooNew`] rather than misread. Never edit a released step: add one.

use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};

/// The steps, in order; step `i` brings the store to version `i + 1`.
const STEPS: &[&str] = &[
    // 1: records, their automerge chunks and the query index.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE records (
        id          TEXT PRIMARY KEY,
        entity      TEXT NOT NULL,
        township    TEXT NOT NULL,
        village     TEXT,
        deleted     INTEGER NOT NULL DEFAULT 0,
        conflicted  INTEGER NOT NULL DEFAULT 0,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        heads       BLOB NOT NULL,
        chunk_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX records_by_entity_village ON records (entity, village, id);
    CREATE INDEX records_by_village ON records (village, id);
    CREATE TABLE doc_chunks (
        record_id TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        snapshot  INTEGER NOT NULL,
        bytes     BLOB NOT NULL,
        PRIMARY KEY (record_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE field_values (
        record_id  TEXT NOT NULL,
        field      TEXT NOT NULL,
        value      TEXT NOT NULL,
        search     TEXT,
        conflicted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (record_id, field)
    ) WITHOUT ROWID;
    CREATE INDEX field_values_by_value ON field_values (field, value);
    "#,
    // 2: what the server has not acknowledged yet. Records that existed before this
    // step were never synced, so they start out pending (local_seq 1 > acked_seq 0).
    r#"
    ALTER TABLE records ADD COLUMN local_seq INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE records ADD COLUMN acked_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN server_heads BLOB;
    CREATE INDEX records_pending ON records (local_seq, acked_seq) WHERE local_seq > acked_seq;
    INSERT OR IGNORE INTO meta (key, value)
        SELECT 'write_seq', CAST(COUNT(*) AS TEXT) FROM records;
    "#,
];

/// The store version this build writes.
pub const STORE_VERSION: i64 = STEPS.len() as i64;

/// Brings the database to [`STORE_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, STORE_VERSION)
}

/// Brings the database to `target` (tests use it to build old stores).
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > STORE_VERSION {
        return Err(Error::StoreTooNew {
            found,
            supported: STORE_VERSION,
        });
    }
    for version in found..target.min(STORE_VERSION) {
        let tx = conn.transaction()?;
        step(&tx, version)?;
        tx.commit()?;
        tracing::info!(from = version, to = version + 1, "migrated local store");
    }
    Ok(())
}

fn step(tx: &Transaction<'_>, from: i64) -> Result<()> {
    let sql = STEPS
        .get(usize::try_from(from).unwrap_or(usize::MAX))
        .copied()
        .unwrap_or("");
    tx.execute_batch(sql)?;
    tx.pragma_update(None, "user_version", from + 1)?;
    Ok(())
}
