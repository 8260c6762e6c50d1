//! `/v1/blobs/{sha256}`: attachments' bytes (ADR 0013). Phones ask how much the server
//! holds (`HEAD`), send chunks at that offset (`PUT`), and fetch on demand (`GET`);
//! departments fetch what their view includes; `GET /v1/blobs/{sha256}/thumbnail` is a
//! small JPEG of a photo for lists.
//!
//! Handlers authorise, check size and type, and call the [`crate::blobs::BlobStore`];
//! who may read a blob is [`access::may_read`] over the records referencing it
//! ([`crate::storage::BlobRefStorage`]), asked by [`attachment`], which the console's
//! attachment routes call too. Every refusal a phone acts on carries a reason code
//! (`blob_offset` with `held`, `blob_hash_mismatch`, `blob_too_large`,
//! `blob_type_refused`, `blob_busy`); a thumbnail's: `blob_not_an_image` (`415`),
//! `blob_image_too_large`, `blob_image_unreadable` (`422`).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yibiao_model::RecordId;
use yibiao_model::messages::Message;

use crate::auth::{Department, DeviceAuth, bearer};
use crate::blobs::access::{self, Reader};
use crate::blobs::thumbnail::{self, ThumbError};
use crate::blobs::{self, BlobError, BlobHash, Held};
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, Query};
use crate::state::AppState;

/// Largest chunk one `PUT` may carry.
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;

/// The blob routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(held, put_chunk, get_blob))
        .routes(routes!(get_thumbnail))
}

/// Where a chunk goes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChunkParams {
    /// Where the chunk starts: what the server holds (`HEAD` says).
    pub offset: u64,
    /// The whole blob's size in bytes.
    pub size: u64,
    /// The type the phone declares (`image/jpeg`); the server checks the content itself.
    pub mime: Option<String>,
}

/// The acknowledgement of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChunkAck {
    /// Bytes the server holds now: where the next chunk starts.
    pub held: u64,
    /// The blob is complete and verified.
    pub complete: bool,
}

fn hash_of(text: &str) -> Result<BlobHash, ApiError> {
    BlobHash::parse(text).map_err(ApiError::NotFound)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

fn store_failed(e: BlobError) -> ApiError {
    ApiError::internal("blob store failed", e)
}

/// How much of the blob the server holds for this device.
#[utoipa::path(head, path = "/v1/blobs/{sha256}", tag = "phones", security(("device" = [])),
    params(("sha256" = String, Path, description = "lowercase hex SHA-256 of the bytes")),
    responses(
        (status = 200, description = "`Upload-Offset`: bytes held (the size when complete); `Upload-Complete: ?1` when complete"),
        (status = 401, description = "no, unknown or revoked device token"),
    ))]
pub async fn held(
    device: DeviceAuth,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    let hash = hash_of(&sha256)?;
    let store = state.blobs.clone();
    let key = device.row.key;
    let held = blocking(move || store.held(&hash, &key).map_err(store_failed)).await?;
    let complete = matches!(held, Held::Complete { .. });
    Ok((
        [
            ("upload-offset", HeaderValue::from(held.bytes())),
            (
                "upload-complete",
                HeaderValue::from_static(if complete { "?1" } else { "?0" }),
            ),
        ],
        (),
    )
        .into_response())
}

/// One chunk of a blob at `offset`; the chunk reaching `size` completes it (hash checked).
#[utoipa::path(put, path = "/v1/blobs/{sha256}", tag = "phones", security(("device" = [])),
    params(("sha256" = String, Path, description = "lowercase hex SHA-256 of the bytes"), ChunkParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "the chunk is stored (or the blob was complete already)", body = ChunkAck),
        (status = 400, description = "refused: `blob_offset` (continue at `params.held`), `blob_hash_mismatch` (start again), `blob_too_large`, `blob_type_refused`, `blob_busy`", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked device token", body = ErrorBody),
        (status = 413, description = "a chunk over 256 KiB", body = ErrorBody),
    ))]
