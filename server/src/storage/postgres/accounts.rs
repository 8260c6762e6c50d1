//! Accounts, department tokens and the console's staff on PostgreSQL (the same tables
//! and rules as SQLite's `accounts.rs` and `staff.rs`).

use postgres::Row;
use yibiao_sync::hub::StorageError;

use super::super::{
    AccountStorage, AuditRow, CadreRow, DepartmentStorage, DepartmentTokenRow, DeviceRow,
    FailedLogins, Redeem, SessionRow, StaffRow, StaffStorage,
};
use super::{PostgresStorage, err, limit};

const DEVICE_COLUMNS: &str = "key, name, cadre, village, created_ms, revoked_ms, phone_device";
const STAFF_COLUMNS: &str = "login, name, role, department, password_hash, created_ms, disabled_ms";
const DEPT_COLUMNS: &str = "key, department, name, created_ms, revoked_ms";

fn device_row(r: &Row) -> DeviceRow {
    DeviceRow {
        key: r.get(0),
        name: r.get(1),
        cadre: r.get(2),
        village: r.get(3),
        created_ms: r.get(4),
        revoked_ms: r.get(5),
        phone_device: r.get(6),
    }
}

fn cadre_row(r: &Row) -> CadreRow {
    CadreRow {
        id: r.get(0),
        name: r.get(1),
        village: r.get(2),
        created_ms: r.get(3),
    }
}

fn dept_row(r: &Row) -> DepartmentTokenRow {
    DepartmentTokenRow {
        key: r.get(0),
        department: r.get(1),
        name: r.get(2),
        created_ms: r.get(3),
        revoked_ms: r.get(4),
    }
}

fn staff_row(r: &Row) -> StaffRow {
    StaffRow {
        login: r.get(0),
        name: r.get(1),
        role: r.get(2),
        department: r.get(3),
        password_hash: r.get(4),
        created_ms: r.get(5),
        disabled_ms: r.get(6),
    }
}

/// True when `phone` is bound to a live token other than `key`.
fn phone_taken(
    tx: &mut postgres::Transaction<'_>,
    phone: &str,
    key: &str,
) -> Result<bool, StorageError> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM devices
               WHERE phone_device = $1 AND key <> $2 AND revoked_ms IS NULL)",
            &[&phone, &key],
        )
        .map_err(err)?
        .get(0))
}

/// Serialises the phone-binding checks of concurrent transactions (in every process).
const PHONE_LOCK: i64 = 0x7969_6269_0001;

impl PostgresStorage {
    fn exists(
        &self,
        sql: &str,
        arg: &(dyn postgres::types::ToSql + Sync),
    ) -> Result<bool, StorageError> {
        Ok(self.conn()?.query_one(sql, &[arg]).map_err(err)?.get(0))
    }
}

impl AccountStorage for PostgresStorage {
    fn has_admin_token(&self) -> Result<bool, StorageError> {
        Ok(self
            .conn()?
            .query_one("SELECT EXISTS (SELECT 1 FROM admin_tokens)", &[])
            .map_err(err)?
            .get(0))
    }

