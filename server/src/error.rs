//! The one HTTP error type: a status and a JSON envelope a person can act on.
//!
//! `{"error": {"code": "bad_request", "message": "..."}}`. Internal details (SQL, paths)
//! are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing already exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests for this token; retry after the given seconds.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The client speaks another protocol version.
    #[error("{0}")]
    UpgradeRequired(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The server failed; details are in its log.
    #[error("internal error; the operator can find details in the server log")]
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UpgradeRequired(_) => (StatusCode::UPGRADE_REQUIRED, "protocol_version"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let mut response = (
            status,
            Json(json!({ "error": { "code": code, "message": self.to_string() } })),
        )
            .into_response();
        if let ApiError::RateLimited(secs) = self
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as A;
        match e {
            A::Invalid(m) => ApiError::BadRequest(m),
            A::NotFound(m) => ApiError::NotFound(m),
            A::Conflict(m) => ApiError::Conflict(m),
            A::BadCode(m) => ApiError::Unauthorized(m),
            A::Storage(m) => {
                tracing::error!(error = %m, "account storage failure");
                ApiError::Internal
            }
        }
    }
}
