//! The operator's quarantine commands on PostgreSQL: the primitives of
//! [`QuarantineStorage`] (the judgement of what cannot be served is the trait's own).

use yibiao_model::RecordId;
use yibiao_sync::hub::StorageError;

use super::{PostgresStorage, err, id_of};
use crate::storage::{QuarantineStorage, QuarantinedRecord};

impl QuarantineStorage for PostgresStorage {
    fn listed_records(&self) -> Result<Vec<QuarantinedRecord>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT q.record_id, d.entity, q.village, q.reason,
                        (SELECT count(*) FROM chunks c WHERE c.record_id = q.record_id),
                        (SELECT coalesce(sum(length(c.bytes)), 0)::BIGINT FROM chunks c
                          WHERE c.record_id = q.record_id)
                 FROM quarantine q JOIN docs d ON d.id = q.record_id
                 ORDER BY q.record_id",
                &[],
            )
            .map_err(err)?;
        rows.into_iter()
            .map(|r| {
                Ok(QuarantinedRecord {
                    id: id_of(r.get(0))?,
                    entity: r.get(1),
                    village: r.get(2),
                    reason: r.get(3),
                    chunks: usize::try_from(r.get::<_, i64>(4)).unwrap_or(0),
                    bytes: usize::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                })
            })
            .collect()
    }

    fn record_ids(&self) -> Result<Vec<RecordId>, StorageError> {
        self.conn()?
            .query("SELECT id FROM docs ORDER BY id", &[])
            .map_err(err)?
            .into_iter()
            .map(|r| id_of(r.get(0)))
            .collect()
    }

    fn record_place(&self, id: RecordId) -> Result<Option<(String, Option<String>)>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT entity, village FROM docs WHERE id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .map_err(err)?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn unlist(&self, id: RecordId) -> Result<bool, StorageError> {
        let n = self
            .conn()?
            .execute(
                "DELETE FROM quarantine WHERE record_id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .map_err(err)?;
        Ok(n > 0)
    }

    fn drop_record(&self, id: RecordId) -> Result<bool, StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        let key = id.as_bytes().as_slice();
        let n = tx
            .execute("DELETE FROM docs WHERE id = $1", &[&key])
            .map_err(err)?;
        for sql in [
            "DELETE FROM chunks WHERE record_id = $1",
            "DELETE FROM feed WHERE record_id = $1",
            "DELETE FROM device_heads WHERE record_id = $1",
            "DELETE FROM device_sent WHERE record_id = $1",
            "DELETE FROM typed WHERE record_id = $1",
            "DELETE FROM task_docs WHERE record_id = $1",
            "DELETE FROM quarantine WHERE record_id = $1",
        ] {
            tx.execute(sql, &[&key]).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }
}
