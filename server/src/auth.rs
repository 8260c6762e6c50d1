//! Tokens: random, shown once, stored as SHA-256 hashes, looked up by hash.
//!
//! Three kinds, told apart by prefix so a token pasted in the wrong place gets a clear
//! error: `ybd_` device (sync), `ybk_` department (pull), `yba_` admin. Looking a token up
//! by its hash means no comparison ever runs over the secret itself, and a leaked
//! database leaks no usable token. Revocation is a column read on every request, so it
//! takes effect at once.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use yibiao_model::Schema;
use yibiao_model::schema::DepartmentDef;
use yibiao_sync::{DeviceAuth, DeviceScope};

use crate::error::ApiError;
use crate::storage::{DeviceRow, ServerStorage};

/// 32 bytes from the operating system's CSPRNG.
pub fn new_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// SHA-256 of a token or code.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "token lookup failed");
    ApiError::Internal
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

/// The device behind the request's bearer token.
pub fn device(
    storage: &dyn ServerStorage,
    headers: &HeaderMap,
) -> Result<(DeviceAuth, DeviceRow), ApiError> {
    let token = bearer(headers, "device")?;
    if !token.starts_with("ybd_") {
        return Err(ApiError::Unauthorized(
            "this is not a device token (device tokens start with ybd_)".into(),
        ));
    }
    let row = storage
        .device_by_token_hash(&token_hash(&token))
        .map_err(internal)?
        .ok_or_else(|| ApiError::Unauthorized("unknown device token".into()))?;
    if row.revoked_ms.is_some() {
        return Err(ApiError::Unauthorized(
            "this device token was revoked; enrol the phone again".into(),
        ));
    }
    let auth = DeviceAuth {
        key: row.key.clone(),
        scope: match &row.village {
            Some(v) => DeviceScope::Village(v.clone()),
            None => DeviceScope::Township,
        },
    };
    Ok((auth, row))
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
        .map_err(internal)?
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
        .map_err(internal)?
    {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong admin token".into()))
    }
}
