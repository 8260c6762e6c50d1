//! Typed request input: query strings into parameter structs, JSON bodies into request
//! structs, each refusal naming what is wrong (the conversions are in [`crate::error`]).
//!
//! [`Query`] is axum's `Query` plus one check axum does not make: a parameter the
//! endpoint does not take is refused with the list of those it does. That list comes
//! from the struct itself (its [`IntoParams`], which also writes the OpenAPI parameters),
//! so it cannot drift. Values that need a message of their own ([`Limit`], [`Flag`],
//! [`Cursor`], [`After`]) are newtypes whose deserializer says what it expected.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;
use yibiao_model::RecordId;

use crate::error::ApiError;

/// Largest page of the JSON and feed endpoints.
pub const MAX_LIMIT: usize = 1000;

/// A typed query string; refuses unknown parameters and bad values with a clear 400.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + IntoParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let known: Vec<String> = T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| p.name)
            .collect();
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)?;
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !known.contains(k)) {
            return Err(ApiError::unknown_query_parameter(name, &known));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::try_from_uri(&parts.uri)?;
        Ok(Query(value))
    }
}

/// An endpoint that takes no query parameters.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoParams {}

/// A JSON request body (any content type), refused with what serde found wrong.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        Ok(JsonBody(serde_json::from_slice(&bytes)?))
    }
}

/// A JSON request body that may be left empty (then `T::default()`).
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        Ok(OptionalJsonBody(serde_json::from_slice(&bytes)?))
    }
}

/// The JSON routes' body limit, put in each request's extensions by [`crate::app`], so a
/// body declared larger is refused from its `Content-Length` without being read.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(JsonLimit(limit)) = req.extensions().get::<JsonLimit>().copied()
        && axum::body::HttpBody::size_hint(req.body()).lower() > limit as u64
    {
        return Err(ApiError::TooLarge(format!(
            "request body is too large (more than {limit} bytes)"
        )));
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| ApiError::from_body(e, || "request body is too large".into()))
}

/// Deserializes a query value from its text and `parse`s it; the error is `parse`'s.
fn from_text<'de, D, T>(d: D, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    parse(&text).map_err(de::Error::custom)
}

/// A page size, 1 to [`MAX_LIMIT`]; 100 when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub usize);

impl Default for Limit {
    fn default() -> Self {
        Limit(100)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d, |v| match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Limit(n)),
            _ => Err(format!(
                "expected a whole number from 1 to {MAX_LIMIT}, got \"{v}\""
            )),
        })
    }
}

/// `true`/`1` or `false`/`0`; false when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d, |v| match v {
            "false" | "0" => Ok(Flag(false)),
            "true" | "1" => Ok(Flag(true)),
            _ => Err(format!("expected true or false, got \"{v}\"")),
        })
    }
}

/// A feed position: the `next_cursor` of a previous answer; 0 when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor(pub u64);

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d, |v| {
            v.parse().map(Cursor).map_err(|_| {
                format!(
                    "expected the `next_cursor` of a previous answer (a whole number), got \"{v}\""
                )
            })
        })
    }
}

/// A record id to page after (the `next` of a previous page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct After(pub RecordId);

impl<'de> Deserialize<'de> for After {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d, |v| {
            v.parse()
                .map(After)
                .map_err(|e: <RecordId as std::str::FromStr>::Err| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<T: DeserializeOwned + IntoParams>(uri: &str) -> Result<T, String> {
        let req = axum::http::Request::get(uri)
            .body(())
            .map_err(|e| e.to_string())?;
        let (mut parts, ()) = req.into_parts();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(Query::<T>::from_request_parts(&mut parts, &()))
            .map(|Query(t)| t)
            .map_err(|e| e.to_string())
    }

    #[derive(Debug, Deserialize, IntoParams)]
    struct Params {
        #[serde(default)]
        #[param(value_type = Option<u32>)]
        limit: Limit,
        #[serde(default)]
        #[param(value_type = Option<bool>)]
        deleted: Flag,
    }

    #[test]
    fn bad_values_and_unknown_parameters_are_named() {
        let p: Params = query("/x?limit=5&deleted=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.limit, p.deleted), (Limit(5), Flag(true)));
        assert_eq!(
            query::<Params>("/x?limit=abc").err().as_deref(),
            Some("query parameter `limit`: expected a whole number from 1 to 1000, got \"abc\"")
        );
        assert_eq!(
            query::<Params>("/x?colour=red").err().as_deref(),
            Some("unknown query parameter `colour`; this endpoint takes: limit, deleted")
        );
        assert_eq!(
            query::<NoParams>("/x?a=1").err().as_deref(),
            Some("unknown query parameter `a`; this endpoint takes: ")
        );
    }
}
