//! Where the server keeps documents, the change feed, what each device holds, and the
//! device registry. Handlers never see SQL: they go through the hub, which goes through
//! [`yibiao_core::sync::HubStorage`]; a PostgreSQL implementation slots in beside
//! [`sqlite::SqliteStorage`] and must pass the same conformance suite.

pub mod sqlite;

pub use sqlite::{DeviceRow, SqliteStorage};
