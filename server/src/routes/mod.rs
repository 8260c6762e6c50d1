//! HTTP routes, one module per resource, each with its own router; [`api`] merges them
//! with their OpenAPI description and [`app`] serves them.

pub mod admin;
pub mod enrol;
pub mod health;
pub mod openapi;
pub mod records;
pub mod sync;
pub mod tasks;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route with its description: the one list of what the server answers.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::router())
        .merge(openapi::router())
        .merge(sync::router())
        .merge(enrol::router())
        .merge(records::router())
        .merge(tasks::router())
        .merge(admin::router())
}

/// The router: [`api`] with the fallback, body limit, timeout and tracing.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let (router, _) = api().split_for_parts();
    router
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /openapi.json".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
