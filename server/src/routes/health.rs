//! `GET /healthz` (the process is up and its database answers) and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yibiao_sync::HubStorage;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers at all.
    pub status: &'static str,
    /// Records stored.
    pub records: u64,
    /// The sync protocol version the server speaks.
    pub protocol: u8,
}

async fn record_count(state: &AppState) -> Result<u64, ApiError> {
    let hub = state.hub.clone();
    Ok(tokio::task::spawn_blocking(move || hub.storage().record_count()).await??)
}

/// Liveness and a record count.
#[utoipa::path(get, path = "/healthz", tag = "operator",
    responses(
        (status = 200, description = "up", body = Health),
        (status = 500, description = "the database does not answer", body = ErrorBody),
    ))]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    Ok(Json(Health {
        status: "ok",
        records: record_count(&state).await?,
        protocol: yibiao_sync::PROTOCOL_VERSION,
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operator",
    responses((status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let records = record_count(&state).await.unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(records),
    )
}
