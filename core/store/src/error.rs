//! The phone store's error: the model's errors, plus what SQLite and the file can do.
//!
//! Boundaries (FFI, CLI) convert [`Error`] into their own few variants in one place each.
//! Messages are lowercase, name the thing at fault and never contain SQL.

pub use yibiao_model::Error as ModelError;
use yibiao_model::ids::BadId;
use yibiao_model::schema::ValidationError;

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the phone store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal of the model: bad value, unknown entity, missing record...
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The store's own bookkeeping is damaged.
    #[error("the local store is damaged: {0}")]
    CorruptStore(String),
    /// The store file was written by a newer yibiao.
    #[error(
        "the store was written by a newer yibiao (store version {found}, this build reads up to {supported}); update the app"
    )]
    StoreTooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A record outside the scope this phone enrolled for: the server would refuse it.
    #[error("{}", out_of_scope(village.as_deref(), scope))]
    OutOfScope {
        /// The record's village (`None`: township level).
        village: Option<String>,
        /// The phone's scope.
        scope: yibiao_sync::DeviceScope,
    },
    /// Discarding a record the server holds (or one received from it): only what the
    /// server never accepted can be discarded.
    #[error(
        "record {0} is held by the server; correct it, or delete it (a tombstone every phone sees)"
    )]
    HeldByServer(yibiao_model::ids::RecordId),
    /// An attachment's file could not be written, read or fetched.
    #[error("attachment: {0}")]
    Blob(String),
    /// The underlying SQLite database failed.
    #[error("local database error: {0}")]
    Storage(#[from] rusqlite::Error),
}

fn out_of_scope(village: Option<&str>, scope: &yibiao_sync::DeviceScope) -> String {
    let target = match village {
        Some(v) => format!("village `{v}`"),
        None => "the township level (no village)".to_owned(),
    };
    match scope {
        yibiao_sync::DeviceScope::Village(mine) => format!(
            "this phone is enrolled for village `{mine}`; it cannot write a record of {target}"
        ),
        yibiao_sync::DeviceScope::Township => {
            format!("this phone cannot write a record of {target}")
        }
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::Model(e.into())
    }
}

impl From<BadId> for Error {
    fn from(e: BadId) -> Self {
        Error::Model(e.into())
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Model(e.into())
    }
}
