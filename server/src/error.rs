//! The one HTTP error type: a status and a JSON envelope a person can act on.
//!
//! `{"error": {"code": "bad_request", "reason": "bad_due", "params": {..}, "message": "..."}}`.
//! `code` is the stable kind (one per status); `reason` a finer stable code and `params`
//! its parameters, so a client can word its own message; `message` is worded by
//! `yibiao_model::messages` in the language the request's `Accept-Language` asks for
//! (Chinese unless English is preferred; [`with_language`] sets it per request). Every
//! conversion into the envelope lives here: the account and task refusals, the hub's,
//! unreadable bodies and query strings, failed blocking work. Internal details (SQL,
//! paths) are logged here, never sent.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use yibiao_model::messages::{Lang, Message};
use yibiao_sync::hub::{HubError, StorageError};
use yibiao_sync::protocol::ProtocolError;

use crate::accounts::AccountError;
use crate::tasks::TaskError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Authenticated, but not allowed, for a reason with a code and parameters (`403`;
    /// e.g. `finding_forbidden`).
    #[error("{}", .0.render(Lang::En))]
    Denied(Message),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing named does not exist, with a code and parameters (`404`; e.g.
    /// `no_cadre`, `no_webhook`).
    #[error("{}", .0.render(Lang::En))]
    Missing(Message),
    /// The thing already exists, with a code and parameters (`409`; e.g. `cadre_exists`).
    #[error("{}", .0.render(Lang::En))]
    Exists(Message),
    /// A credential that cannot be used, with a code (`401`; e.g. `code_expired`).
    #[error("{}", .0.render(Lang::En))]
    BadCredential(Message),
    /// The thing already exists.
    #[error("{0}")]
    Conflict(String),
    /// The endpoint exists but does not take this HTTP method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request did not finish within the server's deadline.
    #[error("{0}")]
    Timeout(String),
    /// Too many requests for this token; retry after the given seconds.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request is refused for a reason with a code and parameters (`400`).
    #[error("{}", .0.render(Lang::En))]
    Refused(Message),
    /// The thing exists but is of a type this endpoint does not serve, with a code
    /// (`415`; e.g. `blob_not_an_image`: a PDF has no thumbnail).
    #[error("{}", .0.render(Lang::En))]
    Unsupported(Message),
    /// The thing exists but cannot be processed, with a code (`422`; e.g.
    /// `blob_image_too_large`: a photo over the decoding limits).
    #[error("{}", .0.render(Lang::En))]
    Unprocessable(Message),
    /// The client speaks another protocol version.
    #[error("{0}")]
    UpgradeRequired(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The server is at one of its bounds (requests in flight, streams); retry shortly.
    #[error("{0}")]
    Busy(String),
    /// The server failed; details are in its log.
    #[error("internal error; the operator can find details in the server log")]
    Internal,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code, reason and message of an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `method_not_allowed`, `timeout`, `rate_limited`, `bad_request`,
    /// `unsupported_media_type`, `unprocessable`, `protocol_version`, `too_large`, `busy`,
    /// `internal`.
    pub code: &'static str,
    /// A finer stable code when there is one (`bad_due`, `due_past`, `bad_day`), else
    /// the same as `code`.
    pub reason: String,
    /// The reason's parameters (`got`, `due`, ...); `detail` holds the English
    /// explanation of reasons that have no finer code.
    pub params: BTreeMap<String, String>,
    /// What a person can do about it, in the language of `Accept-Language` (Chinese by
    /// default, English when preferred).
    pub message: String,
}

tokio::task_local! {
    /// The language the request being answered asked for.
    static LANG: Lang;
}

/// Middleware: answers errors of the request in the language its `Accept-Language`
/// header prefers (Chinese when it names neither Chinese nor English).
pub async fn with_language(req: Request, next: Next) -> Response {
    let lang = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Lang::default(), Lang::from_accept_language);
    LANG.scope(lang, next.run(req)).await
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) | ApiError::BadCredential(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) | ApiError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) | ApiError::Missing(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) | ApiError::Exists(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::BadRequest(_) | ApiError::Refused(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            ApiError::Unsupported(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::UpgradeRequired(_) => (StatusCode::UPGRADE_REQUIRED, "protocol_version"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Logs `error` with `context` and answers a bare 500.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "{context}");
        ApiError::Internal
    }

    /// A query parameter this endpoint does not take.
    pub fn unknown_query_parameter(name: &str, known: &[String]) -> Self {
        ApiError::BadRequest(format!(
            "unknown query parameter `{name}`; this endpoint takes: {}",
            known.join(", ")
        ))
    }

    /// A query parameter with a value that does not fit.
    pub fn query_parameter(name: &str, problem: impl std::fmt::Display) -> Self {
        ApiError::BadRequest(format!("query parameter `{name}`: {problem}"))
    }

    /// A body that could not be read; `too_large` says what the limit is.
    pub fn from_body(rejection: BytesRejection, too_large: impl FnOnce() -> String) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(too_large())
        } else {
            ApiError::BadRequest(format!("could not read the body: {rejection}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            ApiError::Refused(m)
            | ApiError::Denied(m)
            | ApiError::Missing(m)
            | ApiError::Exists(m)
            | ApiError::BadCredential(m)
            | ApiError::Unsupported(m)
            | ApiError::Unprocessable(m) => m.clone(),
            other => Message::new(code).with("detail", other.to_string()),
        };
        let lang = LANG.try_with(|l| *l).unwrap_or_default();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: message.render(lang),
                reason: message.code,
                params: message.params,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited(secs) = self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(response.status(), StatusCode::SERVICE_UNAVAILABLE) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            // Coded: the envelope's `reason` is the code and the message is worded in
            // the request's language.
            AccountError::Invalid(m) => ApiError::Refused(m),
            AccountError::NotFound(m) => ApiError::Missing(m),
            AccountError::Conflict(m) => ApiError::Exists(m),
            AccountError::BadCode(m) => ApiError::BadCredential(m),
            AccountError::Storage(m) => ApiError::internal("account storage failure", m),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid(m) => ApiError::BadRequest(m),
            TaskError::Refused(m) => ApiError::Refused(m),
            TaskError::Forbidden(m) => ApiError::Forbidden(m),
            TaskError::Denied(m) => ApiError::Denied(m),
            TaskError::NotFound(m) => ApiError::NotFound(m),
            TaskError::Storage(m) => ApiError::internal("task storage failure", m),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::BadRequest(m) => ApiError::BadRequest(m),
            HubError::Storage(e) => {
                ApiError::internal("sync storage failure; the page was not committed", e)
            }
        }
    }
}

