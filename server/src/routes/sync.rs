//! `POST /v1/sync`: one sync exchange (see the protocol in ARCHITECTURE.md).
//!
//! The handler only authenticates, rate-limits, checks the version byte, decodes, and
//! runs the hub on the blocking pool; everything else is core's.

use std::sync::atomic::Ordering::Relaxed;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use yibiao_sync::hub::HubError;
use yibiao_sync::protocol::{PROTOCOL_VERSION, ProtocolError, SyncRequest, peek_version};

use super::blocking;
use crate::AppState;
use crate::error::ApiError;

/// Media type of sync bodies.
pub const SYNC_CONTENT_TYPE: &str = "application/x-yibiao-sync";

/// Handles one exchange.
pub async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = state.metrics.clone();
    match exchange(state, headers, body).await {
        Ok(response) => response,
        Err(e) => {
            metrics.sync_errors.fetch_add(1, Relaxed);
            e.into_response()
        }
    }
}

async fn exchange(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "sync body is larger than the server's limit of {} bytes",
                state.config.max_body_bytes
            ))
        } else {
            ApiError::BadRequest(format!("could not read the body: {e}"))
        }
    })?;
    let storage = state.storage.clone();
    let (auth, row) = blocking(move || crate::auth::device(storage.as_ref(), &headers)).await?;
    state.limiter.check(&auth.key).map_err(|s| {
        state.metrics.rate_limited.fetch_add(1, Relaxed);
        ApiError::RateLimited(s)
    })?;
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
    let bytes_in = body.len();
    let request = SyncRequest::decode(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // A token belongs to one phone: the enrolment (or the first sync of a CLI token) binds it.
    match &row.phone_device {
        Some(bound) if *bound != request.device => {
            return Err(ApiError::Unauthorized(format!(
                "this token belongs to another phone ({bound}); enrol this phone with its own code"
            )));
        }
        Some(_) => {}
        None => {
            let storage = state.storage.clone();
            let (key, device) = (row.key.clone(), request.device.clone());
            blocking(move || {
                storage.bind_phone_device(&key, &device).map_err(|e| {
                    tracing::error!(error = %e, "binding a device failed");
                    ApiError::Internal
                })
            })
            .await?;
        }
    }
    let hub = state.hub.clone();
    let device = auth.key.clone();
    let pushed = request.push.len();
    let (response, stats) = blocking(move || {
        hub.handle(&auth, &request).map_err(|e| match e {
            HubError::BadRequest(m) => ApiError::BadRequest(m),
            HubError::Storage(e) => {
                tracing::error!(error = %e, "sync storage failure; the page was not committed");
                ApiError::Internal
            }
        })
    })
    .await?;
    let out = response.encode();
    let m = &state.metrics;
    m.syncs.fetch_add(1, Relaxed);
    m.sync_bytes_in.fetch_add(bytes_in as u64, Relaxed);
    m.sync_bytes_out.fetch_add(out.len() as u64, Relaxed);
    m.docs_accepted.fetch_add(stats.accepted as u64, Relaxed);
    m.docs_sent.fetch_add(stats.sent as u64, Relaxed);
    if response.more {
        m.pages_with_more.fetch_add(1, Relaxed);
    }
    for r in &response.refused {
        m.refused(&format!("{:?}", r.code));
    }
    m.sync_seconds.observe(started.elapsed().as_secs_f64());
    tracing::info!(
        %device, pushed, accepted = stats.accepted, refused = stats.refused, duplicates = stats.duplicates,
        sent = stats.sent, more = response.more, bytes_in, bytes_out = out.len(),
        ms = started.elapsed().as_millis() as u64, "sync"
    );
    Ok(([(header::CONTENT_TYPE, SYNC_CONTENT_TYPE)], out).into_response())
}
