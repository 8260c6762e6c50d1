//! The client side of sync bookkeeping: the feed cursor, what to push, and one atomic
//! commit per exchange (acknowledgements, refusals, received documents, new cursor).

use automerge::ChangeHash;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use yibiao_sync::session::{Exchange, Merged, Pending};

use super::{Inner, Store, decode_heads, encode_heads, meta_get, meta_set, pending_rows};
use crate::error::{ModelError, Result};
use yibiao_model::ids::RecordId;
use yibiao_model::messages::{Lang, Message};

/// A document the server refused; the edit stays on the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedDoc {
    /// The record.
    pub id: RecordId,
    /// Machine-readable reason.
    pub code: String,
    /// What to tell the cadre, in English.
    pub message: String,
    /// The reason as a code with parameters, to word in the cadre's language
    /// ([`Message::render`]).
    pub reason: Message,
    /// When the server refused it, ms since the epoch (phone clock).
    pub at_ms: i64,
}

/// A refusal's reason as stored: JSON of the [`Message`], or (written by an older app)
/// the English text, kept as the `detail` of the refusal code (`InvalidValue` →
/// `invalid_value`).
fn stored_reason(code: &str, stored: &str) -> Message {
    serde_json::from_str::<Message>(stored)
        .ok()
        .filter(|m| !m.code.is_empty())
        .unwrap_or_else(|| {
            let mut snake = String::new();
            for (i, c) in code.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            Message::new(snake).with("detail", stored)
        })
}

/// Where this phone syncs and how it proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Base URL of the server, e.g. `https://yibiao.example.gov.cn`.
    pub server_url: String,
    /// The device token the server issued at enrolment.
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Credentials")
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

/// The sync state a status screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// Records with edits the server has not acknowledged (refused ones included).
    pub pending: i64,
    /// Records the server refused.
    pub refused: i64,
    /// Feed cursor.
    pub cursor: u64,
    /// Last sync that finished, ms since the epoch.
    pub last_success_ms: Option<i64>,
    /// Last sync error, if the latest attempt failed.
    pub last_error: Option<String>,
}

