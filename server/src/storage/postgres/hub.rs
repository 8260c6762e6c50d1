//! [`HubStorage`] on PostgreSQL: documents, the feed, what each device holds.

use std::collections::HashMap;

use automerge::{ActorId, ChangeHash};
use yibiao_model::RecordId;
use yibiao_sync::hub::{
    DeviceScope, DocWrite, FeedEntry, HubBatch, HubStorage, SetAside, StorageError,
};

use super::{PostgresStorage, err, id_of, limit};

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| ChangeHash::try_from(c).ok())
        .collect()
}

/// The task and issuer of a task document's summary, when it has a readable spec.
fn task_spec(values_json: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(values_json).ok()?;
    let spec = v.get("spec")?;
    Some((
        spec.get("task")?.as_str()?.to_owned(),
        spec.get("issuer")?.as_str()?.to_owned(),
    ))
}

/// Writes one document's chunk, summary, task index and typed values (not its feed row).
fn write_doc(
    tx: &mut postgres::Transaction<'_>,
    device: &str,
    doc: &DocWrite,
) -> Result<(), StorageError> {
    let id = doc.id.as_bytes().as_slice();
    if doc.snapshot {
        tx.execute("DELETE FROM chunks WHERE record_id = $1", &[&id])
            .map_err(err)?;
    }
    tx.execute(
        "INSERT INTO chunks (record_id, seq, bytes)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chunks WHERE record_id = $1), $2)",
        &[&id, &doc.chunk],
    )
    .map_err(err)?;
    tx.execute(
        "INSERT INTO docs (id, entity, village, heads, chunk_count, values_json, conflicts_json, deleted)
         VALUES ($1, $2, $3, $4, 1, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET heads = excluded.heads,
            chunk_count = CASE WHEN $5 THEN 1 ELSE docs.chunk_count + 1 END,
            values_json = excluded.values_json, conflicts_json = excluded.conflicts_json,
            deleted = excluded.deleted",
        &[
            &id,
            &doc.entity,
            &doc.village,
            &encode_heads(&doc.heads),
            &doc.snapshot,
            &doc.values_json,
            &doc.conflicts_json,
            &doc.deleted,
        ],
    )
    .map_err(err)?;
    if doc.entity == yibiao_model::task::TASK_ENTITY
        && let Some((task, issuer)) = task_spec(&doc.values_json)
    {
        tx.execute(
            "INSERT INTO task_docs (record_id, task_id, issuer, village) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&id, &task, &issuer, &doc.village],
        )
        .map_err(err)?;
    }
    for (at_ms, field) in &doc.typed {
        tx.execute(
            "INSERT INTO typed (at_ms, record_id, entity, village, field, device)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[at_ms, &id, &doc.entity, &doc.village, field, &device],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// Gives each document of the batch its new feed position. Called last in the
/// transaction: the `feed_head` row lock taken here is held until commit, which hands
/// positions out in commit order (see the module doc of `postgres`).
pub(super) fn assign_positions(
    tx: &mut postgres::Transaction<'_>,
    docs: &[(RecordId, Option<String>)],
) -> Result<Vec<i64>, StorageError> {
    let mut out = Vec::with_capacity(docs.len());
    for (id, village) in docs {
        let id = id.as_bytes().as_slice();
        tx.execute("DELETE FROM feed WHERE record_id = $1", &[&id])
            .map_err(err)?;
        let pos: i64 = tx
            .query_one("UPDATE feed_head SET pos = pos + 1 RETURNING pos", &[])
            .map_err(err)?
            .get(0);
        tx.execute(
            "INSERT INTO feed (seq, record_id, village) VALUES ($1, $2, $3)",
            &[&pos, &id, village],
        )
        .map_err(err)?;
        out.push(pos);
    }
    Ok(out)
}

/// Takes each merged record's lock (a transaction-scoped advisory lock, in id order so two
/// processes never wait on each other in a cycle) and refuses the batch as stale when a
/// record's stored heads are not the ones the hub merged onto: another process wrote it.
fn check_bases(tx: &mut postgres::Transaction<'_>, batch: &HubBatch) -> Result<(), StorageError> {
    let mut bases: Vec<&(RecordId, Vec<ChangeHash>)> = batch.base_heads.iter().collect();
    bases.sort_by_key(|(id, _)| *id);
    for (id, base) in bases {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&record_lock(*id)])
            .map_err(err)?;
        let stored: Option<Vec<u8>> = tx
            .query_opt(
                "SELECT heads FROM docs WHERE id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .map_err(err)?
            .map(|r| r.get(0));
        let current = match stored {
            None => base.is_empty(),
            Some(h) => {
                let mut stored = decode_heads(&h);
                let mut base = base.clone();
                stored.sort();
                base.sort();
                !base.is_empty() && stored == base
            }
        };
        if !current {
            return Err(StorageError::stale(*id));
        }
    }
    Ok(())
}

/// The advisory lock key of a record: its first 8 bytes.
fn record_lock(id: RecordId) -> i64 {
    let b = id.as_bytes();
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn confirm_and_hold(
    tx: &mut postgres::Transaction<'_>,
    batch: &HubBatch,
) -> Result<(), StorageError> {
    let upto = i64::try_from(batch.confirm_upto).unwrap_or(i64::MAX);
    // A send is confirmed by a cursor past it only while the record still sits at that
    // feed position (as on SQLite).
    tx.execute(
        "INSERT INTO device_heads (device, record_id, heads)
         SELECT s.device, s.record_id, s.heads FROM device_sent s
         JOIN feed f ON f.record_id = s.record_id AND f.seq = s.seq
         WHERE s.device = $1 AND s.seq <= $2
         ON CONFLICT (device, record_id) DO UPDATE SET heads = excluded.heads",
        &[&batch.device, &upto],
    )
    .map_err(err)?;
    tx.execute(
        "DELETE FROM device_sent WHERE device = $1 AND seq <= $2",
        &[&batch.device, &upto],
    )
    .map_err(err)?;
    for (id, heads) in &batch.device_heads {
        tx.execute(
            "INSERT INTO device_heads (device, record_id, heads) VALUES ($1, $2, $3)
             ON CONFLICT (device, record_id) DO UPDATE SET heads = excluded.heads",
            &[
                &batch.device,
                &id.as_bytes().as_slice(),
                &encode_heads(heads),
            ],
        )
        .map_err(err)?;
    }
    for (actor, device) in &batch.actors {
        tx.execute(
            "INSERT INTO actors (actor, device) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&actor.to_bytes(), device],
        )
        .map_err(err)?;
    }
    Ok(())
}

impl HubStorage for PostgresStorage {
    fn load(&self, id: RecordId) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        let chunks: Vec<Vec<u8>> = self
            .conn()?
            .query(
                "SELECT bytes FROM chunks WHERE record_id = $1 ORDER BY seq",
                &[&id.as_bytes().as_slice()],
            )
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((!chunks.is_empty()).then_some(chunks))
    }

    fn commit(&self, batch: &HubBatch) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        check_bases(&mut tx, batch)?;
        for doc in &batch.docs {
            write_doc(&mut tx, &batch.device, doc)?;
        }
        let moved: Vec<(RecordId, Option<String>)> = batch
            .docs
            .iter()
            .map(|d| (d.id, d.village.clone()))
            .collect();
        assign_positions(&mut tx, &moved)?;
        confirm_and_hold(&mut tx, batch)?;
        tx.commit().map_err(err)
    }

    fn feed_after(
        &self,
        scope: &DeviceScope,
        cursor: u64,
        n: usize,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        let mut c = self.conn()?;
        let rows = match scope {
            DeviceScope::Township => c.query(
                "SELECT seq, record_id FROM feed WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&cursor, &limit(n)],
            ),
            DeviceScope::Village(v) => c.query(
                "SELECT seq, record_id FROM feed WHERE village = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[v, &cursor, &limit(n)],
            ),
        }
        .map_err(err)?;
        rows.into_iter()
            .map(|r| {
                Ok(FeedEntry {
                    seq: r.get::<_, i64>(0) as u64,
                    id: id_of(r.get(1))?,
                })
            })
            .collect()
    }

    fn device_heads(
        &self,
        device: &str,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, Vec<ChangeHash>>, StorageError> {
        let keys: Vec<&[u8]> = ids.iter().map(|i| i.as_bytes().as_slice()).collect();
        let rows = self
            .conn()?
            .query(
                "SELECT record_id, heads FROM device_heads WHERE device = $1 AND record_id = ANY($2)",
                &[&device, &keys],
            )
            .map_err(err)?;
        rows.into_iter()
            .map(|r| Ok((id_of(r.get(0))?, decode_heads(r.get(1)))))
            .collect()
    }

    fn note_sent(
        &self,
        device: &str,
        sent: &[(RecordId, Vec<ChangeHash>, u64)],
    ) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        for (id, heads, seq) in sent {
            tx.execute(
                "INSERT INTO device_sent (device, record_id, heads, seq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device, record_id) DO UPDATE SET heads = excluded.heads, seq = excluded.seq",
                &[&device, &id.as_bytes().as_slice(), &encode_heads(heads), &(*seq as i64)],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn record_count(&self) -> Result<u64, StorageError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT COUNT(*) FROM docs", &[])
            .map_err(err)?
            .get(0);
        Ok(n as u64)
    }

    fn actor_devices(&self, actors: &[ActorId]) -> Result<HashMap<ActorId, String>, StorageError> {
        let keys: Vec<Vec<u8>> = actors
            .iter()
            .map(ActorId::to_bytes)
            .map(<[u8]>::to_vec)
            .collect();
        let rows = self
            .conn()?
            .query(
                "SELECT actor, device FROM actors WHERE actor = ANY($1)",
                &[&keys],
            )
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|r| (ActorId::from(r.get::<_, Vec<u8>>(0)), r.get(1)))
            .collect())
    }

    fn quarantine(
        &self,
        id: RecordId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<SetAside>, StorageError> {
        let mut c = self.conn()?;
        let key = id.as_bytes().as_slice();
        c.execute(
            "INSERT INTO quarantine (record_id, village, reason, since_ms)
             SELECT id, village, $2, $3 FROM docs WHERE id = $1 ON CONFLICT DO NOTHING",
            &[&key, &reason, &now_ms],
        )
        .map_err(err)?;
        Ok(c.query_opt(
            "SELECT village, reason, since_ms FROM quarantine WHERE record_id = $1",
            &[&key],
        )
        .map_err(err)?
        .map(|r| SetAside {
            id,
            village: r.get(0),
            reason: r.get(1),
            since_ms: r.get(2),
        }))
    }

    fn shared(&self) -> bool {
        true
    }

    fn stored_heads(&self, id: RecordId) -> Result<Option<Vec<ChangeHash>>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT heads FROM docs WHERE id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .map_err(err)?
            .map(|r| decode_heads(r.get(0))))
    }

    fn quarantined(&self) -> Result<Vec<SetAside>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT record_id, village, reason, since_ms FROM quarantine ORDER BY record_id",
                &[],
            )
            .map_err(err)?;
        rows.into_iter()
            .map(|r| {
                Ok(SetAside {
                    id: id_of(r.get(0))?,
                    village: r.get(1),
                    reason: r.get(2),
                    since_ms: r.get(3),
                })
            })
            .collect()
    }
}
