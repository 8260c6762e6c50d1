//! `POST /v1/enrol`: a phone redeems a one-time code for its device token.

use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{self, Enrolled};
use crate::error::{ApiError, ErrorBody};
use crate::limits::{ClientAddr, RateLimiter};
use crate::params::JsonBody;
use crate::state::AppState;

/// An enrolment attempt allowed by its client address's bucket, then by the global one,
/// checked before the body is read. The address comes first, so one client guessing
/// codes empties its own bucket, not everybody's; the global bucket keeps guessing
/// hopeless however many addresses try.
#[derive(Debug, Clone, Copy)]
pub struct EnrolAttempt;

impl FromRequestParts<AppState> for EnrolAttempt {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Without a connection address (in-process tests), every caller is one client.
        let address = parts
            .extensions
            .get::<ConnectInfo<ClientAddr>>()
            .map_or_else(|| "local".to_owned(), |c| c.0.0.ip().to_string());
        limited(state, &state.guards.enrol_per_address, &address)?;
        limited(state, &state.limiter_enrol, "enrol")?;
        Ok(EnrolAttempt)
    }
}

/// Takes one attempt from `key`'s bucket of `limiter`.
fn limited(state: &AppState, limiter: &RateLimiter, key: &str) -> Result<(), ApiError> {
    limiter.check(key).map_err(|s| {
        state.metrics.rate_limited.fetch_add(1, Relaxed);
        ApiError::RateLimited(s)
    })
}

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
        (status = 429, description = "too many attempts from this address, for this code, or in all; wait", body = ErrorBody),
    ))]
pub async fn enrol(
    _: EnrolAttempt,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> Result<Json<Enrolled>, ApiError> {
    // Hammering one code (from many addresses) is bounded by the code's own bucket.
    let code_key = accounts::normalise_code(&req.code);
    limited(&state, &state.guards.enrol_per_code, &code_key)?;
    let storage = state.storage.clone();
    let enrolled = tokio::task::spawn_blocking(move || {
        accounts::enrol(storage.as_ref(), &req.code, &req.device)
    })
    .await??;
    tracing::info!(device = %enrolled.device, cadre = %enrolled.cadre, "phone enrolled");
    Ok(Json(enrolled))
}
