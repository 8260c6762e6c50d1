//! HTTP routes, one module per resource, each with its own router; [`api`] merges them
//! with their OpenAPI description and [`app`] serves them.

pub mod admin;
pub mod blobs;
pub mod enrol;
pub mod findings;
pub mod health;
pub mod openapi;
pub mod records;
pub mod sync;
pub mod tasks;
pub mod webhooks;

use std::time::Duration;

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::params::JsonLimit;
use crate::state::AppState;

/// Every route with its description: the one list of what the server answers.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::router())
        .merge(openapi::router())
        .merge(sync::router())
        .merge(blobs::router())
        .merge(enrol::router())
        .merge(records::router())
        .merge(tasks::router())
        .merge(findings::router())
        .merge(admin::router())
        .merge(webhooks::router())
}

/// The router: [`api`] with the fallback, body limit, the limit of requests in flight,
/// timeout and tracing. The body limit is the JSON routes' (`max_json_bytes`); `/v1/sync`
/// reads its own body up to `max_body_bytes` once the device token passed.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `pages` (the web console, `crate::app`) merged in, under the same limits.
pub fn app_with(state: AppState, pages: Router<AppState>) -> Router {
    let limit = state.config.max_json_bytes;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let (router, _) = api().split_for_parts();
    router
        .merge(pages)
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /openapi.json".into()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(format!(
                "this endpoint does not take {method}; see /openapi.json"
            ))
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(JsonLimit(limit)))
        .layer(middleware::from_fn_with_state(state.clone(), in_flight))
        .layer(middleware::from_fn(crate::error::with_language))
        .layer(middleware::from_fn_with_state(timeout, deadline))
        .layer(compression())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// gzip or brotli, as the client accepts, on pages, CSS, JSON, NDJSON and CSV; never on
/// `/v1/sync` (its body is zstd already) nor on XLSX (a zip already).
fn compression() -> CompressionLayer<impl Predicate> {
    let when = DefaultPredicate::new()
        .and(NotForContentType::const_new(sync::SYNC_CONTENT_TYPE))
        .and(NotForContentType::const_new(
            "application/vnd.openxmlformats",
        ));
    CompressionLayer::new().compress_when(when)
}

/// `request_timeout_secs` per request until its response starts: past it, `408` in the
/// error envelope (tower-http's timeout answers with an empty body).
async fn deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(format!(
            "the request took longer than {} s; retry",
            timeout.as_secs()
        ))
        .into_response(),
    }
}

/// At most `max_in_flight` requests are handled at once; the next is answered `503`
/// at once rather than queued behind them (a queue is where a slow attack hides).
async fn in_flight(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.guards.in_flight.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(_) => {
            state.metrics.rate_limited.fetch_add(1, Relaxed);
            ApiError::Busy(format!(
                "the server is handling {} requests; retry shortly",
                state.config.max_in_flight
            ))
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;

    use super::{compression, sync};

    async fn encoding_of(content_type: &'static str, accept: &str) -> Option<String> {
        let app = Router::new()
            .fallback(
                move || async move { ([(header::CONTENT_TYPE, content_type)], "a".repeat(4096)) },
            )
            .layer(compression());
        let req = Request::get("/x")
            .header(header::ACCEPT_ENCODING, accept)
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        res.headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn pages_and_reads_are_compressed_but_sync_and_xlsx_bodies_are_not() {
        for kind in [
            "text/html; charset=utf-8",
            "text/css",
            "application/json",
            "text/csv",
        ] {
            assert_eq!(
                encoding_of(kind, "gzip").await.as_deref(),
                Some("gzip"),
                "{kind}"
            );
            assert_eq!(
                encoding_of(kind, "br").await.as_deref(),
                Some("br"),
                "{kind}"
            );
        }
        assert_eq!(encoding_of("text/html", "identity").await, None);
        assert_eq!(encoding_of(sync::SYNC_CONTENT_TYPE, "gzip, br").await, None);
        assert_eq!(
            encoding_of(super::records::xlsx::XLSX_TYPE, "gzip, br").await,
            None
        );
    }
}
