//! The one error an app sees, converted from every core error in one place.
//!
//! The core's errors are rich (see `yibiao_store::Error`); an app needs a few cases it can
//! act on: show the field in red ([`YibiaoError::InvalidValue`]), offer to enrol
//! ([`YibiaoError::NotEnrolled`]), say "no signal, saved on the phone"
//! ([`YibiaoError::Network`]). Every variant's `detail` is a sentence a cadre can read.
//!
//! No panic crosses the FFI: uniffi's scaffolding already wraps every call in
//! `catch_unwind` (a panic would surface as its generic `InternalException` /
//! `InternalError`), and [`guard`] catches first so the app gets
//! [`YibiaoError::Internal`], the same type as every other failure. This holds as long
//! as the library is built with `panic = "unwind"` (the default; never set `abort`).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use yibiao_model::messages::{Lang, Message};

use yibiao_model::{Error as ModelError, SchemaError};
use yibiao_store::Error as CoreError;
use yibiao_store::SyncError;
use yibiao_store::http::EnrolError;
use yibiao_sync::TransportError;

/// Why a call failed. `detail` is always a sentence to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum YibiaoError {
    /// A value refused by the field dictionary; nothing was written. Highlight `field`.
    /// `code` and `params` say why as data (see `docs/messages.md`), so an app can word
    /// its own message; `detail` is the store's own wording in its language
    /// (`set_language`, Chinese by default).
    #[error("{detail}")]
    InvalidValue {
        /// The field key, e.g. `household_size`.
        field: String,
        /// Stable machine code, e.g. `wrong_type`, `not_an_option`, `bad_id_number`.
        code: String,
        /// Parameters: `field`, `field_zh`, `field_en`, and the code's own (`expected`,
        /// `got`, `allowed_zh`, `allowed_en`, `min`, `max`, `scale`, `problem`, ...).
        params: HashMap<String, String>,
        /// What is wrong, e.g. "「家庭人口数」应填整数，填的是 "三"".
        detail: String,
    },
    /// A name or id the schema or store does not know (entity, village, form, malformed
    /// record id, bad query, a field with no conflict to resolve, a broken schema file),
    /// or a task operation that cannot be done (cancelled task, note too long).
    #[error("{detail}")]
    InvalidInput {
        /// What is wrong.
        detail: String,
    },
    /// Refused for a reason given as data: another village's finding, a finding step
    /// this phone's role may not take or that was not handed to its village, a category
    /// the schema does not know, a note too long. Nothing was written. `code` and
    /// `params` say why (see `docs/messages.md`); `detail` is worded in the store's
    /// language (`set_language`, Chinese by default).
    #[error("{detail}")]
    Refused {
        /// Stable machine code, e.g. `finding_forbidden`, `unknown_category`.
        code: String,
        /// Parameters of the code (`role`, `step`, `why`, `got`, `allowed_zh`, ...).
        params: HashMap<String, String>,
        /// What is wrong, in the store's language.
        detail: String,
    },
    /// No record with this id on the phone.
    #[error("{detail}")]
    NotFound {
        /// The record id asked for.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// The record is deleted; restore it before editing.
    #[error("{detail}")]
    RecordDeleted {
        /// The record id.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// The phone has no server credentials yet: enrol it (or `set_credentials`).
    #[error("{detail}")]
    NotEnrolled {
        /// What to do.
        detail: String,
    },
    /// The server refused the enrolment code (unknown, expired or already used).
    #[error("{detail}")]
    EnrolmentRefused {
        /// The server's reason.
        detail: String,
    },
    /// The server could not be reached (after retries). Everything is kept on the phone;
    /// sync again when there is signal.
    #[error("{detail}")]
    Network {
        /// What failed.
        detail: String,
    },
    /// The server answered but refused (revoked token: enrol again; 426: update the app).
    #[error("{detail}")]
    ServerRefused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        detail: String,
    },
    /// The phone's own database failed or is damaged, or was written by a newer app.
    #[error("{detail}")]
    Storage {
        /// What failed.
        detail: String,
    },
    /// A bug: a panic or an impossible state was caught at the boundary.
    #[error("{detail}")]
    Internal {
        /// What happened.
        detail: String,
    },
}

