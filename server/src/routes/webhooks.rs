//! `/v1/admin/webhooks`: departments' endpoints and their delivery log, for the admin
//! token (ADR 0011). The CLI (`yibiao-server webhook ...`) does the same through the same
//! functions of [`crate::webhooks`]; a running server's deliverer picks a new endpoint up
//! within a second.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::AccountError;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::params::{JsonBody, Limit, Query};
use crate::state::AppState;
use crate::storage::{DeliveryRow, WebhookStorage};
use crate::webhooks;

/// The webhook routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(remove))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

/// Runs `f` on the blocking pool with the state's webhook storage.
async fn run<T: Send + 'static>(
    state: AppState,
    f: impl FnOnce(&dyn WebhookStorage, &AppState) -> Result<T, AccountError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(store) = state.webhooks.clone() else {
        return Err(ApiError::NotFound("this server keeps no webhooks".into()));
    };
    Ok(tokio::task::spawn_blocking(move || f(store.as_ref(), &state)).await??)
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// The department whose view it gets (a department key of the schema).
    pub department: String,
    /// Where batches are POSTed: https, or http to a loopback host.
    pub url: String,
    /// Allow plain http off loopback (a network you trust); default false.
    #[serde(default)]
    pub allow_http: bool,
}

/// An endpoint as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    /// Its id (`wh_...`).
    pub id: String,
    /// The department whose view it gets.
    pub department: String,
    /// Where batches are POSTed.
    pub url: String,
    /// Registered at, ms since the epoch.
    pub created_ms: i64,
    /// The last feed position queued for it.
    pub cursor: u64,
}

/// A registered endpoint with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The HMAC-SHA256 key of `Yibiao-Signature` (`whsec_...`); give it to the receiving
    /// system's team. It is never shown again.
    pub secret: String,
}

/// Every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhooks {
    /// Oldest first.
    pub webhooks: Vec<Webhook>,
}

fn listed(row: crate::storage::WebhookRow) -> Webhook {
    Webhook {
        id: row.id,
        department: row.department,
        url: row.url,
        created_ms: row.created_ms,
        cursor: row.cursor,
    }
}

/// Register an endpoint for a department's view; its secret is in the answer, once.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "admin", security(("admin" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "registered; the secret is shown this once", body = RegisteredWebhook),
        (status = 400, description = "unknown department, not an http(s) URL, or plain http off loopback", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
    ))]
pub async fn register(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<RegisteredWebhook>), ApiError> {
    let row = run(state, move |store, s| {
        webhooks::register(
            store,
            s.hub.schema(),
            &req.department,
            &req.url,
            req.allow_http,
        )
    })
    .await?;
    let secret = row.secret.clone();
    Ok((
        StatusCode::CREATED,
        Json(RegisteredWebhook {
            webhook: listed(row),
            secret,
        }),
    ))
}

/// List the endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "every endpoint", body = Webhooks),
        (status = 401, description = "not the admin token", body = ErrorBody),
    ))]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Webhooks>, ApiError> {
    let rows = run(state, |store, _| Ok(store.webhooks()?)).await?;
    Ok(Json(Webhooks {
        webhooks: rows.into_iter().map(listed).collect(),
    }))
}

/// Remove an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`wh_...`).")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such endpoint", body = ErrorBody),
    ))]
pub async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    run(state, move |store, _| webhooks::remove(store, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Newest deliveries to list, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Limit,
}

/// An endpoint's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    /// The endpoint.
    pub webhook: String,
    /// Newest first: each batch with its feed positions (the last is the
    /// Idempotency-Key), status (`pending` until a 2xx, then `delivered`), attempts and
    /// the last error met.
    pub deliveries: Vec<DeliveryRow>,
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`wh_...`)."), DeliveriesParams),
    responses(
        (status = 200, description = "the newest deliveries", body = Deliveries),
        (status = 400, description = "a query parameter, named", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such endpoint", body = ErrorBody),
    ))]
pub async fn deliveries(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesParams>,
) -> Result<Json<Deliveries>, ApiError> {
    let webhook = id.clone();
    let deliveries = run(state, move |store, _| {
        webhooks::deliveries(store, &id, q.limit.0)
    })
    .await?;
    Ok(Json(Deliveries {
        webhook,
        deliveries,
    }))
}

/// A delivery queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    /// The endpoint.
    pub webhook: String,
    /// The delivery, pending again: sent with the same body and Idempotency-Key.
    pub delivery: i64,
}

/// Send a delivery again (same body, same Idempotency-Key, a fresh signature).
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "admin", security(("admin" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id (`wh_...`)."),
        ("delivery" = i64, Path, description = "The delivery's number, from its log."),
    ),
    responses(
        (status = 202, description = "queued again", body = Redelivery),
        (status = 400, description = "the delivery number is not a number", body = ErrorBody),
        (status = 401, description = "not the admin token", body = ErrorBody),
        (status = 404, description = "no such endpoint or delivery", body = ErrorBody),
    ))]
pub async fn redeliver(
    _: Admin,
    State(state): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Redelivery>), ApiError> {
    let delivery: i64 = delivery.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "path parameter `delivery`: expected a delivery number, got \"{}\"",
            delivery.chars().take(40).collect::<String>()
        ))
    })?;
    let webhook = id.clone();
    run(state, move |store, _| {
        webhooks::redeliver(store, &id, delivery)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Redelivery { webhook, delivery })))
}
