//! Device tokens: random, shown once, stored as SHA-256 hashes.
//!
//! A token is looked up by its hash, so the comparison never runs over the secret itself
//! and a leaked database does not leak usable tokens. Revocation is a column checked on
//! every request: it takes effect at once. (Accounts and enrolment codes come later.)

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use yibiao_core::sync::{DeviceAuth, DeviceScope};

use crate::error::ApiError;
use crate::storage::SqliteStorage;

/// A new random device token: 32 bytes from the operating system's CSPRNG.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("ybd_{}", hex::encode(bytes)))
}

/// SHA-256 of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The device behind the request's bearer token.
pub fn device_from_headers(
    storage: &SqliteStorage,
    headers: &HeaderMap,
) -> Result<DeviceAuth, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer <device token>` header".into())
        })?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the Authorization header must be `Bearer <device token>`".into(),
            )
        })?
        .trim();
    let row = storage
        .device_by_token_hash(&token_hash(token))
        .map_err(|e| {
            tracing::error!(error = %e, "device lookup failed");
            ApiError::Internal
        })?
        .ok_or_else(|| ApiError::Unauthorized("unknown device token".into()))?;
    if row.revoked_ms.is_some() {
        return Err(ApiError::Unauthorized(
            "this device token was revoked; enrol the phone again".into(),
        ));
    }
    Ok(DeviceAuth {
        key: row.key,
        scope: match row.village {
            Some(v) => DeviceScope::Village(v),
            None => DeviceScope::Township,
        },
    })
}
