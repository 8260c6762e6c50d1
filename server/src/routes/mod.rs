//! HTTP routes, one module per resource, merged in [`crate::app`].

pub mod admin;
pub mod enrol;
pub mod health;
pub mod openapi;
pub mod records;
pub mod sync;
pub mod tasks;

use crate::error::ApiError;

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        ApiError::Internal
    })?
}

/// Parses a JSON body, naming what is wrong.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge("request body is too large".into())
        } else {
            ApiError::BadRequest(format!("could not read the body: {e}"))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}
