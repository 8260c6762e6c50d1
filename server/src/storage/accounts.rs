//! Accounts on SQLite: the admin token, cadres, one-time enrolment codes, department
//! tokens. Every secret is stored as a SHA-256 hash only.

use rusqlite::{OptionalExtension, params};
use yibiao_sync::hub::StorageError;

use super::sqlite::{SqliteStorage, err, lock};
use super::{CadreRow, DepartmentTokenRow, DeviceRow, Redeem};

/// A `cadres` row (id, name, village, created_ms) as a [`CadreRow`].
fn cadre_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CadreRow> {
    Ok(CadreRow {
        id: r.get(0)?,
        name: r.get(1)?,
        village: r.get(2)?,
        created_ms: r.get(3)?,
    })
}

/// True when `phone` is bound to a live token other than `key`. A revoked token frees
/// the id: the same phone enrols again with a new code.
fn phone_taken(
    tx: &rusqlite::Transaction<'_>,
    phone: &str,
    key: &str,
) -> Result<bool, StorageError> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM devices
           WHERE phone_device = ?1 AND key <> ?2 AND revoked_ms IS NULL)",
        params![phone, key],
        |r| r.get(0),
    )
    .map_err(err)
}

impl SqliteStorage {
    /// True once an admin token exists.
    pub fn has_admin_token(&self) -> Result<bool, StorageError> {
        lock(&self.reader)
            .query_row("SELECT EXISTS (SELECT 1 FROM admin_tokens)", [], |r| {
                r.get(0)
            })
            .map_err(err)
    }

    /// Replaces every admin token by this one (rotation).
    pub fn set_admin_token(&self, hash: &[u8], now_ms: i64) -> Result<(), StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM admin_tokens", []).map_err(err)?;
        tx.execute(
            "INSERT INTO admin_tokens (token_hash, created_ms) VALUES (?1, ?2)",
            params![hash, now_ms],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// True when `hash` is the admin token's.
    pub fn is_admin_token(&self, hash: &[u8]) -> Result<bool, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM admin_tokens WHERE token_hash = ?1)",
                [hash],
                |r| r.get(0),
            )
            .map_err(err)
    }

    /// Adds a cadre; `Ok(false)` when the id is taken.
    pub fn add_cadre(&self, row: &CadreRow) -> Result<bool, StorageError> {
        let n = lock(&self.writer)
            .execute(
                "INSERT OR IGNORE INTO cadres (id, name, village, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![row.id, row.name, row.village, row.created_ms],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    /// One cadre.
    pub fn cadre(&self, id: &str) -> Result<Option<CadreRow>, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT id, name, village, created_ms FROM cadres WHERE id = ?1",
                [id],
                cadre_row,
            )
            .optional()
            .map_err(err)
    }

    /// Every cadre.
    pub fn cadres(&self) -> Result<Vec<CadreRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT id, name, village, created_ms FROM cadres ORDER BY id")
            .map_err(err)?;
        let rows = stmt.query_map([], cadre_row).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// Stores an enrolment code's hash for `cadre`, valid until `expires_ms`.
    pub fn add_enrol_code(
        &self,
        hash: &[u8],
        cadre: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO enrol_codes (code_hash, cadre_id, expires_ms, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![hash, cadre, expires_ms, now_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    /// Ends every unused, unexpired enrolment code of `cadre` now (they answer "expired");
    /// returns how many.
    pub fn revoke_enrol_codes(&self, cadre: &str, now_ms: i64) -> Result<usize, StorageError> {
        lock(&self.writer)
            .execute(
                "UPDATE enrol_codes SET expires_ms = ?2
                 WHERE cadre_id = ?1 AND used_ms IS NULL AND expires_ms > ?2",
                params![cadre, now_ms],
            )
            .map_err(err)
    }

    /// Redeems a code and registers the device in one transaction: a code works once.
    pub fn redeem_code(
        &self,
        hash: &[u8],
        now_ms: i64,
        device: &mut dyn FnMut(&CadreRow) -> (DeviceRow, Vec<u8>),
    ) -> Result<Redeem, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        let found: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT cadre_id, expires_ms, used_ms FROM enrol_codes WHERE code_hash = ?1",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(err)?;
        let Some((cadre_id, expires_ms, used_ms)) = found else {
            return Ok(Redeem::Unknown);
        };
        if used_ms.is_some() {
            return Ok(Redeem::Used);
        }
        if expires_ms <= now_ms {
            return Ok(Redeem::Expired);
        }
        let cadre = tx
            .query_row(
                "SELECT id, name, village, created_ms FROM cadres WHERE id = ?1",
                [&cadre_id],
                cadre_row,
            )
            .map_err(err)?;
        let (row, token_hash) = device(&cadre);
        if let Some(phone) = &row.phone_device
            && phone_taken(&tx, phone, &row.key)?
        {
            // The code stays unused: the phone may try again once the operator sorts it out.
            return Ok(Redeem::Taken);
        }
        tx.execute(
            "UPDATE enrol_codes SET used_ms = ?2 WHERE code_hash = ?1",
            params![hash, now_ms],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO devices (key, token_hash, name, cadre, village, created_ms, phone_device)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.key,
                token_hash,
                row.name,
                row.cadre,
                row.village,
                row.created_ms,
                row.phone_device
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Redeem::Enrolled(row))
    }

    /// Binds a device token to the phone's own device id (first sync of a CLI-made token).
    /// False when the id is already bound to another live token (nothing changes).
    pub fn bind_phone_device(&self, key: &str, phone_device: &str) -> Result<bool, StorageError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(err)?;
        if phone_taken(&tx, phone_device, key)? {
            return Ok(false);
        }
        tx.execute(
            "UPDATE devices SET phone_device = ?2 WHERE key = ?1 AND phone_device IS NULL",
            params![key, phone_device],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }

    /// Adds a department token.
    pub fn add_department_token(
        &self,
        row: &DepartmentTokenRow,
        hash: &[u8],
    ) -> Result<(), StorageError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO department_tokens (key, token_hash, department, name, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.key, hash, row.department, row.name, row.created_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    /// The department token with this hash, revoked or not.
    pub fn department_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<DepartmentTokenRow>, StorageError> {
        lock(&self.reader)
            .query_row(
                "SELECT key, department, name, created_ms, revoked_ms FROM department_tokens WHERE token_hash = ?1",
                [hash],
                |r| {
                    Ok(DepartmentTokenRow {
                        key: r.get(0)?,
                        department: r.get(1)?,
                        name: r.get(2)?,
                        created_ms: r.get(3)?,
                        revoked_ms: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(err)
    }

    /// Every department token (without secrets).
    pub fn department_tokens(&self) -> Result<Vec<DepartmentTokenRow>, StorageError> {
        let conn = lock(&self.reader);
        let mut stmt = conn
            .prepare("SELECT key, department, name, created_ms, revoked_ms FROM department_tokens ORDER BY created_ms, key")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DepartmentTokenRow {
                    key: r.get(0)?,
                    department: r.get(1)?,
                    name: r.get(2)?,
                    created_ms: r.get(3)?,
                    revoked_ms: r.get(4)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    /// Revokes a department token; false when unknown.
    pub fn revoke_department_token(&self, key: &str, now_ms: i64) -> Result<bool, StorageError> {
        let n = lock(&self.writer)
            .execute(
                "UPDATE department_tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE key = ?1",
                params![key, now_ms],
            )
            .map_err(err)?;
        Ok(n > 0)
    }
}
