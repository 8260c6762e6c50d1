//! # yibiao core
//!
//! The shared Rust library behind every yibiao phone and the sync server. It holds:
//!
//! - [`schema`]: the "one table": a field dictionary where each fact is defined once,
//!   entity types, forms as views over dictionary fields, departments and their views;
//! - [`value`]: typed field values and how they are written in JSON and in documents;
//! - [`record`]: one record = one real thing = one automerge document, with conflicts
//!   kept and shown, and provenance (cadre, device, time) on every change. Pure logic;
//! - [`task`]: tasks as documents delivered by sync, with receipts phones write back;
//! - [`store`]: the durable local SQLite store: documents, a query index and the sync
//!   bookkeeping, written in one transaction per edit.
//!
//! The model, in one paragraph: a cadre enters a fact once, offline. The edit is
//! validated against the dictionary, committed as an automerge change carrying who/where/
//! when, and stored durably with an index row. When two phones edit the same field apart,
//! both values survive the merge; the record lists them until someone resolves the field.
//!
//! ```
//! use std::sync::Arc;
//! use yibiao_core::{CadreId, FieldEdit, Schema, Store, Value, clock::SystemClock};
//!
//! let schema = Arc::new(Schema::baru_example());
//! let store = Store::open_in_memory(schema, CadreId::new("cadre-1")?, Arc::new(SystemClock))?;
//! let id = store.create("household", Some("tujiang"), &[
//!     FieldEdit::Set("household_head".into(), Value::Text("阿木".into())),
//!     FieldEdit::Set("household_size".into(), Value::Integer(5)),
//! ])?;
//! let status = store.form_status(id, "dibao_check")?;
//! assert!(status.missing_required.contains(&"annual_income".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod clock;
pub mod error;
pub mod ids;
pub mod record;
pub mod schema;
pub mod store;
pub mod sync;
pub mod task;
pub mod value;

pub use error::{Error, Result};
pub use ids::{Author, BadId, CadreId, DeviceId, RecordId};
pub use record::{
    Conflict, ConflictValue, FieldEdit, HistoryEntry, HistoryEvent, Provenance, Record, Scope,
};
pub use schema::{Schema, SchemaError, ValidationError, ValidationReason};
pub use store::{FormStatus, Page, Query, RecordSummary, RecordView, Store, StoreConfig};
pub use value::{FieldType, Value};