impl Store {
    /// The feed position up to which this phone holds everything in its scope.
    pub fn sync_cursor(&self) -> Result<u64> {
        let inner = self.lock();
        Ok(meta_get(&inner.conn, "sync_cursor")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// Records to push: unacknowledged, and not refused at their current write number.
    pub fn pending_for_push(&self, limit: usize) -> Result<Vec<Pending>> {
        let inner = self.lock();
        pending_rows(
            &inner.conn,
            "AND NOT EXISTS (SELECT 1 FROM sync_refusals s
                             WHERE s.record_id = r.id AND s.local_seq >= r.local_seq)",
            limit,
        )
    }

    /// Commits one exchange atomically: a cut after this returns loses nothing, a cut
    /// before it leaves the phone exactly as it was (the server's side is idempotent).
    pub fn apply_exchange(&self, ex: &Exchange<'_>) -> Result<Vec<Merged>> {
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        let Inner { conn, cache, .. } = &mut *inner;
        let result = (|| {
            let tx = conn.transaction()?;
            for (id, seq, heads) in &ex.acked {
                tx.execute(
                    "UPDATE records SET acked_seq = MAX(acked_seq, ?2), server_heads = ?3 WHERE id = ?1",
                    params![id.to_string(), seq, encode_heads(heads)],
                )?;
                tx.execute(
                    "DELETE FROM sync_refusals WHERE record_id = ?1 AND local_seq <= ?2",
                    params![id.to_string(), seq],
                )?;
            }
            for (id, seq, code, reason) in &ex.refused {
                // The reason is kept as JSON in the `message` column; rows written
                // before reasons existed hold the English text (see `refusals`).
                let message = serde_json::to_string(reason).unwrap_or_default();
                tx.execute(
                    "INSERT INTO sync_refusals (record_id, local_seq, code, message, at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (record_id) DO UPDATE SET local_seq = excluded.local_seq,
                        code = excluded.code, message = excluded.message, at_ms = excluded.at_ms",
                    params![id.to_string(), seq, code, message, now],
                )?;
            }
            for id in &ex.reset {
                tx.execute(
                    "UPDATE records SET server_heads = NULL WHERE id = ?1",
                    [id.to_string()],
                )?;
            }
            let mut merged = Vec::with_capacity(ex.docs.len());
            for (id, bytes, server_heads) in &ex.docs {
                merged.push(self.merge_in(&tx, cache, *id, bytes)?);
                // Never claim to share heads we could not apply (a delta whose base is
                // missing is queued by automerge, not applied): then the next push of this
                // record sends the whole document.
                let complete = cache.get(id).is_some_and(|r| {
                    server_heads
                        .iter()
                        .all(|h| r.doc().get_change_meta_by_hash(h).is_some())
                });
                if !complete {
                    tracing::warn!(record = %id, "received changes whose history is missing here");
                }
                tx.execute(
                    "UPDATE records SET server_heads = ?2 WHERE id = ?1",
                    params![id.to_string(), complete.then(|| encode_heads(server_heads))],
                )?;
            }
            meta_set(&tx, "sync_cursor", &ex.cursor.to_string())?;
            tx.commit()?;
            Ok(merged)
        })();
        if result.is_err() {
            for (id, _, _) in &ex.docs {
                cache.pop(id);
            }
        }
        result
    }

    /// Documents the server refused, with the reasons, newest first.
    pub fn refusals(&self) -> Result<Vec<RefusedDoc>> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT record_id, code, message, at_ms FROM sync_refusals ORDER BY at_ms DESC, record_id")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, code, stored, at_ms): (String, String, String, i64) = row?;
            let reason = stored_reason(&code, &stored);
            out.push(RefusedDoc {
                id: id.parse()?,
                code,
                message: reason.render(Lang::En),
                reason,
                at_ms,
            });
        }
        Ok(out)
    }

    /// Remembers how the latest sync ended, for status screens.
    pub fn note_sync_outcome(&self, error: Option<&str>) -> Result<()> {
        let inner = self.lock();
        match error {
            None => {
                meta_set(
                    &inner.conn,
                    "last_success_ms",
                    &self.clock.now_ms().to_string(),
                )?;
                inner
                    .conn
                    .execute("DELETE FROM meta WHERE key = 'last_error'", [])?;
            }
            Some(e) => meta_set(&inner.conn, "last_error", e)?,
        }
        Ok(())
    }

    /// Pending changes, refusals, cursor, last success and last error.
    pub fn sync_status(&self) -> Result<SyncStatus> {
        let inner = self.lock();
        let (pending, refused): (i64, i64) = inner.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM records WHERE local_seq > acked_seq),
                    (SELECT COUNT(*) FROM sync_refusals)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let get = |k: &str| -> Result<Option<String>> { meta_get(&inner.conn, k) };
        Ok(SyncStatus {
            pending,
            refused,
            cursor: get("sync_cursor")?
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            last_success_ms: get("last_success_ms")?.and_then(|s| s.parse().ok()),
            last_error: get("last_error")?,
        })
    }

    /// Remembers the server and this phone's device token (after enrolment).
    pub fn set_credentials(&self, creds: &Credentials) -> Result<()> {
        let inner = self.lock();
        meta_set(&inner.conn, "server_url", &creds.server_url)?;
        meta_set(&inner.conn, "device_token", &creds.token)?;
        Ok(())
    }

    /// The server and device token, once enrolled.
    pub fn credentials(&self) -> Result<Option<Credentials>> {
        let inner = self.lock();
        let url = meta_get(&inner.conn, "server_url")?;
        let token = meta_get(&inner.conn, "device_token")?;
        Ok(match (url, token) {
            (Some(server_url), Some(token)) => Some(Credentials { server_url, token }),
            _ => None,
        })
    }

    /// The heads the server is known to hold for `id` (empty when unknown).
    pub fn server_heads(&self, id: RecordId) -> Result<Vec<ChangeHash>> {
        let inner = self.lock();
        let heads: Option<Option<Vec<u8>>> = inner
            .conn
            .query_row(
                "SELECT server_heads FROM records WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        match heads {
            None => Err(ModelError::NotFound(id).into()),
            Some(h) => Ok(h.as_deref().map(decode_heads).unwrap_or_default()),
        }
    }
}
