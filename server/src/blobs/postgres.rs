//! [`BlobStore`] on PostgreSQL (ADR 0013): attachments' bytes in the database, so that
//! several server processes share them: a phone's upload may send chunk 1 to one process and chunk 2 to another after a
//! cut, and a department may download from a third. A data directory's `blobs/` is one
//! machine's; the database is what every process already shares (and what the county
//! backs up).
//!
//! Layout (migration 4): `blob_parts` holds each uploader's partial upload as one row per
//! acknowledged chunk (an append never rewrites what is already held, so a 2 MB photo
//! costs 2 MB of writes, not the square of its chunk count); `blobs` names the complete,
//! verified blobs and `blob_chunks` holds their bytes in order. The chunk that completes
//! an upload hashes the parts and, in the same transaction, moves them into `blob_chunks`
//! (or, on a mismatch, deletes them), so a reader never sees a half-moved blob.
//!
//! Concurrency: a transaction-scoped advisory lock on (blob, uploader) serialises one
//! uploader's appends across processes, so a duplicated request racing its original
//! through two processes cannot both land at one offset. Two uploaders completing the
//! same blob at once both insert into `blobs` with `ON CONFLICT DO NOTHING`: the second
//! waits for the first's commit, finds the row, and only drops its parts.

use sha2::{Digest, Sha256};

use super::{BlobEntry, BlobError, BlobHash, BlobStore, Held};
use crate::storage::PostgresStorage;
use crate::storage::postgres::err;

