//! The embedded default: the hub's storage and the device registry in one SQLite file.
//!
//! One writer connection and one reader connection (WAL lets reads run beside the
//! writer). Every `commit` is one transaction with `synchronous=FULL`: an acknowledged
//! page survives kill -9 and power loss.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use automerge::{ActorId, ChangeHash};
use rusqlite::{Connection, OptionalExtension, params};
use yibiao_model::RecordId;
use yibiao_sync::hub::{DeviceScope, FeedEntry, HubBatch, HubStorage, SetAside, StorageError};

/// The database version this build writes (`PRAGMA user_version` after the last step).
pub(crate) fn known_version() -> i64 {
    STEPS.len() as i64
}

const STEPS: &[&str] = &[
    r#"
    CREATE TABLE docs (
        id             BLOB PRIMARY KEY,
        entity         TEXT NOT NULL,
        village        TEXT,
        heads          BLOB NOT NULL,
        chunk_count    INTEGER NOT NULL,
        values_json    TEXT NOT NULL DEFAULT '{}',
        conflicts_json TEXT NOT NULL DEFAULT '{}',
        deleted        INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX docs_by_village ON docs (village, id);
    CREATE TABLE chunks (
        record_id BLOB NOT NULL,
        seq       INTEGER NOT NULL,
        bytes     BLOB NOT NULL,
        PRIMARY KEY (record_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE feed (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id BLOB NOT NULL UNIQUE,
        village   TEXT
    );
    CREATE INDEX feed_by_village ON feed (village, seq);
    CREATE TABLE device_heads (
        device    TEXT NOT NULL,
        record_id BLOB NOT NULL,
        heads     BLOB NOT NULL,
        PRIMARY KEY (device, record_id)
    ) WITHOUT ROWID;
    CREATE TABLE device_sent (
        device    TEXT NOT NULL,
        record_id BLOB NOT NULL,
        heads     BLOB NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (device, record_id)
    ) WITHOUT ROWID;
    CREATE TABLE devices (
        key          TEXT PRIMARY KEY,
        token_hash   BLOB NOT NULL UNIQUE,
        name         TEXT NOT NULL,
        cadre        TEXT,
        village      TEXT,
        created_ms   INTEGER NOT NULL,
        revoked_ms   INTEGER,
        phone_device TEXT
    );
    CREATE TABLE admin_tokens (
        token_hash BLOB PRIMARY KEY,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE cadres (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        village    TEXT,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE enrol_codes (
        code_hash  BLOB PRIMARY KEY,
        cadre_id   TEXT NOT NULL REFERENCES cadres (id),
        expires_ms INTEGER NOT NULL,
        used_ms    INTEGER,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE department_tokens (
        key        TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE,
        department TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
"#,
    r#"
    -- Task documents by task (filled in the same transaction as the document itself).
    CREATE TABLE task_docs (
        record_id BLOB PRIMARY KEY,
        task_id   TEXT NOT NULL,
        issuer    TEXT NOT NULL,
        village   TEXT
    ) WITHOUT ROWID;
    CREATE INDEX task_docs_by_task ON task_docs (task_id);
    CREATE INDEX task_docs_by_issuer ON task_docs (issuer, task_id);
    -- One row per field value typed on a phone (the burden report).
    CREATE TABLE typed (
        at_ms     INTEGER NOT NULL,
        record_id BLOB NOT NULL,
        entity    TEXT NOT NULL,
        village   TEXT,
        field     TEXT NOT NULL,
        device    TEXT NOT NULL
    );
    CREATE INDEX typed_by_time ON typed (at_ms);
"#,
    r#"
    -- Each automerge actor belongs to the one phone (device id) that first pushed a
    -- change by it; no other phone may push changes by that actor.
    CREATE TABLE actors (
        actor  BLOB PRIMARY KEY,
        device TEXT NOT NULL
    ) WITHOUT ROWID;
    -- A phone's device id is bound to at most one live token.
    CREATE INDEX devices_by_phone ON devices (phone_device);
"#,
    super::staff::MIGRATION,
    r#"
    -- Stored records set aside for the operator (do not load, or too large to send):
    -- the one list the hub, /ready, the metric and `yibiao-server quarantine` read.
    -- Deleted with the record (`quarantine drop`).
    CREATE TABLE quarantine (
        record_id BLOB PRIMARY KEY,
        village   TEXT,
        reason    TEXT NOT NULL,
        since_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
"#,
    super::device_seen::MIGRATION,
    super::webhooks::MIGRATION,
    r#"
    -- 8: the typed trail by record: "last changed" of an export page (trail.rs), and a
    -- dropped record's rows, without scanning the trail.
    CREATE INDEX typed_by_record ON typed (record_id, at_ms);
"#,
];

/// A registered device, as listed by the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceRow {
    /// Server-side key.
    pub key: String,
    /// Name given by the operator.
    pub name: String,
    /// Cadre using it.
    pub cadre: Option<String>,
    /// Village scope; `None` for township staff.
    pub village: Option<String>,
    /// Registration time, ms since the epoch.
    pub created_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_ms: Option<i64>,
    /// The phone's own device id, bound at enrolment or first sync.
    pub phone_device: Option<String>,
}

/// Hub storage and device registry on SQLite.
pub struct SqliteStorage {
    pub(crate) writer: Mutex<Connection>,
    pub(crate) reader: Mutex<Connection>,
}

pub(crate) fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

pub(crate) fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| ChangeHash::try_from(c).ok())
        .collect()
}

pub(crate) fn id_of(bytes: Vec<u8>) -> Result<RecordId, StorageError> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| err("stored record id is not 16 bytes"))?;
    Ok(RecordId::from_bytes(arr))
}

impl SqliteStorage {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut writer = Connection::open(path).map_err(err)?;
        writer
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let _: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let known = STEPS.len() as i64;
        if version > known {
            return Err(err(format!(
                "database {} was written by a newer yibiao-server (version {version}, this build reads up to {known})",
                path.display()
            )));
        }
        for v in version..known {
            let tx = writer.transaction().map_err(err)?;
            tx.execute_batch(STEPS[v as usize]).map_err(err)?;
            tx.pragma_update(None, "user_version", v + 1).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        let reader = Connection::open(path).map_err(err)?;
        reader
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        Ok(Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// Registers a device and stores the hash of its token.
    pub fn add_device(&self, row: &DeviceRow, token_hash: &[u8]) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO devices (key, token_hash, name, cadre, village, created_ms, phone_device) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![row.key, token_hash, row.name, row.cadre, row.village, row.created_ms, row.phone_device],
            )
            .map_err(err)?;
        Ok(())
    }

    /// The device holding the token with this hash, unless revoked.
    pub fn device_by_token_hash(&self, hash: &[u8]) -> Result<Option<DeviceRow>, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT key, name, cadre, village, created_ms, revoked_ms, phone_device FROM devices WHERE token_hash = ?1",
                [hash],
                |r| {
                    Ok(DeviceRow {
                        key: r.get(0)?,
                        name: r.get(1)?,
                        cadre: r.get(2)?,
                        village: r.get(3)?,
                        created_ms: r.get(4)?,
                        revoked_ms: r.get(5)?,
                        phone_device: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(err)
    }

    /// Every registered device.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT key, name, cadre, village, created_ms, revoked_ms, phone_device FROM devices ORDER BY created_ms, key")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DeviceRow {
                    key: r.get(0)?,
                    name: r.get(1)?,
                    cadre: r.get(2)?,
                    village: r.get(3)?,
                    created_ms: r.get(4)?,
                    revoked_ms: r.get(5)?,
                    phone_device: r.get(6)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// Revokes a device; returns false when no such device exists.
    pub fn revoke_device(&self, key: &str, now_ms: i64) -> Result<bool, StorageError> {
        let n = lock(&self.writer)
            .execute(
                "UPDATE devices SET revoked_ms = COALESCE(revoked_ms, ?2)
                 WHERE key = ?1 OR phone_device = ?1",
                params![key, now_ms],
            )
            .map_err(err)?;
        Ok(n > 0)
    }

    /// `PRAGMA integrity_check` of the database.
    pub fn integrity_check(&self) -> Result<String, StorageError> {
        lock(&self.reader)
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(err)
    }
}

/// Binds each actor to its phone unless it is bound already (the first binding stays).
fn bind_actors(
    tx: &rusqlite::Transaction<'_>,
    actors: &[(ActorId, String)],
) -> Result<(), StorageError> {
    for (actor, device) in actors {
        tx.execute(
            "INSERT OR IGNORE INTO actors (actor, device) VALUES (?1, ?2)",
            params![actor.to_bytes(), device],
        )
        .map_err(err)?;
    }
    Ok(())
}

impl HubStorage for SqliteStorage {
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached("SELECT bytes FROM chunks WHERE record_id = ?1 ORDER BY seq")
            .map_err(err)?;
        let chunks: Vec<Vec<u8>> = stmt
            .query_map([id.as_bytes().as_slice()], |r| r.get(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        Ok(if chunks.is_empty() {
            None
        } else {
            Some(chunks)
        })
    }

    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        for doc in &batch.docs {
            let id = doc.id.as_bytes().as_slice();
            if doc.snapshot {
                tx.execute("DELETE FROM chunks WHERE record_id = ?1", [id])
                    .map_err(err)?;
            }
            tx.execute(
                "INSERT INTO chunks (record_id, seq, bytes)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chunks WHERE record_id = ?1), ?2)",
                params![id, doc.chunk],
            )
            .map_err(err)?;
            tx.execute(
                "INSERT INTO docs (id, entity, village, heads, chunk_count, values_json, conflicts_json, deleted)
                 VALUES (?1, ?2, ?3, ?4, 1, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET heads = excluded.heads,
                    chunk_count = CASE WHEN ?5 THEN 1 ELSE docs.chunk_count + 1 END,
                    values_json = excluded.values_json, conflicts_json = excluded.conflicts_json,
                    deleted = excluded.deleted",
                params![
                    id,
                    doc.entity,
                    doc.village,
                    encode_heads(&doc.heads),
                    doc.snapshot,
                    doc.values_json,
                    doc.conflicts_json,
                    doc.deleted
                ],
            )
            .map_err(err)?;
            tx.execute("DELETE FROM feed WHERE record_id = ?1", [id])
                .map_err(err)?;
            if doc.entity == yibiao_model::task::TASK_ENTITY {
                tx.execute(
                    // A summary without a readable spec indexes nothing rather than
                    // failing the whole page.
                    "INSERT OR IGNORE INTO task_docs (record_id, task_id, issuer, village)
                     SELECT ?1, json_extract(?2, '$.spec.task'), json_extract(?2, '$.spec.issuer'), ?3
                     WHERE json_extract(?2, '$.spec.task') IS NOT NULL
                       AND json_extract(?2, '$.spec.issuer') IS NOT NULL",
                    params![id, doc.values_json, doc.village],
                )
                .map_err(err)?;
            }
            if !doc.typed.is_empty() {
                let mut typed = tx
                    .prepare_cached(
                        "INSERT INTO typed (at_ms, record_id, entity, village, field, device)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(err)?;
                for (at_ms, field) in &doc.typed {
                    typed
                        .execute(params![
                            at_ms,
                            id,
                            doc.entity,
                            doc.village,
                            field,
                            batch.device
                        ])
                        .map_err(err)?;
                }
            }
            tx.execute(
                "INSERT INTO feed (record_id, village) VALUES (?1, ?2)",
                params![id, doc.village],
            )
            .map_err(err)?;
        }
        tx.execute(
            // A send is confirmed by a cursor past it only while the record still sits at
            // that feed position: if it moved, the page that carried it may have been
            // lost and a later page passed the old position without it.
            "INSERT OR REPLACE INTO device_heads (device, record_id, heads)
             SELECT s.device, s.record_id, s.heads FROM device_sent s
             JOIN feed f ON f.record_id = s.record_id AND f.seq = s.seq
             WHERE s.device = ?1 AND s.seq <= ?2",
            params![batch.device, batch.confirm_upto as i64],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM device_sent WHERE device = ?1 AND seq <= ?2",
            params![batch.device, batch.confirm_upto as i64],
        )
        .map_err(err)?;
        for (id, heads) in &batch.device_heads {
            tx.execute(
                "INSERT OR REPLACE INTO device_heads (device, record_id, heads) VALUES (?1, ?2, ?3)",
                params![batch.device, id.as_bytes().as_slice(), encode_heads(heads)],
            )
            .map_err(err)?;
        }
        bind_actors(&tx, &batch.actors)?;
        tx.commit().map_err(err)
    }

    fn feed_after(
        &self,
        scope: &DeviceScope,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        let conn = lock(&self.reader);
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?));
        let rows: Vec<(i64, Vec<u8>)> = match scope {
            DeviceScope::Township => {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, record_id FROM feed WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(err)?;
                stmt.query_map(params![cursor, limit], map)
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            DeviceScope::Village(v) => {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, record_id FROM feed WHERE village = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    )
                    .map_err(err)?;
                stmt.query_map(params![v, cursor, limit], map)
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
        };
        rows.into_iter()
            .map(|(seq, id)| {
                Ok(FeedEntry {
                    seq: seq as u64,
                    id: id_of(id)?,
                })
            })
            .collect()
    }

    fn device_heads(
        &self,
        device: &str,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, Vec<ChangeHash>>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached("SELECT heads FROM device_heads WHERE device = ?1 AND record_id = ?2")
            .map_err(err)?;
        let mut out = HashMap::new();
        for id in ids {
            let heads: Option<Vec<u8>> = stmt
                .query_row(params![device, id.as_bytes().as_slice()], |r| r.get(0))
                .optional()
                .map_err(err)?;
            if let Some(h) = heads {
                out.insert(*id, decode_heads(&h));
            }
        }
        Ok(out)
    }

    fn note_sent(
        &self,
        device: &str,
        sent: &[(RecordId, Vec<ChangeHash>, u64)],
    ) -> Result<(), StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        for (id, heads, seq) in sent {
            tx.execute(
                "INSERT OR REPLACE INTO device_sent (device, record_id, heads, seq) VALUES (?1, ?2, ?3, ?4)",
                params![device, id.as_bytes().as_slice(), encode_heads(heads), *seq as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn record_count(&self) -> Result<u64, StorageError> {
        lock(&self.reader)
            .query_row("SELECT COUNT(*) FROM docs", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(err)
    }

    fn actor_devices(&self, actors: &[ActorId]) -> Result<HashMap<ActorId, String>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare_cached("SELECT device FROM actors WHERE actor = ?1")
            .map_err(err)?;
        let mut out = HashMap::new();
        for actor in actors {
            let device: Option<String> = stmt
                .query_row([actor.to_bytes()], |r| r.get(0))
                .optional()
                .map_err(err)?;
            if let Some(d) = device {
                out.insert(actor.clone(), d);
            }
        }
        Ok(out)
    }

    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError> {
        self.set_aside(id, reason, now_ms)
    }

    fn quarantined(&self) -> Result<Vec<SetAside>, StorageError> {
        self.set_aside_list()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_storage_passes_every_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = std::sync::atomic::AtomicUsize::new(0);
        super::super::conformance::run_all(|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            super::SqliteStorage::open(&dir.path().join(format!("hub-{i}.db"))).expect("open")
        });
    }
}
