//! The test PostgreSQL that `scripts/with-postgres.sh` starts (`YIBIAO_TEST_PG`): whether
//! a test runs, and a fresh schema of its own in the shared database.

/// The test database's address; `None` (the test is skipped, and says so) when
/// `YIBIAO_TEST_PG` is unset outside CI. In CI (`CI` set) a missing database panics: a
/// PostgreSQL test must never pass without running.
#[allow(clippy::panic, reason = "a test helper: failing the test is the point")]
pub fn test_url() -> Option<String> {
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

/// Creates (anew) the schema `name` in the database at `url`; returns the address that
/// selects it (`options=-csearch_path=name`), so tests and server processes sharing one
/// database never see each other's rows.
pub fn fresh_schema(url: &str, name: &str) -> crate::Result<String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    ))?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-csearch_path%3D{name}"))
}
