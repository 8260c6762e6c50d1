//! What this phone may write, and how a record the server never accepted leaves it.
//!
//! The server refuses a record outside a device's scope at sync; the phone knows its
//! scope from enrolment (`set_scope`) and refuses such a record at once, when the cadre
//! can still fix it. A record the server refused anyway (scope, schema, anything) can
//! be corrected, or discarded if the server never accepted any of it: discarding
//! removes the record and its pending and refused state for good.

use rusqlite::{OptionalExtension, params};
use yibiao_sync::DeviceScope;

use super::{Store, meta_get, meta_set};
use crate::error::{Error, ModelError, Result};
use yibiao_model::ids::RecordId;

/// The meta key holding the enrolled scope: `township` or `village:<key>`.
const SCOPE_KEY: &str = "scope";

impl Store {
    /// Records the scope this phone enrolled for (`None` forgets it). From then on,
    /// `create` refuses records outside it.
    pub fn set_scope(&self, scope: Option<&DeviceScope>) -> Result<()> {
        let inner = self.lock();
        match scope {
            Some(DeviceScope::Township) => meta_set(&inner.conn, SCOPE_KEY, "township"),
            Some(DeviceScope::Village(v)) => {
                meta_set(&inner.conn, SCOPE_KEY, &format!("village:{v}"))
            }
            None => {
                inner
                    .conn
                    .execute("DELETE FROM meta WHERE key = ?1", [SCOPE_KEY])?;
                Ok(())
            }
        }
    }

    /// The scope this phone enrolled for; `None` before enrolment (nothing is refused
    /// locally then; the server still checks).
    pub fn scope(&self) -> Result<Option<DeviceScope>> {
        let inner = self.lock();
        Ok(
            meta_get(&inner.conn, SCOPE_KEY)?.map(|s| match s.strip_prefix("village:") {
                Some(v) => DeviceScope::Village(v.to_owned()),
                None => DeviceScope::Township,
            }),
        )
    }

    /// Refuses a record of `village` (`None`: township level) outside the enrolled scope.
    pub(crate) fn check_scope(&self, village: Option<&str>) -> Result<()> {
        match self.scope()? {
            Some(scope) if !scope.contains(village) => Err(Error::OutOfScope {
                village: village.map(str::to_owned),
                scope,
            }),
            _ => Ok(()),
        }
    }

    /// Removes a record the server never accepted (created here and refused, or never
    /// synced), with its index rows, pending state and refusal, for good. A record the
    /// server holds cannot be discarded (correct it, or delete it: a tombstone).
    pub fn discard(&self, id: RecordId) -> Result<()> {
        let mut inner = self.lock();
        let key = id.to_string();
        let row: Option<(i64, i64, bool)> = inner
            .conn
            .query_row(
                "SELECT local_seq, acked_seq, server_heads IS NOT NULL FROM records WHERE id = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((local_seq, acked_seq, server_holds)) = row else {
            return Err(ModelError::NotFound(id).into());
        };
        if acked_seq > 0 || server_holds || local_seq == 0 {
            return Err(Error::HeldByServer(id));
        }
        let tx = inner.conn.transaction()?;
        for table in ["doc_chunks", "field_values", "sync_refusals"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE record_id = ?1"),
                params![key],
            )?;
        }
        tx.execute("DELETE FROM records WHERE id = ?1", params![key])?;
        tx.commit()?;
        inner.cache.pop(&id);
        Ok(())
    }
}
