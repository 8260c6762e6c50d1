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

use crate::auth::MetricsReader;
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
    /// `ok`, or `disk_full` (with status 503) when the data directory's file system has
    /// less free than `min_free_disk_bytes`.
    pub status: &'static str,
    /// Bytes free for the server on the data directory's file system.
    pub free_disk_bytes: Option<u64>,
    /// Records stored.
    pub records: u64,
    /// The sync protocol version the server speaks.
    pub protocol: u8,
}

async fn record_count(state: &AppState) -> Result<u64, ApiError> {
    let hub = state.hub.clone();
    Ok(tokio::task::spawn_blocking(move || hub.storage().record_count()).await??)
}

/// Records on the quarantine list (a database read, so on the blocking pool).
async fn quarantined_count(state: &AppState) -> usize {
    let hub = state.hub.clone();
    tokio::task::spawn_blocking(move || hub.quarantined().len())
        .await
        .unwrap_or(0)
}

/// Liveness, free disk and a record count.
#[utoipa::path(get, path = "/healthz", tag = "operator",
    responses(
        (status = 200, description = "up", body = Health),
        (status = 500, description = "the database does not answer", body = ErrorBody),
        (status = 503, description = "the disk is (nearly) full", body = Health),
    ))]
pub async fn healthz(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Health>), ApiError> {
    let free = free_disk_bytes(&state.config.data_dir);
    let full = free.is_some_and(|f| f < state.config.min_free_disk_bytes);
    let health = Health {
        status: if full { "disk_full" } else { "ok" },
        free_disk_bytes: free,
        records: record_count(&state).await?,
        protocol: yibiao_sync::PROTOCOL_VERSION,
    };
    let status = if full {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((status, Json(health)))
}

/// Bytes an unprivileged writer may still use on `dir`'s file system (statvfs
/// `f_bavail × f_frsize`): a cheap read that writes nothing, unlike a write probe, and
/// that sees the space root keeps back, which a probe run as root would not.
fn free_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let st = rustix::fs::statvfs(dir).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Prometheus text exposition, for the admin token or the configured `metrics_token`.
#[utoipa::path(get, path = "/metrics", tag = "operator", security(("admin" = [])),
    responses(
        (status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain"),
        (status = 401, description = "no or wrong admin or metrics token", body = ErrorBody),
    ))]
pub async fn metrics(_: MetricsReader, State(state): State<AppState>) -> impl IntoResponse {
    let records = record_count(&state).await.unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(records) + &quarantine_gauge(quarantined_count(&state).await),
    )
}

/// The quarantine gauge, beside the counters of [`crate::metrics::Metrics`].
fn quarantine_gauge(n: usize) -> String {
    format!(
        "# HELP yibiao_quarantined_records Stored records set aside (do not load, or too large to send).\n# TYPE yibiao_quarantined_records gauge\nyibiao_quarantined_records {n}\n"
    )
}

/// The answer of `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// True when the server should get traffic.
    pub ready: bool,
    /// Why not, one sentence each (empty when ready).
    pub reasons: Vec<String>,
    /// Stored records set aside (damaged, or too large to send), from the database's
    /// quarantine list: their villages keep syncing, the operator lists them with
    /// `yibiao-server quarantine list` (the same list) and drops them.
    pub quarantined: usize,
    /// Free bytes on the data directory's disk, when known.
    pub free_bytes: Option<u64>,
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
    let free = tokio::task::spawn_blocking(move || free_disk_bytes(&dir))
        .await
        .ok()
        .flatten();
    if let Some(f) = free
        && f < state.config.min_free_disk_bytes
    {
        reasons.push(format!(
            "the disk is full: {} MiB free on the data directory's disk, below {} MiB",
            f / (1024 * 1024),
            state.config.min_free_disk_bytes / (1024 * 1024)
        ));
    }
    let body = Ready {
        ready: reasons.is_empty(),
        reasons,
        quarantined: quarantined_count(&state).await,
        free_bytes: free,
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
