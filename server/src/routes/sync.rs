//! `POST /v1/sync`: one sync exchange (see the protocol in ARCHITECTURE.md).
//!
//! The [`DeviceAuth`] extractor authenticates and rate-limits; the handler decodes
//! (version byte first), binds the token to its phone and runs the hub on the blocking
//! pool; everything else is core's.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yibiao_sync::hub::ExchangeStats;
use yibiao_sync::protocol::{SyncRequest, SyncResponse};

use yibiao_model::DeviceId;

use crate::accounts::{self, AccountError};
use crate::auth::DeviceAuth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Media type of sync bodies.
pub const SYNC_CONTENT_TYPE: &str = "application/x-yibiao-sync";

/// The sync route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync))
}

/// One sync exchange (binary: "YBS", version byte, zstd(postcard)); see ARCHITECTURE.md.
#[utoipa::path(post, path = "/v1/sync", tag = "phones", security(("device" = [])),
    request_body(content = Vec<u8>, content_type = "application/x-yibiao-sync"),
    responses(
        (status = 200, description = "the exchange's answer", body = Vec<u8>, content_type = "application/x-yibiao-sync"),
        (status = 400, description = "not a sync message, or a damaged one", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked device token, or another phone's", body = ErrorBody),
        (status = 413, description = "larger than the server's body limit", body = ErrorBody),
        (status = 426, description = "another protocol version: update the app", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
        (status = 500, description = "server failure; nothing of the page was committed", body = ErrorBody),
    ))]
pub async fn sync(device: DeviceAuth, State(state): State<AppState>, body: Body) -> Response {
    let metrics = state.metrics.clone();
    match exchange(device, state, body).await {
        Ok(response) => response,
        Err(e) => {
            metrics.sync_errors.fetch_add(1, Relaxed);
            e.into_response()
        }
    }
}

async fn exchange(device: DeviceAuth, state: AppState, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    // Read only now, after the device token passed, and at most `max_body_bytes`.
    let body = read_body(body, state.config.max_body_bytes).await?;
    // The magic and version byte come first, so an old app is told to update;
    // decompressing and decoding are CPU work: on the blocking pool.
    let request = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || SyncRequest::decode(&body)).await??
    };
    let auth = bind_phone(&state, device, &request.device).await?;
    let hub = state.hub.clone();
    // Logged as the phone's own device id, the one its changes and `device list` show.
    let key = auth.identity.device.to_string();
    let pushed = request.push.len();
    let (response, stats) =
        tokio::task::spawn_blocking(move || hub.handle(&auth, &request)).await??;
    let out = response.encode();
    record(&state, &response, &stats, body.len(), out.len(), started);
    tracing::info!(
        device = %key, pushed, accepted = stats.accepted, refused = stats.refused, duplicates = stats.duplicates,
        sent = stats.sent, more = response.more, bytes_in = body.len(), bytes_out = out.len(),
        ms = started.elapsed().as_millis() as u64, "sync"
    );
    Ok(([(header::CONTENT_TYPE, SYNC_CONTENT_TYPE)], out).into_response())
}

/// The body, refused (`413`) as soon as it passes `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::TooLarge(format!(
            "sync body is larger than the server's limit of {limit} bytes"
        ))
    };
    // A declared length over the limit is refused from the header, unread.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the body: {e}"
        ))),
    }
}

/// A token belongs to one phone: the enrolment (or the first sync of a CLI token) binds
/// it. Returns what the hub needs: the device's key and scope, and the phone and cadres
/// the server vouches for ([`accounts::identity`]).
async fn bind_phone(
    state: &AppState,
    device: DeviceAuth,
    phone: &str,
) -> Result<yibiao_sync::DeviceAuth, ApiError> {
    if let Some(bound) = &device.row.phone_device
        && bound != phone
    {
        return Err(ApiError::Unauthorized(format!(
            "this token belongs to another phone ({bound}); enrol this phone with its own code"
        )));
    }
    let storage = state.storage.clone();
    let phone = phone.to_owned();
    tokio::task::spawn_blocking(move || {
        let DeviceAuth { scope, row } = device;
        let id = DeviceId::new(phone.as_str()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if row.phone_device.is_none() {
            // A reserved id or another live phone's: this token may not speak as it.
            accounts::bind_phone(storage.as_ref(), &row.key, &phone).map_err(|e| match e {
                AccountError::Invalid(m) | AccountError::Conflict(m) => {
                    ApiError::Unauthorized(m.render(yibiao_model::messages::Lang::En))
                }
                other => ApiError::from(other),
            })?;
        }
        let phone = id;
        let identity = accounts::identity(storage.as_ref(), &row, phone)?;
        Ok(yibiao_sync::DeviceAuth {
            key: row.key,
            scope,
            identity,
        })
    })
    .await?
}

/// The exchange's figures, for `/metrics`.
fn record(
    state: &AppState,
    response: &SyncResponse,
    stats: &ExchangeStats,
    bytes_in: usize,
    bytes_out: usize,
    started: Instant,
) {
    let m = &state.metrics;
    m.syncs.fetch_add(1, Relaxed);
    m.sync_bytes_in.fetch_add(bytes_in as u64, Relaxed);
    m.sync_bytes_out.fetch_add(bytes_out as u64, Relaxed);
    m.docs_accepted.fetch_add(stats.accepted as u64, Relaxed);
    m.docs_sent.fetch_add(stats.sent as u64, Relaxed);
    if response.more {
        m.pages_with_more.fetch_add(1, Relaxed);
    }
    for r in &response.refused {
        m.refused(&format!("{:?}", r.code));
    }
    m.sync_seconds.observe(started.elapsed().as_secs_f64());
}
