//! Who is calling: the extractors [`DeviceAuth`], [`Department`], [`Admin`] and
//! [`Issuer`], so a handler's signature says who may call it. Each one reads the bearer
//! token, looks it up, applies the token's rate limit and counts what it refused.
//!
//! Three kinds of token, told apart by prefix so a token pasted in the wrong place gets
//! a clear error: `ybd_` device (sync), `ybk_` department (pull), `yba_` admin. A token
//! is looked up by its hash ([`crate::tokens`]), so no comparison ever runs over the
//! secret itself. Revocation is a column read on every request, so it takes effect at
//! once.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use yibiao_model::Schema;
use yibiao_model::schema::DepartmentDef;
use yibiao_sync::DeviceScope;

use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{DeviceRow, ServerStorage};
use crate::tasks;
use crate::tokens::token_hash;

/// A phone, by its device token (`ybd_`), rate-limited per token. Devices call only the
/// sync endpoint, so a refused device request counts as a failed exchange. What the hub
/// needs ([`yibiao_sync::DeviceAuth`]: key, scope and the identity the server vouches
/// for) is completed by the sync route once the token is bound to its phone.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    /// The device's scope.
    pub scope: DeviceScope,
    /// The device's row (its bound phone, if any).
    pub row: DeviceRow,
}

/// A department, by its token (`ybk_`), with its view from the schema; rate-limited per
/// token.
#[derive(Debug, Clone)]
pub struct Department(pub DepartmentDef);

/// A department opening an NDJSON or CSV stream: authenticated and rate-limited like
/// [`Department`], with its token's key, by which its open streams are counted.
#[derive(Debug, Clone)]
pub struct DepartmentStream {
    /// Its view.
    pub dept: DepartmentDef,
    /// The token's key.
    pub key: String,
}

/// The operator, by the admin token (`yba_`).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// Who may read `/metrics`: the admin token, or the `metrics_token` of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct MetricsReader;

/// Who issues tasks or asks for reports: the admin token is the township, a department
/// token its department (rate-limited like its pulls).
#[derive(Debug, Clone)]
pub struct Issuer(pub tasks::Issuer);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let storage = state.storage.clone();
        let headers = parts.headers.clone();
        let (seen, now) = (state.last_seen.clone(), state.clock.now_ms());
        let found = blocking(move || {
            let (scope, row) = device(storage.as_ref(), &headers)?;
            // At most one write a minute per device: an indication for people, so a
            // failed write is logged, never a refused sync.
            if seen.due(&row.key, now)
                && let Err(e) = storage.touch_device(&row.key, now)
            {
                tracing::warn!(device = %row.key, error = %e, "last-seen not recorded");
            }
            Ok((scope, row))
        })
        .await
        .and_then(|(scope, row)| {
            rate_limit(state, &row.key)?;
            Ok(DeviceAuth { scope, row })
        });
        if found.is_err() {
            state.metrics.sync_errors.fetch_add(1, Relaxed);
        }
        found
    }
}

impl FromRequestParts<AppState> for Department {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let DepartmentStream { dept, .. } =
            DepartmentStream::from_request_parts(parts, state).await?;
        Ok(Department(dept))
    }
}

impl FromRequestParts<AppState> for DepartmentStream {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let s = state.clone();
        let headers = parts.headers.clone();
        let (dept, key) =
            blocking(move || department(s.storage.as_ref(), s.hub.schema(), &headers)).await?;
        rate_limit(state, &key)?;
        Ok(DepartmentStream { dept, key })
    }
}

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers, "admin or metrics")?;
        if let Some(metrics) = &state.config.metrics_token
            && token_hash(&token) == token_hash(metrics)
        {
            return Ok(MetricsReader);
        }
        Admin::from_request_parts(parts, state).await?;
        Ok(MetricsReader)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let storage = state.storage.clone();
        let headers = parts.headers.clone();
        blocking(move || admin(storage.as_ref(), &headers)).await?;
        Ok(Admin)
    }
}

impl FromRequestParts<AppState> for Issuer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers, "department or admin")?;
        if token.starts_with("yba_") {
            Admin::from_request_parts(parts, state).await?;
            return Ok(Issuer(tasks::Issuer::Township));
        }
        if token.starts_with("ybk_") {
            let Department(dept) = Department::from_request_parts(parts, state).await?;
            return Ok(Issuer(tasks::Issuer::Department(dept)));
        }
        Err(ApiError::Unauthorized(
            "tasks and reports take a department token (ybk_) or the admin token (yba_)".into(),
        ))
    }
}

/// Takes one request from `key`'s bucket, or refuses with the seconds to wait.
fn rate_limit(state: &AppState, key: &str) -> Result<(), ApiError> {
    state.limiter.check(key).map_err(|secs| {
        state.metrics.rate_limited.fetch_add(1, Relaxed);
        ApiError::RateLimited(secs)
    })
}

/// Token lookups read the database: off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

fn lookup_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("token lookup failed", e)
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap, kind: &str) -> Result<String, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "missing `Authorization: Bearer <{kind} token>` header"
            ))
        })?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "the Authorization header must be `Bearer <{kind} token>`"
            ))
        })?
        .trim();
    Ok(token.to_owned())
}

/// The device behind the request's bearer token, and its scope.
pub fn device(
    storage: &dyn ServerStorage,
    headers: &HeaderMap,
) -> Result<(DeviceScope, DeviceRow), ApiError> {
    let token = bearer(headers, "device")?;
    if !token.starts_with("ybd_") {
        return Err(ApiError::Unauthorized(
            "this is not a device token (device tokens start with ybd_)".into(),
        ));
    }
    let row = storage
        .device_by_token_hash(&token_hash(&token))
        .map_err(lookup_failed)?
        .ok_or_else(|| ApiError::Unauthorized("unknown device token".into()))?;
    if row.revoked_ms.is_some() {
        return Err(ApiError::Unauthorized(
            "this device token was revoked; enrol the phone again".into(),
        ));
    }
    let scope = match &row.village {
        Some(v) => DeviceScope::Village(v.clone()),
        None => DeviceScope::Township,
    };
    Ok((scope, row))
}

/// The department behind the request's bearer token, with its view from the schema,
/// and the token's key (rate limits are per token).
pub fn department(
    storage: &dyn ServerStorage,
    schema: &Schema,
    headers: &HeaderMap,
) -> Result<(DepartmentDef, String), ApiError> {
    let token = bearer(headers, "department")?;
    if !token.starts_with("ybk_") {
        return Err(ApiError::Unauthorized(
            "this is not a department token (department tokens start with ybk_)".into(),
        ));
    }
    let row = storage
        .department_by_token_hash(&token_hash(&token))
        .map_err(lookup_failed)?
        .ok_or_else(|| ApiError::Unauthorized("unknown department token".into()))?;
    if row.revoked_ms.is_some() {
        return Err(ApiError::Unauthorized(
            "this department token was revoked; ask the operator for a new one".into(),
        ));
    }
    let dept = schema.department(&row.department).cloned().ok_or_else(|| {
        ApiError::Forbidden(format!(
            "department `{}` is no longer in the schema",
            row.department
        ))
    })?;
    Ok((dept, row.key))
}

/// Succeeds only for the admin token.
pub fn admin(storage: &dyn ServerStorage, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers, "admin")?;
    if !token.starts_with("yba_") {
        return Err(ApiError::Unauthorized(
            "this is not the admin token (it starts with yba_)".into(),
        ));
    }
    if storage
        .is_admin_token(&token_hash(&token))
        .map_err(lookup_failed)?
    {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong admin token".into()))
    }
}