    fn set_admin_token(&self, hash: &[u8], now_ms: i64) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        tx.execute("DELETE FROM admin_tokens", &[]).map_err(err)?;
        tx.execute(
            "INSERT INTO admin_tokens (token_hash, created_ms) VALUES ($1, $2)",
            &[&hash, &now_ms],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn is_admin_token(&self, hash: &[u8]) -> Result<bool, StorageError> {
        self.exists(
            "SELECT EXISTS (SELECT 1 FROM admin_tokens WHERE token_hash = $1)",
            &hash,
        )
    }

    fn add_cadre(&self, row: &CadreRow) -> Result<bool, StorageError> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO cadres (id, name, village, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&row.id, &row.name, &row.village, &row.created_ms],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    fn cadre(&self, id: &str) -> Result<Option<CadreRow>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT id, name, village, created_ms FROM cadres WHERE id = $1",
                &[&id],
            )
            .map_err(err)?
            .as_ref()
            .map(cadre_row))
    }

    fn cadres(&self) -> Result<Vec<CadreRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT id, name, village, created_ms FROM cadres ORDER BY id",
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(cadre_row).collect())
    }

    fn add_enrol_code(
        &self,
        hash: &[u8],
        cadre: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "INSERT INTO enrol_codes (code_hash, cadre_id, expires_ms, created_ms) VALUES ($1, $2, $3, $4)",
                &[&hash, &cadre, &expires_ms, &now_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn revoke_enrol_codes(&self, cadre: &str, now_ms: i64) -> Result<usize, StorageError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE enrol_codes SET expires_ms = $2
                 WHERE cadre_id = $1 AND used_ms IS NULL AND expires_ms > $2",
                &[&cadre, &now_ms],
            )
            .map_err(err)?;
        Ok(n as usize)
    }

    fn redeem_code(
        &self,
        hash: &[u8],
        now_ms: i64,
        device: &mut dyn FnMut(&CadreRow) -> (DeviceRow, Vec<u8>),
    ) -> Result<Redeem, StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PHONE_LOCK])
            .map_err(err)?;
        // FOR UPDATE: two processes redeeming one code at once, the second waits and
        // then sees it used.
        let Some(found) = tx
            .query_opt(
                "SELECT cadre_id, expires_ms, used_ms FROM enrol_codes WHERE code_hash = $1 FOR UPDATE",
                &[&hash],
            )
            .map_err(err)?
        else {
            return Ok(Redeem::Unknown);
        };
        let (cadre_id, expires_ms, used_ms): (String, i64, Option<i64>) =
            (found.get(0), found.get(1), found.get(2));
        if used_ms.is_some() {
            return Ok(Redeem::Used);
        }
        if expires_ms <= now_ms {
            return Ok(Redeem::Expired);
        }
        let cadre = cadre_row(
            &tx.query_one(
                "SELECT id, name, village, created_ms FROM cadres WHERE id = $1",
                &[&cadre_id],
            )
            .map_err(err)?,
        );
        let (row, token_hash) = device(&cadre);
        if let Some(phone) = &row.phone_device
            && phone_taken(&mut tx, phone, &row.key)?
        {
            return Ok(Redeem::Taken);
        }
        tx.execute(
            "UPDATE enrol_codes SET used_ms = $2 WHERE code_hash = $1",
            &[&hash, &now_ms],
        )
        .map_err(err)?;
        insert_device(&mut tx, &row, &token_hash)?;
        tx.commit().map_err(err)?;
        Ok(Redeem::Enrolled(row))
    }

    fn add_device(&self, row: &DeviceRow, token_hash: &[u8]) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        insert_device(&mut tx, row, token_hash)?;
        tx.commit().map_err(err)
    }

    fn device_by_token_hash(&self, hash: &[u8]) -> Result<Option<DeviceRow>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = $1"),
                &[&hash],
            )
            .map_err(err)?
            .as_ref()
            .map(device_row))
    }

    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_ms, key"),
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(device_row).collect())
    }

    fn revoke_device(&self, key: &str, now_ms: i64) -> Result<bool, StorageError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE devices SET revoked_ms = COALESCE(revoked_ms, $2)
                 WHERE key = $1 OR phone_device = $1",
                &[&key, &now_ms],
            )
            .map_err(err)?;
        Ok(n > 0)
    }

    fn bind_phone_device(&self, key: &str, phone_device: &str) -> Result<bool, StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PHONE_LOCK])
            .map_err(err)?;
        if phone_taken(&mut tx, phone_device, key)? {
            return Ok(false);
        }
        tx.execute(
            "UPDATE devices SET phone_device = $2 WHERE key = $1 AND phone_device IS NULL",
            &[&key, &phone_device],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }
}

fn insert_device(
    tx: &mut postgres::Transaction<'_>,
    row: &DeviceRow,
    token_hash: &[u8],
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO devices (key, token_hash, name, cadre, village, created_ms, phone_device)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &row.key,
            &token_hash,
            &row.name,
            &row.cadre,
            &row.village,
            &row.created_ms,
            &row.phone_device,
        ],
    )
    .map_err(err)?;
    Ok(())
}

impl DepartmentStorage for PostgresStorage {
    fn add_department_token(
        &self,
        row: &DepartmentTokenRow,
        hash: &[u8],
    ) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "INSERT INTO department_tokens (key, token_hash, department, name, created_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&row.key, &hash, &row.department, &row.name, &row.created_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn department_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<DepartmentTokenRow>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                &format!("SELECT {DEPT_COLUMNS} FROM department_tokens WHERE token_hash = $1"),
                &[&hash],
            )
            .map_err(err)?
            .as_ref()
            .map(dept_row))
    }

    fn department_tokens(&self) -> Result<Vec<DepartmentTokenRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {DEPT_COLUMNS} FROM department_tokens ORDER BY created_ms, key"),
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(dept_row).collect())
    }

    fn revoke_department_token(&self, key: &str, now_ms: i64) -> Result<bool, StorageError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE department_tokens SET revoked_ms = COALESCE(revoked_ms, $2) WHERE key = $1",
                &[&key, &now_ms],
            )
            .map_err(err)?;
        Ok(n > 0)
    }
}

impl PostgresStorage {
    /// One update of `login`'s account and the end of its sessions, in one transaction.
    fn update_staff_ending_sessions(
        &self,
        update: &str,
        login: &str,
        value: &(dyn postgres::types::ToSql + Sync),
    ) -> Result<bool, StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(err)?;
        let n = tx.execute(update, &[&login, value]).map_err(err)?;
        tx.execute("DELETE FROM staff_sessions WHERE login = $1", &[&login])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n == 1)
    }

    fn failed_count(
        &self,
        column: &str,
        key: &str,
        since_ms: i64,
    ) -> Result<(u32, Option<i64>), StorageError> {
        let r = self
            .conn()?
            .query_one(
                &format!(
                    "SELECT COUNT(*), MIN(at_ms) FROM login_attempts
                     WHERE {column} = $1 AND at_ms >= $2 AND outcome = 'wrong'"
                ),
                &[&key, &since_ms],
            )
            .map_err(err)?;
        Ok((
            u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
            r.get(1),
        ))
    }
}

