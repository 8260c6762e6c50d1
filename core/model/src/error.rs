//! The model's error type: rich inside, each variant carrying what a caller needs to act.
//!
//! Boundaries (HTTP, FFI, CLI) convert [`Error`] into their own few variants in one
//! place each. Messages are lowercase, name the thing at fault and never contain SQL.

use crate::ids::{BadId, RecordId};
use crate::schema::ValidationError;

/// Result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the model (no storage, no network).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value refused by the field dictionary. Nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An id given from outside is malformed.
    #[error(transparent)]
    BadId(#[from] BadId),
    /// The entity type is not in the schema.
    #[error("unknown entity type `{0}`")]
    UnknownEntity(String),
    /// The village is not in the schema.
    #[error("unknown village `{0}`")]
    UnknownVillage(String),
    /// The form is not in the schema.
    #[error("unknown form `{0}`")]
    UnknownForm(String),
    /// A form was asked of a record of another entity type.
    #[error("form `{form}` is for `{form_entity}` records, but this record is a `{record_entity}`")]
    FormEntityMismatch {
        /// The form.
        form: String,
        /// The entity the form is for.
        form_entity: String,
        /// The record's entity.
        record_entity: String,
    },
    /// No record with this id in the store.
    #[error("record {0} not found")]
    NotFound(RecordId),
    /// The record is deleted; restore it before editing.
    #[error("record {0} is deleted; restore it before editing")]
    Deleted(RecordId),
    /// `resolve` was asked for a field that has no conflict.
    #[error("field `{field}` of record {record} has no conflict to resolve")]
    NoConflict {
        /// The record.
        record: RecordId,
        /// The field.
        field: String,
    },
    /// A query that cannot run as asked.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// A stored or received document is not a yibiao record.
    #[error("record {record} is damaged: {problem}")]
    Corrupt {
        /// The record.
        record: RecordId,
        /// What is wrong.
        problem: String,
    },
    /// A task operation that cannot be done as asked (not a task, bad receipt...).
    #[error("{0}")]
    Task(String),
    /// A finding operation that cannot be done as asked (not a finding, bad step...).
    #[error("{0}")]
    Finding(String),
    /// Refused for a reason with a code (who may take a finding step, a category the
    /// schema does not know, a text too long...): boundaries word it in their user's
    /// language from the code and parameters; `Display` is English, for logs.
    #[error("{}", .0.render(crate::messages::Lang::En))]
    Refused(crate::messages::Message),
    /// Automerge refused an operation or a document.
    #[error("document error: {0}")]
    Document(#[from] automerge::AutomergeError),
}
