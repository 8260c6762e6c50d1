//! What the township admin pages change about a cadre beyond creating one
//! ([`CadreAdminStorage`]): disable, move to another village. Each is one transaction
//! that also revokes the cadre's live devices and ends their unused enrolment codes (the
//! rule is in `accounts::move_cadre`). The column `cadres.disabled_ms` comes
//! with the `device_seen` migration step.

use rusqlite::{Transaction, params};
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, lock};

/// Disabling and moving cadres.
pub trait CadreAdminStorage: Send + Sync {
    /// Disables cadre `id` at `now_ms`, revoking their devices and codes; false when
    /// there is no such cadre.
    fn disable_cadre(&self, id: &str, now_ms: i64) -> Result<bool, StorageError>;
    /// Moves cadre `id` to `village` (`None`: township), revoking their devices and
    /// codes; false when there is no such cadre.
    fn move_cadre(
        &self,
        id: &str,
        village: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StorageError>;
    /// Disabled cadres, with when.
    fn disabled_cadres(&self) -> Result<Vec<(String, i64)>, StorageError>;
}

/// Revokes the cadre's live devices and ends their unused codes.
fn cut_off(tx: &Transaction<'_>, id: &str, now_ms: i64) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE devices SET revoked_ms = ?2 WHERE cadre = ?1 AND revoked_ms IS NULL",
        params![id, now_ms],
    )
    .map_err(err)?;
    tx.execute(
        "UPDATE enrol_codes SET expires_ms = ?2
         WHERE cadre_id = ?1 AND used_ms IS NULL AND expires_ms > ?2",
        params![id, now_ms],
    )
    .map_err(err)?;
    Ok(())
}

impl CadreAdminStorage for SqliteStorage {
    fn disable_cadre(&self, id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        let n = tx
            .execute(
                "UPDATE cadres SET disabled_ms = COALESCE(disabled_ms, ?2) WHERE id = ?1",
                params![id, now_ms],
            )
            .map_err(err)?;
        if n > 0 {
            cut_off(&tx, id, now_ms)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    fn move_cadre(
        &self,
        id: &str,
        village: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        let n = tx
            .execute(
                "UPDATE cadres SET village = ?2 WHERE id = ?1",
                params![id, village],
            )
            .map_err(err)?;
        if n > 0 {
            cut_off(&tx, id, now_ms)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    fn disabled_cadres(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT id, disabled_ms FROM cadres WHERE disabled_ms IS NOT NULL")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}
