//! `/v1/admin/...`: cadres, enrolment codes, devices and department tokens, for the
//! admin token. The same operations exist in the CLI (`yibiao-server cadre|device|department`),
//! both through [`crate::accounts`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{self, AccountError};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::params::{JsonBody, OptionalJsonBody};
use crate::state::AppState;
use crate::storage::{CadreRow, DepartmentTokenRow};

/// The admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cadre, list_cadres))
        .routes(routes!(issue_code))
        .routes(routes!(revoke_codes))
        .routes(routes!(list_devices))
        .routes(routes!(revoke_device))
        .routes(routes!(issue_department_token))
        .routes(routes!(list_department_tokens))
        .routes(routes!(revoke_department_token))
}

/// Runs an account operation on the blocking pool.
async fn run<T: Send + 'static>(
    state: AppState,
    f: impl FnOnce(&AppState) -> Result<T, AccountError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(move || f(&state)).await??)
}

/// A new cadre.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCadre {
    /// Cadre id: ASCII letters, digits, - _ . @.
    pub id: String,
    /// Name as people write it.
    pub name: String,
    /// The village the cadre works in; null for township staff.
    pub village: Option<String>,
}

/// Create a cadre.
#[utoipa::path(post, path = "/v1/admin/cadres", tag = "admin", security(("admin" = [])),
    request_body = NewCadre,
    responses(
        (status = 201, description = "created", body = CadreRow),
        (status = 400, description = "bad id, name or village", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 409, description = "the cadre exists", body = ErrorBody),
    ))]
pub async fn create_cadre(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<NewCadre>,
) -> Result<(StatusCode, Json<CadreRow>), ApiError> {
    let row = run(state, move |s| {
        accounts::create_cadre(
            s.storage.as_ref(),
            s.hub.schema(),
            &req.id,
            &req.name,
            req.village.as_deref(),
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Every cadre.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cadres {
    /// The cadres.
    pub cadres: Vec<CadreRow>,
}

/// List cadres.
#[utoipa::path(get, path = "/v1/admin/cadres", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "every cadre", body = Cadres),
        (status = 401, description = "not the admin token", body = ErrorBody),
    ))]
pub async fn list_cadres(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Cadres>, ApiError> {
    let cadres = run(state, |s| Ok(s.storage.cadres()?)).await?;
    Ok(Json(Cadres { cadres }))
}

/// Options of a new enrolment code.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCode {
    /// Minutes the code stays valid, 1 to 10080 (default 30).
    #[schema(minimum = 1, maximum = 10080)]
    pub ttl_minutes: Option<i64>,
}

/// A one-time enrolment code, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCode {
    /// The code, like `K7PM-Q2XD`.
    pub code: String,
    /// When it expires, ms since the epoch.
    pub expires_ms: i64,
}

/// Issue a one-time enrolment code for a cadre.
#[utoipa::path(post, path = "/v1/admin/cadres/{id}/codes", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "The cadre id.")),
    request_body(content = Option<NewCode>, description = "may be empty"),
    responses(
        (status = 201, description = "issued", body = IssuedCode),
        (status = 400, description = "bad ttl_minutes", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such cadre", body = ErrorBody),
    ))]
pub async fn issue_code(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<NewCode>,
) -> Result<(StatusCode, Json<IssuedCode>), ApiError> {
    let ttl = req
        .ttl_minutes
        .unwrap_or(accounts::DEFAULT_CODE_TTL_MINUTES);
    let (code, expires_ms) = run(state, move |s| {
        accounts::issue_code(s.storage.as_ref(), &id, ttl)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(IssuedCode { code, expires_ms })))
}

/// What revoking a cadre's codes did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCodes {
    /// The cadre.
    pub cadre: String,
    /// Unused codes that stopped working.
    pub revoked: usize,
}

/// Revoke every unused enrolment code of a cadre, at once (issuing a new code does this
/// too).
#[utoipa::path(post, path = "/v1/admin/cadres/{id}/codes/revoke", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "The cadre id.")),
    responses(
        (status = 200, description = "revoked", body = RevokedCodes),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such cadre", body = ErrorBody),
    ))]
