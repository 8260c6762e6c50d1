//! `POST /v1/sync`: one sync exchange (see the protocol in ARCHITECTURE.md).
//!
//! The handler only authenticates, checks the version byte, decodes, and runs the hub on
//! the blocking pool; everything else is core's.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use yibiao_core::sync::hub::HubError;
use yibiao_core::sync::protocol::{PROTOCOL_VERSION, ProtocolError, SyncRequest, peek_version};

use crate::AppState;
use crate::error::ApiError;

/// Media type of sync bodies.
pub const SYNC_CONTENT_TYPE: &str = "application/x-yibiao-sync";

/// Handles one exchange.
pub async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::TooLarge(format!(
                "sync body is larger than the server's limit of {} bytes",
                state.config.max_body_bytes
            ))
        }
        other => ApiError::BadRequest(format!("could not read the body: {other}")),
    })?;
    let storage = state.storage.clone();
    let auth =
        tokio::task::spawn_blocking(move || crate::auth::device_from_headers(&storage, &headers))
            .await
            .map_err(|_| ApiError::Internal)??;
    match peek_version(&body) {
        Err(ProtocolError::BadMagic) => {
            return Err(ApiError::BadRequest(
                "the body is not a yibiao sync message".into(),
            ));
        }
        Ok(v) if v != PROTOCOL_VERSION => {
            return Err(ApiError::UpgradeRequired(format!(
                "this app speaks sync protocol {v}; the server speaks {PROTOCOL_VERSION}. Update the app."
            )));
        }
        _ => {}
    }
    let request = SyncRequest::decode(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hub = state.hub.clone();
    let device = auth.key.clone();
    let pushed = request.push.len();
    let started = std::time::Instant::now();
    let (response, stats) = tokio::task::spawn_blocking(move || hub.handle(&auth, &request))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| match e {
            HubError::BadRequest(m) => ApiError::BadRequest(m),
            HubError::Storage(e) => {
                tracing::error!(error = %e, "sync storage failure; the page was not committed");
                ApiError::Internal
            }
        })?;
    let body = response.encode();
    tracing::info!(
        %device, pushed, accepted = stats.accepted, refused = stats.refused, duplicates = stats.duplicates,
        sent = stats.sent, more = response.more, bytes_in = %body.len(), ms = started.elapsed().as_millis() as u64,
        "sync"
    );
    Ok(([(header::CONTENT_TYPE, SYNC_CONTENT_TYPE)], body))
}