pub async fn put_chunk(
    device: DeviceAuth,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    Query(q): Query<ChunkParams>,
    body: Body,
) -> Result<Json<ChunkAck>, ApiError> {
    let hash = hash_of(&sha256)?;
    let limits = state.config.blobs.clone();
    if q.size > limits.max_bytes {
        return Err(ApiError::Refused(
            Message::new("blob_too_large")
                .with("size", q.size.to_string())
                .with("max", limits.max_bytes.to_string()),
        ));
    }
    let chunk = read_chunk(body).await?;
    let store = state.blobs.clone();
    let key = device.row.key;
    let ack = blocking(move || {
        let held = store.held(&hash, &key).map_err(store_failed)?;
        // A new upload: within the device's budget of unfinished ones, and of a type
        // told by its first bytes.
        if held == (Held::Partial { held: 0 }) && q.offset == 0 {
            if store.partials_of(&key).map_err(store_failed)? >= limits.max_partials_per_device {
                return Err(ApiError::Refused(
                    Message::new("blob_busy")
                        .with("max", limits.max_partials_per_device.to_string()),
                ));
            }
            if blobs::sniff(&chunk).is_none() {
                return Err(ApiError::Refused(
                    Message::new("blob_type_refused")
                        .with("allowed", blobs::ALLOWED_TYPES)
                        .with("got", q.mime.as_deref().unwrap_or("?")),
                ));
            }
        }
        let held = store
            .append(&hash, &key, q.offset, q.size, &chunk)
            .map_err(|e| match e {
                BlobError::Offset { held, .. } => {
                    ApiError::Refused(Message::new("blob_offset").with("held", held.to_string()))
                }
                BlobError::HashMismatch(_) => ApiError::Refused(Message::new("blob_hash_mismatch")),
                BlobError::Overrun { .. } => ApiError::BadRequest(e.to_string()),
                BlobError::Io(_) => store_failed(e),
            })?;
        Ok(ChunkAck {
            held: held.bytes(),
            complete: matches!(held, Held::Complete { .. }),
        })
    })
    .await?;
    Ok(Json(ack))
}

/// The chunk, refused (`413`) past [`MAX_CHUNK_BYTES`].
async fn read_chunk(body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("a chunk is at most {MAX_CHUNK_BYTES} bytes"));
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_CHUNK_BYTES))
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the chunk: {e}"
        ))),
    }
}

/// Who reads a blob through the API: a phone (its village scope) or a department (its
/// view); the rule itself is [`access::may_read`].
pub struct BlobReader(pub Reader);

impl FromRequestParts<AppState> for BlobReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers, "device or department")?;
        if token.starts_with("ybk_") {
            let Department(dept) = Department::from_request_parts(parts, state).await?;
            return Ok(BlobReader(Reader::View(dept)));
        }
        let device = DeviceAuth::from_request_parts(parts, state).await?;
        Ok(BlobReader(Reader::Device(device.scope)))
    }
}

/// What of an attachment is asked: its bytes or its thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    /// The bytes as uploaded, with their type by content.
    Original,
    /// A JPEG at most 320 px on its long side ([`crate::blobs::thumbnail`]).
    Thumbnail,
}

