//! `/v1/tasks`, `/v1/summary`, `/v1/burden`: tasks issued by a department (its token) or
//! the township (the admin token), their progress, the village x form summary and the
//! burden report. The same operations exist in the CLI (`yibiao-server task|summary|burden`).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::records::only_known;
use super::{blocking, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::tasks::{self, Issuer, NewTask, TaskError};

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid(m) => ApiError::BadRequest(m),
            TaskError::Forbidden(m) => ApiError::Forbidden(m),
            TaskError::NotFound(m) => ApiError::NotFound(m),
            TaskError::Storage(m) => {
                tracing::error!(error = %m, "task storage failure");
                ApiError::Internal
            }
        }
    }
}

/// The issuer behind the request: the admin token is the township, a department token
/// its department (rate-limited like its pulls).
fn issuer(state: &AppState, headers: &HeaderMap) -> Result<Issuer, ApiError> {
    let token = crate::auth::bearer(headers, "department or admin")?;
    if token.starts_with("yba_") {
        crate::auth::admin(state.storage.as_ref(), headers)?;
        return Ok(Issuer::Township);
    }
    if token.starts_with("ybk_") {
        let (dept, key) =
            crate::auth::department(state.storage.as_ref(), state.hub.schema(), headers)?;
        state.limiter.check(&key).map_err(|s| {
            state
                .metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::RateLimited(s)
        })?;
        return Ok(Issuer::Department(dept));
    }
    Err(ApiError::Unauthorized(
        "tasks and reports take a department token (ybk_) or the admin token (yba_)".into(),
    ))
}

/// `POST /v1/tasks`: issue a task.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    blocking(move || {
        let issuer = issuer(&state, &headers)?;
        let req: NewTask = json_body(body)?;
        let now = state.clock.now_ms();
        let p = tasks::issue(&state.hub, state.storage.as_ref(), &issuer, &req, now)?;
        Ok((StatusCode::CREATED, Json(json!(p))))
    })
    .await
}

/// `GET /v1/tasks`: every task of the issuer with its progress, newest first.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only_known(&params, &[])?;
    blocking(move || {
        let issuer = issuer(&state, &headers)?;
        let list = tasks::list(
            state.storage.as_ref(),
            state.hub.schema(),
            &issuer,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!({ "tasks": list })))
    })
    .await
}

/// `GET /v1/tasks/{task}`: one task's progress per village.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(task): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let issuer = issuer(&state, &headers)?;
        let p = tasks::progress(
            state.storage.as_ref(),
            state.hub.schema(),
            &issuer,
            &task,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!(p)))
    })
    .await
}

/// `DELETE /v1/tasks/{task}`: cancel a task; phones drop it on their next sync.
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(task): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let issuer = issuer(&state, &headers)?;
        let p = tasks::cancel(
            &state.hub,
            state.storage.as_ref(),
            &issuer,
            &task,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!(p)))
    })
    .await
}

/// `GET /v1/summary`: records complete per village x form, and tasks by status.
pub async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only_known(&params, &[])?;
    blocking(move || {
        let issuer = issuer(&state, &headers)?;
        let s = tasks::summary(
            state.storage.as_ref(),
            state.hub.schema(),
            &issuer,
            state.clock.now_ms(),
        )?;
        Ok(Json(json!(s)))
    })
    .await
}

/// `GET /v1/burden?from=YYYY-MM-DD&to=YYYY-MM-DD`: values typed vs deliveries (admin).
pub async fn burden(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only_known(&params, &["from", "to"])?;
    blocking(move || {
        crate::auth::admin(state.storage.as_ref(), &headers)?;
        let today = tasks::today(state.clock.now_ms());
        let to = params.get("to").cloned().unwrap_or_else(|| today.clone());
        let from = params.get("from").cloned().unwrap_or_else(|| to.clone());
        let b = tasks::burden(state.storage.as_ref(), state.hub.schema(), &from, &to)?;
        Ok(Json(json!(b)))
    })
    .await
}
