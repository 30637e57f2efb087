//! `Path` and `Query` extractors whose rejections are the Graph error envelope (code 100), not
//! axum's plain-text answers: a path segment that is not UTF-8 once percent-decoded, or a query
//! string that does not parse, is a bad parameter like any other. Nothing of the request is
//! echoed back.

use super::ApiError;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The path parameters, deserialized as `T` (see [`axum::extract::Path`]).
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_error(&rejection)),
        }
    }
}

fn path_error(rejection: &PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            // The key is the route's own parameter name, never the client's bytes.
            ErrorKind::InvalidUtf8InPathParam { key } => {
                ApiError::invalid(format!("The path parameter {key} is not valid UTF-8."))
            }
            _ => ApiError::invalid("A path parameter is not valid."),
        },
        _ => ApiError::invalid("A path parameter is not valid."),
    }
}

/// The query string, deserialized as `T` (see [`axum::extract::Query`]).
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|_: QueryRejection| ApiError::invalid("The query string is not valid."))
    }
}
