//! `GET /healthz` (the process is up and its database answers), `GET /ready` (whether it
//! should be sent traffic, and why not) and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
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
        .routes(routes!(ready))
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
        state.metrics.render(records) + &quarantine_gauge(state.hub.quarantined().len()),
    )
}

/// The quarantine gauge, beside the counters of [`crate::metrics::Metrics`].
fn quarantine_gauge(n: usize) -> String {
    format!(
        "# HELP yibiao_quarantined_records Stored records set aside (do not load, or too large to send).\n# TYPE yibiao_quarantined_records gauge\nyibiao_quarantined_records {n}\n"
    )
}

/// Below this much free space on the data directory's disk the server is not ready: a
/// page commit may fail half-way through a village's sync.
pub const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// The answer of `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// True when the server should get traffic.
    pub ready: bool,
    /// Why not, one sentence each (empty when ready).
    pub reasons: Vec<String>,
    /// Stored records set aside since start (damaged, or too large to send); their
    /// villages keep syncing, the operator lists them with `yibiao-server quarantine list`.
    pub quarantined: usize,
    /// Free bytes on the data directory's disk, when known.
    pub free_bytes: Option<u64>,
}

/// Free bytes on the disk holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::fs::statvfs(dir)
            .ok()
            .map(|st| st.f_bavail.saturating_mul(st.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Readiness: the database answers, the disk has room; quarantined records are
/// reported (they do not make the server unready: their villages keep syncing).
#[utoipa::path(get, path = "/ready", tag = "operator",
    responses(
        (status = 200, description = "ready", body = Ready),
        (status = 503, description = "not ready; `reasons` says why", body = Ready),
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let mut reasons = Vec::new();
    if let Err(e) = record_count(&state).await {
        tracing::error!(error = %e, "readiness: the database does not answer");
        reasons.push("the database does not answer".to_owned());
    }
    let dir = state.config.data_dir.clone();
    let free = tokio::task::spawn_blocking(move || free_bytes(&dir))
        .await
        .ok()
        .flatten();
    if let Some(f) = free
        && f < MIN_FREE_BYTES
    {
        reasons.push(format!(
            "the disk is full: {} MiB free on the data directory's disk, below {} MiB",
            f / (1024 * 1024),
            MIN_FREE_BYTES / (1024 * 1024)
        ));
    }
    let body = Ready {
        ready: reasons.is_empty(),
        reasons,
        quarantined: state.hub.quarantined().len(),
        free_bytes: free,
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
