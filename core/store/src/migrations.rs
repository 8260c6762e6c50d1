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
    CREATE INDEX records_by_entity ON records (entity, id);
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
    // 3: documents the server refused, kept with the reason until edited again.
    r#"
    CREATE TABLE sync_refusals (
        record_id TEXT PRIMARY KEY,
        local_seq INTEGER NOT NULL,
        code      TEXT NOT NULL,
        message   TEXT NOT NULL,
        at_ms     INTEGER NOT NULL
    ) WITHOUT ROWID;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::Arc;

    use rusqlite::params;

    use super::*;
    use crate::Store;
    use yibiao_model::ids::{Author, CadreId, DeviceId, RecordId};
    use yibiao_model::record::{FieldEdit, Record, Scope};
    use yibiao_model::schema::Schema;
    use yibiao_model::value::Value;

    /// Writes a store exactly as a version-1 build did: tables of step 1 only.
    fn write_v1_store(path: &std::path::Path) -> RecordId {
        let mut conn = Connection::open(path).unwrap();
        migrate_to(&mut conn, 1).unwrap();
        let id = RecordId::new();
        let author = Author {
            cadre: CadreId::new("old-cadre").unwrap(),
            device: DeviceId::new("old-device").unwrap(),
        };
        let scope = Scope {
            township: "baru".into(),
            village: Some("tujiang".into()),
        };
        let edits = [FieldEdit::Set(
            "household_head".into(),
            Value::Text("老户主".into()),
        )];
        let record = Record::create(
            id,
            automerge::ActorId::random(),
            "household",
            &scope,
            &edits,
            &author,
            5,
        )
        .unwrap();
        conn.execute(
            "INSERT INTO records (id, entity, township, village, created_ms, updated_ms, heads, chunk_count)
             VALUES (?1, 'household', 'baru', 'tujiang', 5, 5, x'', 1)",
            [id.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO doc_chunks (record_id, seq, snapshot, bytes) VALUES (?1, 1, 1, ?2)",
            params![id.to_string(), record.save()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO field_values (record_id, field, value, search) VALUES (?1, 'household_head', '\"老户主\"', '老户主')",
            [id.to_string()],
        )
        .unwrap();
        id
    }

    #[test]
    fn a_version_1_store_opens_and_its_records_become_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let id = write_v1_store(&path);
        let store = Store::open(
            &path,
            Arc::new(Schema::baru_example()),
            CadreId::new("new").unwrap(),
        )
        .unwrap();
        let view = store.get(id).unwrap();
        assert_eq!(
            view.value("household_head"),
            Some(&serde_json::json!("老户主"))
        );
        // Never synced under v1, so the server still needs it.
        assert_eq!(store.pending(10).unwrap().len(), 1);
        // New writes get write numbers above the migrated ones.
        store.set(id, "household_size", Value::Integer(3)).unwrap();
        let p = store.pending(10).unwrap();
        assert_eq!(p[0].local_seq, 2);
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, STORE_VERSION);
    }

    #[test]
    fn a_store_from_a_newer_build_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(
            &path,
            Arc::new(Schema::baru_example()),
            CadreId::new("c").unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the store was written by a newer yibiao (store version 99, this build reads up to {STORE_VERSION}); update the app"
            )
        );
    }
}
