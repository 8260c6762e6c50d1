//! A record's photos and files in the console, under the staff member's own session:
//! `GET /records/{id}/attachments/{sha256}` (the file as uploaded) and
//! `GET /records/{id}/attachments/{sha256}/thumbnail` (a JPEG of at most 320 px, what
//! the record page shows).
//!
//! Who may open one is the rule of every door to a blob, [`crate::blobs::access`], asked
//! with the view the console gives the user (a department clerk the department's view,
//! township staff every field of every village) through the record the link names; the
//! bytes and the thumbnail come from [`crate::routes::blobs::attachment`], the API's own
//! answer. These links are what exports carry ([`crate::routes::blobs::console_href`]), so a clerk who opens one from
//! Excel signs in first and is shown only what the console would show; no token is ever
//! put in a URL.

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use yibiao_model::RecordId;
use yibiao_model::messages::Lang as MsgLang;

use super::super::session::ConsoleUser;
use super::super::{PageError, view_of};
use crate::blobs::BlobHash;
use crate::blobs::access::Reader;
use crate::error::ApiError;
use crate::routes::blobs::{Rendition, attachment};
use crate::state::AppState;

fn not_found() -> PageError {
    PageError::not_found("没有这个附件。", "No such attachment.")
}

/// An API refusal as a console page: a coded one worded in both languages.
fn page_error(e: ApiError) -> PageError {
    let coded = |status, m: &yibiao_model::messages::Message| PageError::Page {
        status,
        zh: m.render(MsgLang::Zh),
        en: m.render(MsgLang::En),
    };
    match e {
        ApiError::NotFound(_) => not_found(),
        ApiError::Unsupported(m) => coded(StatusCode::UNSUPPORTED_MEDIA_TYPE, &m),
        ApiError::Unprocessable(m) => coded(StatusCode::UNPROCESSABLE_ENTITY, &m),
        other => PageError::internal("attachment", other),
    }
}

async fn serve(
    user: ConsoleUser,
    state: AppState,
    (id, sha256): (String, String),
    rendition: Rendition,
) -> Result<Response, PageError> {
    let id = RecordId::from_str(&id).map_err(|_| not_found())?;
    let hash = BlobHash::parse(&sha256).map_err(|_| not_found())?;
    let view = view_of(state.hub.schema(), &user.scope).ok_or_else(|| {
        PageError::forbidden(
            "本账号的部门不在当前表单定义中。",
            "This account's department is not in the schema.",
        )
    })?;
    attachment(&state, hash, Reader::View(view), Some(id), rendition)
        .await
        .map_err(page_error)
}

/// `GET /records/{id}/attachments/{sha256}`: the file as uploaded.
pub async fn original(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
) -> Result<Response, PageError> {
    serve(user, state, path, Rendition::Original).await
}

/// `GET /records/{id}/attachments/{sha256}/thumbnail`: its thumbnail.
pub async fn thumbnail(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
) -> Result<Response, PageError> {
    serve(user, state, path, Rendition::Thumbnail).await
}