impl StaffStorage for PostgresStorage {
    fn add_staff(&self, row: &StaffRow) -> Result<bool, StorageError> {
        let n = self
            .conn()?
            .execute(
                &format!("INSERT INTO staff ({STAFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"),
                &[&row.login, &row.name, &row.role, &row.department, &row.password_hash, &row.created_ms, &row.disabled_ms],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    fn staff(&self, login: &str) -> Result<Option<StaffRow>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                &format!("SELECT {STAFF_COLUMNS} FROM staff WHERE login = $1"),
                &[&login],
            )
            .map_err(err)?
            .as_ref()
            .map(staff_row))
    }

    fn staff_list(&self) -> Result<Vec<StaffRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY login"),
                &[],
            )
            .map_err(err)?;
        Ok(rows.iter().map(staff_row).collect())
    }

    fn has_admin_staff(&self) -> Result<bool, StorageError> {
        Ok(self
            .conn()?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM staff WHERE role = 'admin' AND department IS NULL AND disabled_ms IS NULL)",
                &[],
            )
            .map_err(err)?
            .get(0))
    }

    fn set_staff_password(&self, login: &str, hash: &str) -> Result<bool, StorageError> {
        self.update_staff_ending_sessions(
            "UPDATE staff SET password_hash = $2 WHERE login = $1",
            login,
            &hash,
        )
    }

    fn disable_staff(&self, login: &str, now_ms: i64) -> Result<bool, StorageError> {
        self.update_staff_ending_sessions(
            "UPDATE staff SET disabled_ms = $2 WHERE login = $1 AND disabled_ms IS NULL",
            login,
            &now_ms,
        )
    }

    fn add_session(&self, row: &SessionRow) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "INSERT INTO staff_sessions (id_hash, login, csrf, created_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&row.id_hash, &row.login, &row.csrf, &row.created_ms, &row.last_seen_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>, StorageError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT id_hash, login, csrf, created_ms, last_seen_ms FROM staff_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .map_err(err)?
            .map(|r| SessionRow {
                id_hash: r.get(0),
                login: r.get(1),
                csrf: r.get(2),
                created_ms: r.get(3),
                last_seen_ms: r.get(4),
            }))
    }

    fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "UPDATE staff_sessions SET last_seen_ms = $2 WHERE id_hash = $1",
                &[&id_hash, &now_ms],
            )
            .map_err(err)?;
        Ok(())
    }

    fn end_session(&self, id_hash: &[u8]) -> Result<(), StorageError> {
        self.conn()?
            .execute("DELETE FROM staff_sessions WHERE id_hash = $1", &[&id_hash])
            .map_err(err)?;
        Ok(())
    }

    fn note_login(
        &self,
        at_ms: i64,
        addr: &str,
        login: &str,
        outcome: &str,
    ) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "INSERT INTO login_attempts (at_ms, addr, login, outcome) VALUES ($1, $2, $3, $4)",
                &[&at_ms, &addr, &login, &outcome],
            )
            .map_err(err)?;
        Ok(())
    }

    fn failed_logins(
        &self,
        login: &str,
        addr: &str,
        since_ms: i64,
    ) -> Result<FailedLogins, StorageError> {
        let (login, login_oldest_ms) = self.failed_count("login", login, since_ms)?;
        let (addr, addr_oldest_ms) = self.failed_count("addr", addr, since_ms)?;
        Ok(FailedLogins {
            login,
            login_oldest_ms,
            addr,
            addr_oldest_ms,
        })
    }

    fn clear_failed_logins(&self, login: &str) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "UPDATE login_attempts SET outcome = 'wrong-cleared' WHERE login = $1 AND outcome = 'wrong'",
                &[&login],
            )
            .map_err(err)?;
        Ok(())
    }

    fn audit(&self, row: &AuditRow) -> Result<(), StorageError> {
        self.conn()?
            .execute(
                "INSERT INTO console_audit (at_ms, login, action, target, addr) VALUES ($1, $2, $3, $4, $5)",
                &[&row.at_ms, &row.login, &row.action, &row.target, &row.addr],
            )
            .map_err(err)?;
        Ok(())
    }

    fn audit_log(&self, n: usize) -> Result<Vec<AuditRow>, StorageError> {
        let rows = self
            .conn()?
            .query(
                "SELECT at_ms, login, action, target, addr FROM console_audit ORDER BY seq DESC LIMIT $1",
                &[&limit(n)],
            )
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                at_ms: r.get(0),
                login: r.get(1),
                action: r.get(2),
                target: r.get(3),
                addr: r.get(4),
            })
            .collect())
    }
}
