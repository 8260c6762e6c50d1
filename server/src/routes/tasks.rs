//! `/v1/tasks`, `/v1/summary`, `/v1/burden`: tasks issued by a department (its token) or
//! the township (the admin token), their progress, the village x form summary and the
//! burden report. The same operations exist in the CLI (`yibiao-server task|summary|burden`),
//! both through [`crate::tasks`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Issuer};
use crate::error::{ApiError, ErrorBody};
use crate::params::{JsonBody, NoParams, Query};
use crate::state::AppState;
use crate::tasks::{self, Burden, NewTask, Summary, TaskError, TaskProgress};

/// The task and report routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, cancel))
        .routes(routes!(summary))
        .routes(routes!(burden))
}

/// Runs a task operation on the blocking pool with the server's clock.
async fn run<T: Send + 'static>(
    state: AppState,
    f: impl FnOnce(&AppState, i64) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(move || f(&state, state.clock.now_ms())).await??)
}

/// Issue a task to the phones of some villages (or of some records' villages); each
/// phone gets it on its next sync and writes receipts back by itself.
#[utoipa::path(post, path = "/v1/tasks", operation_id = "create_task", tag = "tasks",
    security(("department" = []), ("admin" = [])),
    request_body = NewTask,
    responses(
        (status = 201, description = "issued; every village `sent`", body = TaskProgress),
        (status = 400, description = "bad form, due, villages or records", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 403, description = "a form or village outside the issuer's view", body = ErrorBody),
        (status = 404, description = "a target record is not on the server", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn create(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<NewTask>,
) -> Result<(StatusCode, Json<TaskProgress>), ApiError> {
    let p = run(state, move |s, now| {
        tasks::issue(&s.hub, s.storage.as_ref(), &issuer, &req, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Every task of an issuer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tasks {
    /// Newest first.
    pub tasks: Vec<TaskProgress>,
}

/// Every task of the issuer (every task for the admin token) with progress per village,
/// newest first.
#[utoipa::path(get, path = "/v1/tasks", operation_id = "list_tasks", tag = "tasks",
    security(("department" = []), ("admin" = [])),
    params(NoParams),
    responses(
        (status = 200, description = "the tasks", body = Tasks),
        (status = 400, description = "a query parameter", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn list(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Query(NoParams {}): Query<NoParams>,
) -> Result<Json<Tasks>, ApiError> {
    let tasks = run(state, move |s, now| {
        tasks::list(s.storage.as_ref(), s.hub.schema(), &issuer, now)
    })
    .await?;
    Ok(Json(Tasks { tasks }))
}

/// One task: per village delivered / opened / done / overdue, and target records complete.
#[utoipa::path(get, path = "/v1/tasks/{task}", operation_id = "show_task", tag = "tasks",
    security(("department" = []), ("admin" = [])),
    params(("task" = String, Path, description = "The task id.")),
    responses(
        (status = 200, description = "the task's progress", body = TaskProgress),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 404, description = "no such task of this issuer", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn show(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Path(task): Path<String>,
) -> Result<Json<TaskProgress>, ApiError> {
    let p = run(state, move |s, now| {
        tasks::progress(s.storage.as_ref(), s.hub.schema(), &issuer, &task, now)
    })
    .await?;
    Ok(Json(p))
}

/// Cancel a task; phones drop it on their next sync.
#[utoipa::path(delete, path = "/v1/tasks/{task}", operation_id = "cancel_task", tag = "tasks",
    security(("department" = []), ("admin" = [])),
    params(("task" = String, Path, description = "The task id.")),
    responses(
        (status = 200, description = "cancelled; its progress", body = TaskProgress),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 404, description = "no such task of this issuer", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn cancel(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Path(task): Path<String>,
) -> Result<Json<TaskProgress>, ApiError> {
    let p = run(state, move |s, now| {
        tasks::cancel(&s.hub, s.storage.as_ref(), &issuer, &task, now)
    })
    .await?;
    Ok(Json(p))
}

/// Per village x form: records complete / incomplete and task villages by status, plus
/// totals per form.
#[utoipa::path(get, path = "/v1/summary", tag = "reports",
    security(("department" = []), ("admin" = [])),
    params(NoParams),
    responses(
        (status = 200, description = "the summary", body = Summary),
        (status = 400, description = "a query parameter", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn summary(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Query(NoParams {}): Query<NoParams>,
) -> Result<Json<Summary>, ApiError> {
    let s = run(state, move |s, now| {
        tasks::summary(s.storage.as_ref(), s.hub.schema(), &issuer, now)
    })
    .await?;
    Ok(Json(s))
}

/// The period of the burden report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BurdenParams {
    /// First day, YYYY-MM-DD (UTC+8); default: `to`.
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC+8); default: today.
    pub to: Option<String>,
}

/// The burden report: field values cadres typed in the period vs the (record, field,
/// department) deliveries they produced.
#[utoipa::path(get, path = "/v1/burden", tag = "reports", security(("admin" = [])),
    params(BurdenParams),
    responses(
        (status = 200, description = "the report", body = Burden),
        (status = 400, description = "a day that is not one, or `to` before `from`", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
    ))]
pub async fn burden(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<BurdenParams>,
) -> Result<Json<Burden>, ApiError> {
    let b = run(state, move |s, now| {
        let to = q.to.unwrap_or_else(|| tasks::today(now));
        let from = q.from.unwrap_or_else(|| to.clone());
        tasks::burden(s.storage.as_ref(), s.hub.schema(), &from, &to)
    })
    .await?;
    Ok(Json(b))
}
