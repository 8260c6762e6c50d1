//! # yibiao model
//!
//! The bottom layer of yibiao: what a fact, a record and a task *are*, with no SQLite and
//! no network. Every other crate builds on it; it depends on none of them.
//!
//! - [`schema`]: the "one table": a field dictionary where each fact is defined once,
//!   entity types, forms as views over dictionary fields, departments and their views;
//! - [`value`]: typed field values, how they are written in JSON and in documents, and
//!   why a value is refused;
//! - [`record`]: one record = one real thing = one automerge document, with conflicts
//!   kept and shown, and provenance (cadre, device, time) on every change;
//! - [`task`]: tasks as documents delivered by sync, with receipts phones write back;
//! - [`finding`]: inspection findings as documents whose append-only log of steps
//!   (hand over, resolve, accept, send back, hold to account) folds into one status;
//! - [`ids`], [`clock`]: checked identifiers and injected time (UTC+8 calendar days).
//!
//! The model, in one paragraph: a cadre enters a fact once, offline. The edit is
//! validated against the dictionary, committed as an automerge change carrying who/where/
//! when. When two phones edit the same field apart, both values survive the merge; the
//! record lists them until someone resolves the field.

pub mod clock;
pub mod error;
pub mod finding;
pub mod formats;
pub mod ids;
pub mod messages;
pub mod record;
pub mod schema;
pub mod task;
pub mod value;

pub use error::{Error, Result};
pub use ids::{Author, BadId, CadreId, DeviceId, RecordId};
pub use record::{
    Conflict, ConflictValue, FieldEdit, HistoryEntry, HistoryEvent, InvalidValue, Provenance,
    Record, Scope,
};
pub use schema::{SCHEMA_FORMAT, Schema, SchemaError, ValidationError, ValidationReason};
pub use value::{FieldType, Value};