/// The answer to a request for blob `hash` by `reader` (through `record` only, when
/// given): the scope rule first ([`access::may_read`]; outside it, `404` as for no such
/// blob), then the bytes or the thumbnail. Shared by the API and the console.
pub async fn attachment(
    state: &AppState,
    hash: BlobHash,
    reader: Reader,
    record: Option<RecordId>,
    rendition: Rendition,
) -> Result<Response, ApiError> {
    let not_found = {
        let hash = hash.clone();
        move || ApiError::NotFound(format!("no attachment {hash} in your scope"))
    };
    let (st, h, missing) = (state.clone(), hash.clone(), not_found.clone());
    let original = blocking(move || {
        let allowed = access::may_read(st.storage.as_ref(), &h, &reader, record)
            .map_err(|e| ApiError::internal("blob references", e))?;
        if !allowed {
            return Err(missing());
        }
        if rendition == Rendition::Thumbnail {
            return Ok(None);
        }
        st.blobs
            .read(&h)
            .map_err(store_failed)?
            .ok_or_else(missing)
            .map(Some)
    })
    .await?;
    let (mime, bytes): (&str, Body) = match original {
        Some(bytes) => (
            blobs::sniff(&bytes).unwrap_or("application/octet-stream"),
            bytes.into(),
        ),
        None => {
            let thumb = state
                .thumbnails
                .of(state.blobs.clone(), &hash)
                .await
                .map_err(|e| thumb_refused(e, &hash, not_found))?;
            ("image/jpeg", Bytes::from_owner(thumb).into())
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

/// Where a person opens attachment `sha256` of `record`: the console's route
/// (`console::pages::attachments`), behind its sign-in and its scope rule. Relative;
/// exports put the server's address before it. Here, beside [`attachment`], so the
/// exports (routes) and the console's pages share it without depending on each other.
pub fn console_href(record: &str, sha256: &str) -> String {
    format!("/records/{record}/attachments/{sha256}")
}

/// A thumbnail refusal as the envelope says it.
fn thumb_refused(e: ThumbError, hash: &BlobHash, not_found: impl Fn() -> ApiError) -> ApiError {
    match e {
        ThumbError::NotAnImage { mime } => {
            ApiError::Unsupported(Message::new("blob_not_an_image").with("got", mime))
        }
        ThumbError::TooLarge { width, height } => {
            tracing::warn!(blob = %hash, width, height, "thumbnail refused: over the decoding limits");
            ApiError::Unprocessable(
                Message::new("blob_image_too_large")
                    .with("width", width.to_string())
                    .with("height", height.to_string())
                    .with("max_side", thumbnail::MAX_DECODE_SIDE.to_string())
                    .with(
                        "max_mib",
                        (thumbnail::MAX_DECODE_BYTES / (1024 * 1024)).to_string(),
                    ),
            )
        }
        ThumbError::Unreadable(why) => {
            tracing::info!(blob = %hash, "thumbnail refused: {why}");
            ApiError::Unprocessable(Message::new("blob_image_unreadable"))
        }
        ThumbError::Missing => not_found(),
        ThumbError::Failed(why) => ApiError::internal("thumbnail", why),
    }
}

/// The bytes of a blob some record in the caller's scope references (the field in a
/// department's view); `404` otherwise, the same as for no such blob.
#[utoipa::path(get, path = "/v1/blobs/{sha256}", tag = "records", security(("device" = []), ("department" = [])),
    params(("sha256" = String, Path, description = "lowercase hex SHA-256 of the bytes"), NoParams),
    responses(
        (status = 200, description = "the bytes, with their type by content", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "no, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "no blob of that name in the caller's scope", body = ErrorBody),
    ))]
pub async fn get_blob(
    BlobReader(reader): BlobReader,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    Query(NoParams {}): Query<NoParams>,
) -> Result<Response, ApiError> {
    let hash = hash_of(&sha256)?;
    attachment(&state, hash, reader, None, Rendition::Original).await
}

/// A JPEG thumbnail (at most 320 px on its long side) of an image blob, under the same
/// scope rule as the blob itself.
#[utoipa::path(get, path = "/v1/blobs/{sha256}/thumbnail", tag = "records", security(("device" = []), ("department" = [])),
    params(("sha256" = String, Path, description = "lowercase hex SHA-256 of the original's bytes"), NoParams),
    responses(
        (status = 200, description = "a JPEG at most 320 px on its long side", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 401, description = "no, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "no blob of that name in the caller's scope", body = ErrorBody),
        (status = 415, description = "`blob_not_an_image`: the blob is not a photo (a PDF)", body = ErrorBody),
        (status = 422, description = "`blob_image_too_large` (over the decoding limits, with the image's size) or `blob_image_unreadable`", body = ErrorBody),
    ))]
pub async fn get_thumbnail(
    BlobReader(reader): BlobReader,
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    Query(NoParams {}): Query<NoParams>,
) -> Result<Response, ApiError> {
    let hash = hash_of(&sha256)?;
    attachment(&state, hash, reader, None, Rendition::Thumbnail).await
}
