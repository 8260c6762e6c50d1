//! The PostgreSQL backend against the conformance suites and the feed property, on the
//! real PostgreSQL that `scripts/with-postgres.sh` starts (`YIBIAO_TEST_PG`).
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::PostgresStorage;

/// The test database's address; `None` (the test is skipped, and says so) when
/// `YIBIAO_TEST_PG` is unset outside CI. In CI (`CI` set) a missing database fails the
/// test: it must never pass without running.
pub(crate) fn test_url() -> Option<String> {
    match std::env::var("YIBIAO_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("YIBIAO_TEST_PG is not set in CI: run the tests under scripts/with-postgres.sh")
        }
        _ => {
            eprintln!("skipped: YIBIAO_TEST_PG is not set (run under scripts/with-postgres.sh)");
            None
        }
    }
}

static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty storage in a schema of its own (`search_path`), so tests share one
/// database without seeing each other's rows.
pub(crate) fn fresh(url: &str) -> PostgresStorage {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        SCHEMAS.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .unwrap();
    let mut config = postgres::Config::from_str(url).unwrap();
    config.options(&format!("-c search_path={name}"));
    PostgresStorage::open_config(config).unwrap()
}

#[test]
fn postgres_storage_passes_every_conformance_suite() {
    let Some(url) = test_url() else { return };
    crate::storage::conformance::run_all(|| fresh(&url));
}

#[test]
fn a_second_open_finds_the_schema_migrated_and_keeps_rows() {
    let Some(url) = test_url() else { return };
    use crate::storage::AccountStorage;
    let s = fresh(&url);
    s.set_admin_token(b"x", 1).unwrap();
    let schema: String = s
        .conn()
        .unwrap()
        .query_one("SELECT current_schema()", &[])
        .unwrap()
        .get(0);
    let mut config = postgres::Config::from_str(&url).unwrap();
    config.options(&format!("-c search_path={schema}"));
    let again = PostgresStorage::open_config(config).unwrap();
    assert!(
        again.is_admin_token(b"x").unwrap(),
        "reopening migrated nothing away"
    );
}