impl From<CoreError> for YibiaoError {
    fn from(e: CoreError) -> Self {
        let detail = e.to_string();
        let out = match e {
            CoreError::Model(m) => return m.into(),
            CoreError::OutOfScope { .. } | CoreError::HeldByServer(_) => {
                Self::InvalidInput { detail }
            }
            CoreError::CorruptStore(_)
            | CoreError::StoreTooNew { .. }
            | CoreError::Storage(_)
            | CoreError::Blob(_) => Self::Storage { detail },
        };
        out.logged()
    }
}

impl From<ModelError> for YibiaoError {
    fn from(e: ModelError) -> Self {
        let detail = e.to_string();
        let out = match e {
            ModelError::Invalid(v) => {
                let m = v.message();
                Self::InvalidValue {
                    field: v.field,
                    detail: m.render(Lang::default()),
                    code: m.code,
                    params: m.params.into_iter().collect(),
                }
            }
            ModelError::Refused(m) => Self::Refused {
                detail: m.render(Lang::default()),
                code: m.code,
                params: m.params.into_iter().collect(),
            },
            ModelError::BadId(_)
            | ModelError::UnknownEntity(_)
            | ModelError::UnknownVillage(_)
            | ModelError::UnknownForm(_)
            | ModelError::FormEntityMismatch { .. }
            | ModelError::NoConflict { .. }
            | ModelError::BadQuery(_)
            | ModelError::Task(_)
            | ModelError::Finding(_) => Self::InvalidInput { detail },
            ModelError::NotFound(id) => Self::NotFound {
                id: id.to_string(),
                detail,
            },
            ModelError::Deleted(id) => Self::RecordDeleted {
                id: id.to_string(),
                detail,
            },
            ModelError::Corrupt { .. } | ModelError::Document(_) => Self::Storage { detail },
        };
        out.logged()
    }
}

impl From<yibiao_model::BadId> for YibiaoError {
    fn from(e: yibiao_model::BadId) -> Self {
        ModelError::BadId(e).into()
    }
}

impl From<yibiao_model::ValidationError> for YibiaoError {
    fn from(e: yibiao_model::ValidationError) -> Self {
        ModelError::Invalid(e).into()
    }
}

impl From<SchemaError> for YibiaoError {
    fn from(e: SchemaError) -> Self {
        Self::InvalidInput {
            detail: format!("the schema cannot be used: {e}"),
        }
        .logged()
    }
}

fn from_transport(e: TransportError, detail: String) -> YibiaoError {
    match e {
        TransportError::Status { status, .. } => YibiaoError::ServerRefused { status, detail },
        TransportError::Network(_) | TransportError::Timeout => YibiaoError::Network { detail },
    }
}

impl From<SyncError> for YibiaoError {
    fn from(e: SyncError) -> Self {
        let detail = e.to_string();
        let out = match e {
            SyncError::Unreachable { .. } => Self::Network { detail },
            SyncError::Refused(t) => from_transport(t, detail),
            // An answer that is not ours (a captive portal, a proxy's page): try again later.
            SyncError::Protocol(_) => Self::Network {
                detail: format!("the server's answer could not be read: {detail}"),
            },
            SyncError::Store(e) => return e.into(),
        };
        out.logged()
    }
}

impl From<EnrolError> for YibiaoError {
    fn from(e: EnrolError) -> Self {
        let detail = e.to_string();
        let out = match e {
            EnrolError::BadCode(_) => Self::EnrolmentRefused { detail },
            EnrolError::BadAddress(_) => Self::InvalidInput { detail },
            EnrolError::Transport(t) => from_transport(t, detail),
        };
        out.logged()
    }
}

impl YibiaoError {
    /// The error with its `detail` worded in `lang` (for the errors that carry a code
    /// and parameters; the others are returned as they are).
    pub(crate) fn in_language(self, lang: Lang) -> Self {
        match self {
            Self::InvalidValue {
                field,
                code,
                params,
                ..
            } => {
                let m = Message {
                    code,
                    params: params.into_iter().collect(),
                };
                Self::InvalidValue {
                    field,
                    detail: m.render(lang),
                    code: m.code,
                    params: m.params.into_iter().collect(),
                }
            }
            Self::Refused { code, params, .. } => {
                let m = Message {
                    code,
                    params: params.into_iter().collect(),
                };
                Self::Refused {
                    detail: m.render(lang),
                    code: m.code,
                    params: m.params.into_iter().collect(),
                }
            }
            other => other,
        }
    }

