//! `/v1/admin/...`: cadres, enrolment codes, devices and department tokens, for the
//! admin token. The same operations exist in the CLI (`yibiao-server cadre|device|department`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{blocking, json_body};
use crate::AppState;
use crate::accounts;
use crate::error::ApiError;

fn check(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    crate::auth::admin(state.storage.as_ref(), headers)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCadre {
    id: String,
    name: String,
    village: Option<String>,
}

/// `POST /v1/admin/cadres`.
pub async fn create_cadre(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = state.clone();
    blocking(move || check(&s, &headers)).await?;
    let req: NewCadre = json_body(body)?;
    let row = blocking(move || {
        Ok(accounts::create_cadre(
            state.storage.as_ref(),
            state.hub.schema(),
            &req.id,
            &req.name,
            req.village.as_deref(),
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!(row))))
}

/// `GET /v1/admin/cadres`.
pub async fn list_cadres(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        check(&state, &headers)?;
        Ok(Json(json!({ "cadres": state.storage.cadres().map_err(|e| ApiError::from(accounts::AccountError::from(e)))? })))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewCode {
    ttl_minutes: Option<i64>,
}

/// `POST /v1/admin/cadres/{id}/codes`: a one-time enrolment code.
pub async fn issue_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = state.clone();
    blocking(move || check(&s, &headers)).await?;
    let req: NewCode = match &body {
        Ok(b) if b.is_empty() => NewCode::default(),
        _ => json_body(body)?,
    };
    let ttl = req
        .ttl_minutes
        .unwrap_or(accounts::DEFAULT_CODE_TTL_MINUTES);
    let (code, expires_ms) =
        blocking(move || Ok(accounts::issue_code(state.storage.as_ref(), &id, ttl)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "code": code, "expires_ms": expires_ms })),
    ))
}

/// `GET /v1/admin/devices`.
pub async fn list_devices(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        check(&state, &headers)?;
        Ok(Json(json!({ "devices": state.storage.devices().map_err(|e| ApiError::from(accounts::AccountError::from(e)))? })))
    })
    .await
}

/// `POST /v1/admin/devices/{key}/revoke`.
pub async fn revoke_device(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        check(&state, &headers)?;
        let found = state
            .storage
            .revoke_device(&key, accounts::now_ms())
            .map_err(|e| ApiError::from(accounts::AccountError::from(e)))?;
        if found {
            Ok(Json(json!({ "revoked": key })))
        } else {
            Err(ApiError::NotFound(format!("no device `{key}`")))
        }
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewDepartmentToken {
    name: Option<String>,
}

/// `POST /v1/admin/departments/{department}/tokens`.
pub async fn issue_department_token(
    State(state): State<AppState>,
    Path(department): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = state.clone();
    blocking(move || check(&s, &headers)).await?;
    let req: NewDepartmentToken = match &body {
        Ok(b) if b.is_empty() => NewDepartmentToken::default(),
        _ => json_body(body)?,
    };
    let (row, token) = blocking(move || {
        Ok(accounts::issue_department_token(
            state.storage.as_ref(),
            state.hub.schema(),
            &department,
            req.name.as_deref().unwrap_or(""),
        )?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "key": row.key, "department": row.department })),
    ))
}

/// `GET /v1/admin/department-tokens`.
pub async fn list_department_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        check(&state, &headers)?;
        Ok(Json(json!({ "tokens": state.storage.department_tokens().map_err(|e| ApiError::from(accounts::AccountError::from(e)))? })))
    })
    .await
}

/// `POST /v1/admin/department-tokens/{key}/revoke`.
pub async fn revoke_department_token(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        check(&state, &headers)?;
        let found = state
            .storage
            .revoke_department_token(&key, accounts::now_ms())
            .map_err(|e| ApiError::from(accounts::AccountError::from(e)))?;
        if found {
            Ok(Json(json!({ "revoked": key })))
        } else {
            Err(ApiError::NotFound(format!("no department token `{key}`")))
        }
    })
    .await
}