impl From<ProtocolError> for ApiError {
    /// A sync body that is not one, or of another protocol version (426: update the app).
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::BadMagic => {
                ApiError::BadRequest("the body is not a yibiao sync message".into())
            }
            ProtocolError::Version { got, supported } => ApiError::UpgradeRequired(format!(
                "this app speaks sync protocol {got}; the server speaks {supported}. Update the app."
            )),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::internal("storage failure", e)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal("blocking task failed", e)
    }
}

impl From<serde_json::Error> for ApiError {
    /// A JSON body that does not fit the endpoint's request type.
    fn from(e: serde_json::Error) -> Self {
        ApiError::BadRequest(format!("invalid JSON body: {e}"))
    }
}

impl From<QueryRejection> for ApiError {
    /// A query string whose values do not fit: names the parameter, as serde's path to
    /// the error gives it, and the parameter type's own message.
    fn from(rejection: QueryRejection) -> Self {
        type PathError = serde_path_to_error::Error<serde::de::value::Error>;
        let first: &(dyn std::error::Error + 'static) = &rejection;
        let found = std::iter::successors(Some(first), |e| e.source())
            .find_map(|e| e.downcast_ref::<PathError>());
        match found {
            Some(e) => ApiError::query_parameter(&e.path().to_string(), e.inner()),
            None => ApiError::BadRequest(rejection.body_text()),
        }
    }
}