    /// Logs the error where it crosses the boundary (never with personal data beyond
    /// what the message already names) and returns it.
    fn logged(self) -> Self {
        match &self {
            Self::Storage { detail } | Self::Internal { detail } => {
                tracing::error!(error = %detail, "yibiao call failed");
            }
            other => tracing::debug!(error = %other, "yibiao call refused"),
        }
        self
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Self::Internal {
            detail: detail.into(),
        }
        .logged()
    }
}

/// What an app's transport reports when an exchange fails. Throw it from
/// `AppTransport.exchange`; any other exception counts as [`TransportFailure::Network`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TransportFailure {
    /// No connection, reset, cut mid-body: the sync retries with backoff.
    #[error("network: {detail}")]
    Network {
        /// What failed.
        detail: String,
    },
    /// No answer in time: the sync retries with backoff.
    #[error("timed out")]
    Timeout,
    /// The server answered with an HTTP error status (429 and 5xx are retried).
    #[error("server answered {status}: {detail}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The server's message (the `error.message` of its JSON envelope, if any).
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TransportFailure {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        // An exception the app did not map (an IOException, say): treat as a network
        // failure, which the sync retries, rather than a crash.
        Self::Network { detail: e.reason }
    }
}

impl From<TransportFailure> for TransportError {
    fn from(e: TransportFailure) -> Self {
        match e {
            TransportFailure::Network { detail } => TransportError::Network(detail),
            TransportFailure::Timeout => TransportError::Timeout,
            TransportFailure::Status { status, detail } => TransportError::Status {
                status,
                message: detail,
            },
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs one exported call, turning a panic into [`YibiaoError::Internal`].
///
/// `AssertUnwindSafe` is sound here: the core's store recovers from a poisoned lock
/// (SQLite rolls the transaction back, the document cache is cleared), and the FFI
/// objects hold nothing a half-finished call could leave inconsistent.
pub(crate) fn guard<T>(call: impl FnOnce() -> Result<T, YibiaoError>) -> Result<T, YibiaoError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result,
        Err(payload) => Err(YibiaoError::internal(format!(
            "internal error (please report it): {}",
            panic_text(payload.as_ref())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_not_an_unwind() {
        let r: Result<(), YibiaoError> = guard(|| panic!("index out of bounds"));
        match r {
            Err(YibiaoError::Internal { detail }) => {
                assert!(detail.contains("index out of bounds"))
            }
            other => panic!("expected Internal, got {other:?}"),
        }
    }

    #[test]
    fn sync_errors_map_to_what_the_app_can_do() {
        let refused = SyncError::Refused(TransportError::Status {
            status: 426,
            message: "update the app".into(),
        });
        assert!(matches!(
            YibiaoError::from(refused),
            YibiaoError::ServerRefused { status: 426, detail } if detail.contains("update the app")
        ));
        let unreachable = SyncError::Unreachable {
            attempts: 6,
            last: TransportError::Timeout,
            progress: Default::default(),
        };
        assert!(matches!(
            YibiaoError::from(unreachable),
            YibiaoError::Network { .. }
        ));
        let bad_code = EnrolError::BadCode("the code was already used".into());
        assert_eq!(
            YibiaoError::from(bad_code),
            YibiaoError::EnrolmentRefused {
                detail: "the code was already used".into()
            }
        );
    }

    #[test]
    fn an_unexpected_exception_in_an_app_transport_is_a_retryable_network_failure() {
        let e = TransportFailure::from(uniffi::UnexpectedUniFFICallbackError {
            reason: "java.io.IOException: unexpected end of stream".into(),
        });
        assert!(matches!(
            TransportError::from(e),
            TransportError::Network(m) if m.contains("unexpected end of stream")
        ));
    }
}
