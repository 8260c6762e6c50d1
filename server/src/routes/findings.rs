//! `/v1/findings`: inspection findings (ADR 0012). The admin token acts as the township
//! office, a department token as its department (`discipline_inspection`: the discipline office).
//! Steps are checked by the model's rule, the one the hub applies to phones; a refused
//! step is `403` with the reason `finding_forbidden` (role, step, why). The same
//! operations exist in the CLI (`yibiao-server findings`), both through
//! [`crate::findings`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yibiao_model::RecordId;
use yibiao_model::finding::report::Report;

use crate::auth::Issuer;
use crate::error::{ApiError, ErrorBody};
use crate::findings::{self, FindingView, NewFinding, NewStep};
use crate::params::{JsonBody, NoParams, Query};
use crate::state::AppState;

/// The finding routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(report))
        .routes(routes!(report_xlsx))
        .routes(routes!(show))
        .routes(routes!(step))
}

/// Runs a finding operation on the blocking pool with the server's clock.
async fn run<T: Send + 'static>(
    state: AppState,
    f: impl FnOnce(&AppState, i64) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&state, state.clock.now_ms())).await?
}

fn finding_id(id: &str) -> Result<RecordId, ApiError> {
    id.parse().map_err(|_| {
        ApiError::NotFound(format!(
            "no finding {}",
            id.chars().take(40).collect::<String>()
        ))
    })
}

/// Record a finding (the township office or the discipline office); the village's
/// phones get it on their next sync.
#[utoipa::path(post, path = "/v1/findings", operation_id = "create_finding", tag = "findings",
    security(("department" = []), ("admin" = [])),
    request_body = NewFinding,
    responses(
        (status = 201, description = "recorded", body = FindingView),
        (status = 400, description = "a bad category, description, village or photo list", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 403, description = "this department may not record findings (`finding_forbidden`)", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn create(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<NewFinding>,
) -> Result<(StatusCode, Json<FindingView>), ApiError> {
    let v = run(state, move |s, now| {
        findings::record(&s.hub, &issuer, req, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Findings in the caller's scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Findings {
    /// Oldest found first.
    pub findings: Vec<FindingView>,
}

/// Every finding the caller sees: the township and the discipline office all, a
/// department those handed to it.
#[utoipa::path(get, path = "/v1/findings", operation_id = "list_findings", tag = "findings",
    security(("department" = []), ("admin" = [])),
    params(NoParams),
    responses(
        (status = 200, description = "the findings", body = Findings),
        (status = 400, description = "a query parameter", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn list(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Query(NoParams {}): Query<NoParams>,
) -> Result<Json<Findings>, ApiError> {
    let findings = run(state, move |s, now| {
        findings::list(s.storage.as_ref(), &issuer, now)
    })
    .await?;
    Ok(Json(Findings { findings }))
}

/// One finding with its log folded.
#[utoipa::path(get, path = "/v1/findings/{finding}", operation_id = "show_finding", tag = "findings",
    security(("department" = []), ("admin" = [])),
    params(("finding" = String, Path, description = "The finding's id.")),
    responses(
        (status = 200, description = "the finding", body = FindingView),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 404, description = "no such finding in the caller's scope", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn show(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Path(finding): Path<String>,
) -> Result<Json<FindingView>, ApiError> {
    let id = finding_id(&finding)?;
    let v = run(state, move |s, now| {
        findings::show(&s.hub, &issuer, id, now)
    })
    .await?;
    Ok(Json(v))
}

/// Take a step: `{"hand_over": {"unit": {"village": "tujiang"}, "deadline_ms": ...}}`
/// (either may be left out: the finding's category gives them), `{"resolve": {...}}`,
/// `"accept"`, `{"send_back": {"reason"}}`, `{"hold_to_account": {"who", "measure"}}`.
#[utoipa::path(post, path = "/v1/findings/{finding}/steps", operation_id = "take_finding_step", tag = "findings",
    security(("department" = []), ("admin" = [])),
    params(("finding" = String, Path, description = "The finding's id.")),
    request_body = NewStep,
    responses(
        (status = 200, description = "the step is in the log; the finding now", body = FindingView),
        (status = 400, description = "a malformed step, or a hand-over with no unit or deadline its category could give", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 403, description = "the caller's role may not take this step (`finding_forbidden`)", body = ErrorBody),
        (status = 404, description = "no such finding in the caller's scope", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn step(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Path(finding): Path<String>,
    JsonBody(kind): JsonBody<NewStep>,
) -> Result<Json<FindingView>, ApiError> {
    let id = finding_id(&finding)?;
    let v = run(state, move |s, now| {
        findings::take_step(&s.hub, &issuer, id, kind, now)
    })
    .await?;
    Ok(Json(v))
}

/// The period of the report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First day (UTC+8), e.g. 2027-01-04.
    pub from: String,
    /// Last day, included.
    pub to: String,
}

/// The report (通报) of the findings recorded in a period: per category, village and
/// responsible unit; handed over, resolved on time, overdue, sent back, held to account,
/// average time to resolve. The township and the discipline office only.
#[utoipa::path(get, path = "/v1/findings/report", operation_id = "findings_report", tag = "findings",
    security(("department" = []), ("admin" = [])),
    params(ReportParams),
    responses(
        (status = 200, description = "the report", body = Report),
        (status = 400, description = "a day that is not one, or `to` before `from`", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 403, description = "a department other than the discipline office", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn report(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Query(q): Query<ReportParams>,
) -> Result<Json<Report>, ApiError> {
    let r = run(state, move |s, now| {
        findings::may_report(&issuer)?;
        findings::report(s.storage.as_ref(), s.hub.schema(), &q.from, &q.to, now)
    })
    .await?;
    Ok(Json(r))
}

/// The report as an XLSX workbook: a sheet per category, village and responsible unit,
/// each with its total; headers in Chinese. Same period and callers as the JSON report.
#[utoipa::path(get, path = "/v1/findings/report.xlsx", operation_id = "findings_report_xlsx", tag = "findings",
    security(("department" = []), ("admin" = [])),
    params(ReportParams),
    responses(
        (status = 200, description = "the workbook",
         content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 400, description = "a day that is not one, or `to` before `from`", body = ErrorBody),
        (status = 401, description = "no department or admin token", body = ErrorBody),
        (status = 403, description = "a department other than the discipline office", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn report_xlsx(
    Issuer(issuer): Issuer,
    State(state): State<AppState>,
    Query(q): Query<ReportParams>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let bytes = run(state, move |s, now| {
        findings::may_report(&issuer)?;
        let r = findings::report(s.storage.as_ref(), s.hub.schema(), &q.from, &q.to, now)?;
        findings::xlsx::workbook(&r)
            .map_err(|e| ApiError::internal("writing the findings workbook", e))
    })
    .await?;
    let disposition = "attachment; filename=\"findings-report.xlsx\"";
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