pub async fn revoke_codes(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RevokedCodes>, ApiError> {
    let cadre = id.clone();
    let revoked = run(state, move |s| {
        accounts::revoke_codes(s.storage.as_ref(), &id)
    })
    .await?;
    Ok(Json(RevokedCodes { cadre, revoked }))
}

/// Every device.
#[derive(Debug, Serialize, ToSchema)]
pub struct Devices {
    /// The devices, with their last sync.
    pub devices: Vec<accounts::ListedDevice>,
}

/// List devices.
#[utoipa::path(get, path = "/v1/admin/devices", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "every device", body = Devices),
        (status = 401, description = "not the admin token", body = ErrorBody),
    ))]
pub async fn list_devices(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Devices>, ApiError> {
    let devices = run(state, |s| accounts::devices(s.storage.as_ref())).await?;
    Ok(Json(Devices { devices }))
}

/// What was revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// The key of the revoked device or token.
    pub revoked: String,
}

/// Revoke a device token, at once.
#[utoipa::path(post, path = "/v1/admin/devices/{key}/revoke", tag = "admin", security(("admin" = [])),
    params(("key" = String, Path, description = "The phone's device id (as changes, conflicts and history show it) or a token key.")),
    responses(
        (status = 200, description = "revoked", body = Revoked),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such device", body = ErrorBody),
    ))]
pub async fn revoke_device(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let k = key.clone();
    run(state, move |s| {
        accounts::revoke_device(s.storage.as_ref(), &k)
    })
    .await?;
    Ok(Json(Revoked { revoked: key }))
}

/// Options of a new department token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDepartmentToken {
    /// Who uses it, e.g. "civil affairs Excel" (default: the department key).
    pub name: Option<String>,
}

/// A department token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedDepartmentToken {
    /// The token (`ybk_...`).
    pub token: String,
    /// Its key, for listing and revocation.
    pub key: String,
    /// The department.
    pub department: String,
}

/// Issue a department token.
#[utoipa::path(post, path = "/v1/admin/departments/{department}/tokens", tag = "admin", security(("admin" = [])),
    params(("department" = String, Path, description = "A department key of the schema.")),
    request_body(content = Option<NewDepartmentToken>, description = "may be empty"),
    responses(
        (status = 201, description = "issued", body = IssuedDepartmentToken),
        (status = 400, description = "bad body", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such department", body = ErrorBody),
    ))]
pub async fn issue_department_token(
    _: Admin,
    State(state): State<AppState>,
    Path(department): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<NewDepartmentToken>,
) -> Result<(StatusCode, Json<IssuedDepartmentToken>), ApiError> {
    let (row, token) = run(state, move |s| {
        accounts::issue_department_token(
            s.storage.as_ref(),
            s.hub.schema(),
            &department,
            req.name.as_deref().unwrap_or(""),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedDepartmentToken {
            token,
            key: row.key,
            department: row.department,
        }),
    ))
}

/// Every department token.
#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentTokens {
    /// The tokens (never the secrets).
    pub tokens: Vec<DepartmentTokenRow>,
}

/// List department tokens.
#[utoipa::path(get, path = "/v1/admin/department-tokens", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "every department token", body = DepartmentTokens),
        (status = 401, description = "not the admin token", body = ErrorBody),
    ))]
pub async fn list_department_tokens(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<DepartmentTokens>, ApiError> {
    let tokens = run(state, |s| Ok(s.storage.department_tokens()?)).await?;
    Ok(Json(DepartmentTokens { tokens }))
}

/// Revoke a department token, at once.
#[utoipa::path(post, path = "/v1/admin/department-tokens/{key}/revoke", tag = "admin", security(("admin" = [])),
    params(("key" = String, Path, description = "The token key.")),
    responses(
        (status = 200, description = "revoked", body = Revoked),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such token", body = ErrorBody),
    ))]
pub async fn revoke_department_token(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let k = key.clone();
    run(state, move |s| {
        accounts::revoke_department_token(s.storage.as_ref(), &k)
    })
    .await?;
    Ok(Json(Revoked { revoked: key }))
}
