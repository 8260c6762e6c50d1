//! `POST /v1/enrol`: a phone redeems a one-time code for its device token.

use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{self, Enrolled};
use crate::error::{ApiError, ErrorBody};
use crate::params::JsonBody;
use crate::state::AppState;

/// The enrolment route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enrol))
}

/// A phone's enrolment request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The one-time code, as typed (case, dashes and spaces do not matter).
    pub code: String,
    /// The phone store's device id.
    pub device: String,
}

/// Redeem a one-time enrolment code for a device token.
#[utoipa::path(post, path = "/v1/enrol", tag = "phones",
    request_body = EnrolRequest,
    responses(
        (status = 200, description = "enrolled; the token is shown once", body = Enrolled),
        (status = 400, description = "bad body, or a malformed or reserved device id", body = ErrorBody),
        (status = 401, description = "unknown, used or expired code", body = ErrorBody),
        (status = 409, description = "this device id is already enrolled on another live token", body = ErrorBody),
        (status = 429, description = "too many attempts; wait", body = ErrorBody),
    ))]
pub async fn enrol(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> Result<Json<Enrolled>, ApiError> {
    // One global bucket: guessing codes must stay hopeless however many clients try.
    state.limiter_enrol.check("enrol").map_err(|s| {
        state.metrics.rate_limited.fetch_add(1, Relaxed);
        ApiError::RateLimited(s)
    })?;
    let storage = state.storage.clone();
    let enrolled = tokio::task::spawn_blocking(move || {
        accounts::enrol(storage.as_ref(), &req.code, &req.device)
    })
    .await??;
    tracing::info!(device = %enrolled.device, cadre = %enrolled.cadre, "phone enrolled");
    Ok(Json(enrolled))
}
