//! `GET /openapi.json`: the API description, generated from the handlers' own
//! annotations and types by utoipa as [`super::api`] merges the routers, so the
//! document and the router are built from the same list and cannot drift.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{self, InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The route of the document itself.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi))
}

/// What the routers do not say: title, version, the three bearer schemes.
pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("yibiao server")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Phones sync here; departments pull merged records here.",
                ))
                .build(),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, what) in [
        ("device", "device token (ybd_...)"),
        ("department", "department token (ybk_...)"),
        ("admin", "admin token (yba_...)"),
    ] {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(what.to_owned());
        components.add_security_scheme(name, SecurityScheme::Http(http));
    }
    doc
}

/// The OpenAPI 3.1 document of every route [`crate::app`] serves.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| super::api().into_openapi())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operator",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> Json<&'static openapi::OpenApi> {
    Json(document())
}