fn fail(e: impl std::fmt::Display) -> BlobError {
    BlobError::Io(err(e).0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn as_i64(n: u64) -> Result<i64, BlobError> {
    i64::try_from(n).map_err(|_| BlobError::Io(format!("size {n} is out of range")))
}

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The complete blob's size, if it is held.
fn complete_size(
    c: &mut impl postgres::GenericClient,
    hash: &BlobHash,
) -> Result<Option<u64>, BlobError> {
    Ok(
        c.query_opt("SELECT size FROM blobs WHERE hash = $1", &[&hash.as_str()])
            .map_err(fail)?
            .map(|r| as_u64(r.get(0))),
    )
}

/// Bytes of `uploader`'s partial upload of `hash`.
fn partial_held(
    c: &mut impl postgres::GenericClient,
    hash: &BlobHash,
    uploader: &str,
) -> Result<u64, BlobError> {
    let row = c
        .query_one(
            "SELECT COALESCE(SUM(length(bytes)), 0)::BIGINT FROM blob_parts \
             WHERE hash = $1 AND uploader = $2",
            &[&hash.as_str(), &uploader],
        )
        .map_err(fail)?;
    Ok(as_u64(row.get(0)))
}

impl BlobStore for PostgresStorage {
    fn held(&self, hash: &BlobHash, uploader: &str) -> Result<Held, BlobError> {
        let mut c = self.conn().map_err(|e| BlobError::Io(e.0))?;
        if let Some(size) = complete_size(&mut *c, hash)? {
            return Ok(Held::Complete { size });
        }
        Ok(Held::Partial {
            held: partial_held(&mut *c, hash, uploader)?,
        })
    }

    fn append(
        &self,
        hash: &BlobHash,
        uploader: &str,
        offset: u64,
        size: u64,
        chunk: &[u8],
    ) -> Result<Held, BlobError> {
        let mut c = self.conn().map_err(|e| BlobError::Io(e.0))?;
        let mut tx = c.transaction().map_err(fail)?;
        let key = format!("{hash}/{uploader}");
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .map_err(fail)?;
        if let Some(size) = complete_size(&mut tx, hash)? {
            return Ok(Held::Complete { size });
        }
        let held = partial_held(&mut tx, hash, uploader)?;
        let end = super::chunk_end(offset, held, chunk.len(), size)?;
        tx.execute(
            "INSERT INTO blob_parts (hash, uploader, offset_bytes, bytes, written_ms) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &hash.as_str(),
                &uploader,
                &as_i64(offset)?,
                &chunk,
                &now_ms(),
            ],
        )
        .map_err(fail)?;
        if end < size {
            tx.commit().map_err(fail)?;
            return Ok(Held::Partial { held: end });
        }
        let mut hasher = Sha256::new();
        for row in tx
            .query(
                "SELECT bytes FROM blob_parts WHERE hash = $1 AND uploader = $2 \
                 ORDER BY offset_bytes",
                &[&hash.as_str(), &uploader],
            )
            .map_err(fail)?
        {
            hasher.update(row.get::<_, &[u8]>(0));
        }
        let matches = hex::encode(hasher.finalize()) == hash.as_str();
        if matches {
            let inserted = tx
                .execute(
                    "INSERT INTO blobs (hash, size, created_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (hash) DO NOTHING",
                    &[&hash.as_str(), &as_i64(size)?, &now_ms()],
                )
                .map_err(fail)?;
            if inserted == 1 {
                tx.execute(
                    "INSERT INTO blob_chunks (hash, offset_bytes, bytes) \
                     SELECT hash, offset_bytes, bytes FROM blob_parts \
                     WHERE hash = $1 AND uploader = $2",
                    &[&hash.as_str(), &uploader],
                )
                .map_err(fail)?;
            }
        }
        tx.execute(
            "DELETE FROM blob_parts WHERE hash = $1 AND uploader = $2",
            &[&hash.as_str(), &uploader],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        if matches {
            Ok(Held::Complete { size })
        } else {
            Err(BlobError::HashMismatch(hash.clone()))
        }
    }

    fn read(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, BlobError> {
        let mut c = self.conn().map_err(|e| BlobError::Io(e.0))?;
        // One snapshot, so a blob removed between the two reads is not half returned.
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(fail)?;
        let Some(size) = complete_size(&mut tx, hash)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for row in tx
            .query(
                "SELECT bytes FROM blob_chunks WHERE hash = $1 ORDER BY offset_bytes",
                &[&hash.as_str()],
            )
            .map_err(fail)?
        {
            out.extend_from_slice(row.get::<_, &[u8]>(0));
        }
        tx.commit().map_err(fail)?;
        if out.len() as u64 != size {
            return Err(BlobError::Io(format!(
                "blob {hash} holds {} bytes, its row says {size}",
                out.len()
            )));
        }
        Ok(Some(out))
    }

    fn partials_of(&self, uploader: &str) -> Result<usize, BlobError> {
        let mut c = self.conn().map_err(|e| BlobError::Io(e.0))?;
        let row = c
            .query_one(
                "SELECT COUNT(DISTINCT hash) FROM blob_parts WHERE uploader = $1",
                &[&uploader],
            )
            .map_err(fail)?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX))
    }

    fn list(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let mut c = self.conn().map_err(|e| BlobError::Io(e.0))?;
        let rows = c
            .query(
                "SELECT hash, NULL::TEXT, size, created_ms FROM blobs \
                 UNION ALL \
                 SELECT hash, uploader, SUM(length(bytes))::BIGINT, MAX(written_ms) \
                 FROM blob_parts GROUP BY hash, uploader",
                &[],
            )
            .map_err(fail)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Ok(hash) = BlobHash::parse(row.get::<_, &str>(0)) else {
                continue;
            };
            out.push(BlobEntry {
                hash,
                uploader: row.get(1),
                bytes: as_u64(row.get(2)),
                modified_ms: row.get(3),
            });
        }
        out.sort_by(|a, b| (&a.hash, &a.uploader).cmp(&(&b.hash, &b.uploader)));
        Ok(out)
    }

    fn remove(&self, entry: &BlobEntry) -> Result<bool, BlobError> {
        let mut c = self.conn().map_err(|e| BlobError::Io(e.0))?;
        let hash = entry.hash.as_str();
        let removed = match &entry.uploader {
            None => {
                let mut tx = c.transaction().map_err(fail)?;
                tx.execute("DELETE FROM blob_chunks WHERE hash = $1", &[&hash])
                    .map_err(fail)?;
                let n = tx
                    .execute("DELETE FROM blobs WHERE hash = $1", &[&hash])
                    .map_err(fail)?;
                tx.commit().map_err(fail)?;
                n
            }
            Some(up) => c
                .execute(
                    "DELETE FROM blob_parts WHERE hash = $1 AND uploader = $2",
                    &[&hash, up],
                )
                .map_err(fail)?,
        };
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::postgres::tests::{fresh, test_url};

    #[test]
    fn postgres_blob_store_passes_the_blob_conformance_suite() {
        let Some(url) = test_url() else { return };
        super::super::conformance::run_all(&fresh(&url));
    }
}
