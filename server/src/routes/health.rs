//! `GET /healthz`: the process is up and its database answers.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use yibiao_sync::HubStorage;

use crate::AppState;
use crate::error::ApiError;

/// Liveness and a record count.
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let hub = state.hub.clone();
    let records = tokio::task::spawn_blocking(move || hub.storage().record_count())
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "health check failed");
            ApiError::Internal
        })?;
    Ok(Json(
        json!({ "status": "ok", "records": records, "protocol": yibiao_sync::PROTOCOL_VERSION }),
    ))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(
    State(state): State<AppState>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let hub = state.hub.clone();
    let records = tokio::task::spawn_blocking(move || hub.storage().record_count())
        .await
        .map_err(|_| ApiError::Internal)?
        .unwrap_or(0);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(records),
    ))
}
