//! `yibiao-server migrate --to postgres://...`: copies every table of a SQLite data
//! directory into an empty PostgreSQL database in one transaction, feed positions
//! included (phones and departments keep their cursors), then verifies each table by
//! row count and an order-independent checksum read back from both sides.

use std::path::Path;

use postgres::types::{ToSql, Type};
use rusqlite::types::Value;
use sha2::{Digest, Sha256};
use yibiao_sync::hub::StorageError;

use super::{PostgresStorage, err};

/// The tables copied, parents first (`enrol_codes` refers to `cadres`).
pub const TABLES: &[&str] = &[
    "docs",
    "chunks",
    "feed",
    "device_heads",
    "device_sent",
    "devices",
    "admin_tokens",
    "cadres",
    "enrol_codes",
    "department_tokens",
    "task_docs",
    "typed",
    "actors",
    "staff",
    "staff_sessions",
    "login_attempts",
    "console_audit",
    "quarantine",
    "webhooks",
    "webhook_deliveries",
];

/// What was copied of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table.
    pub table: &'static str,
    /// Rows in SQLite and, read back, in PostgreSQL.
    pub rows: (u64, u64),
    /// Checksums of both sides (hex, order-independent).
    pub checksums: (String, String),
}

/// A value as both sides hash it.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0),
        Value::Integer(i) => {
            out.push(1);
            out.extend(i.to_be_bytes());
        }
        Value::Real(f) => {
            out.push(2);
            out.extend(f.to_be_bytes());
        }
        Value::Text(t) => {
            out.push(3);
            out.extend((t.len() as u64).to_be_bytes());
            out.extend(t.as_bytes());
        }
        Value::Blob(b) => {
            out.push(4);
            out.extend((b.len() as u64).to_be_bytes());
            out.extend(b);
        }
    }
}

/// Order-independent checksum of rows: the wrapping sum of each row's SHA-256 prefix.
#[derive(Default)]
struct Sum(u128, u64);

impl Sum {
    fn add(&mut self, row: &[Value]) {
        let mut bytes = Vec::new();
        for v in row {
            canonical(v, &mut bytes);
        }
        let h = Sha256::digest(&bytes);
        let mut first = [0u8; 16];
        first.copy_from_slice(&h[..16]);
        self.0 = self.0.wrapping_add(u128::from_be_bytes(first));
        self.1 += 1;
    }
}

/// A SQLite value bound as the PostgreSQL column type `ty` wants.
fn bind(v: Value, ty: &Type) -> Result<Box<dyn ToSql + Sync>, StorageError> {
    Ok(match (v, ty) {
        (Value::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
        (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (Value::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
        (Value::Null, _) => Box::new(None::<String>),
        (Value::Integer(i), t) if *t == Type::BOOL => Box::new(i != 0),
        (Value::Integer(i), _) => Box::new(i),
        (Value::Text(s), t) if *t == Type::BYTEA => Box::new(s.into_bytes()),
        (Value::Text(s), _) => Box::new(s),
        (Value::Blob(b), _) => Box::new(b),
        (Value::Real(_), _) => return Err(err("a real number where none is stored")),
    })
}

/// A PostgreSQL value read back as SQLite would hold it.
fn read_back(row: &postgres::Row, i: usize) -> Value {
    let ty = row.columns()[i].type_();
    let opt = if *ty == Type::BOOL {
        row.get::<_, Option<bool>>(i)
            .map(|b| Value::Integer(i64::from(b)))
    } else if *ty == Type::INT8 {
        row.get::<_, Option<i64>>(i).map(Value::Integer)
    } else if *ty == Type::BYTEA {
        row.get::<_, Option<Vec<u8>>>(i).map(Value::Blob)
    } else {
        row.get::<_, Option<String>>(i).map(Value::Text)
    };
    opt.unwrap_or(Value::Null)
}

fn sqlite_err(e: rusqlite::Error) -> StorageError {
    err(format!("sqlite: {e}"))
}

/// Copies the SQLite database at `source` into `target`, which must hold no data.
pub fn copy_from_sqlite(
    source: &Path,
    target: &PostgresStorage,
) -> Result<Vec<Copied>, StorageError> {
    let src =
        rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_err)?;
    let mut c = target.conn()?;
    let mut tx = c.transaction().map_err(err)?;
    for table in TABLES {
        let n: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .map_err(err)?
            .get(0);
        if n > 0 {
            return Err(err(format!(
                "the target database is not empty (table {table} holds {n} rows); migrate into a new database"
            )));
        }
    }
    // One snapshot of the source for the whole copy, even while a server writes it.
    src.execute_batch("BEGIN").map_err(sqlite_err)?;
    let mut sums = Vec::new();
    for table in TABLES {
        let mut stmt = src
            .prepare(&format!("SELECT * FROM {table}"))
            .map_err(sqlite_err)?;
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                (1..=names.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .map_err(err)?;
        let types = insert.params().to_vec();
        let mut sum = Sum::default();
        let mut rows = stmt.query([]).map_err(sqlite_err)?;
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            let values: Vec<Value> = (0..names.len())
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<_, _>>()
                .map_err(sqlite_err)?;
            sum.add(&values);
            let args = values
                .into_iter()
                .zip(&types)
                .map(|(v, t)| bind(v, t))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
            tx.execute(&insert, &refs).map_err(err)?;
        }
        sums.push((*table, names, sum));
    }
    // Positions go on after the largest ever handed out (SQLite's AUTOINCREMENT never
    // reuses one, even of a deleted row), so no cursor is ever passed again.
    let last: i64 = src
        .query_row(
            "SELECT MAX(n) FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM feed
             UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'feed')",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_err)?;
    src.execute_batch("COMMIT").map_err(sqlite_err)?;
    tx.execute("UPDATE feed_head SET pos = $1", &[&last])
        .map_err(err)?;
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('console_audit', 'seq'), GREATEST((SELECT MAX(seq) FROM console_audit), 1))",
        &[],
    )
    .map_err(err)?;
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), GREATEST((SELECT MAX(id) FROM webhook_deliveries), 1))",
        &[],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    verify(&mut c, sums)
}

/// Reads every table back from PostgreSQL and compares counts and checksums.
fn verify(
    c: &mut postgres::Client,
    sums: Vec<(&'static str, Vec<String>, Sum)>,
) -> Result<Vec<Copied>, StorageError> {
    let mut out = Vec::new();
    for (table, names, source) in sums {
        let rows = c
            .query(&format!("SELECT {} FROM {table}", names.join(", ")), &[])
            .map_err(err)?;
        let mut back = Sum::default();
        for row in &rows {
            let values: Vec<Value> = (0..names.len()).map(|i| read_back(row, i)).collect();
            back.add(&values);
        }
        let copied = Copied {
            table,
            rows: (source.1, back.1),
            checksums: (format!("{:032x}", source.0), format!("{:032x}", back.0)),
        };
        if copied.rows.0 != copied.rows.1 || copied.checksums.0 != copied.checksums.1 {
            return Err(err(format!(
                "table {table} differs after the copy: {} rows, checksum {} in SQLite; {} rows, checksum {} in PostgreSQL",
                copied.rows.0, copied.checksums.0, copied.rows.1, copied.checksums.1
            )));
        }
        out.push(copied);
    }
    Ok(out)
}
