//! `POST /v1/enrol`: a phone redeems a one-time code for its device token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::Deserialize;

use super::{blocking, json_body};
use crate::AppState;
use crate::accounts::{self, Enrolled};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolRequest {
    code: String,
    device: String,
}

/// Redeems an enrolment code.
pub async fn enrol(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Enrolled>, ApiError> {
    let req: EnrolRequest = json_body(body)?;
    // One global bucket: guessing codes must stay hopeless however many clients try.
    state.limiter_enrol.check("enrol").map_err(|s| {
        state
            .metrics
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::RateLimited(s)
    })?;
    let storage = state.storage.clone();
    let enrolled =
        blocking(move || Ok(accounts::enrol(storage.as_ref(), &req.code, &req.device)?)).await?;
    tracing::info!(device = %enrolled.device, cadre = %enrolled.cadre, "phone enrolled");
    Ok(Json(enrolled))
}
