//! Extractors whose rejections are the Graph error envelope, so a handler starts with what it
//! was given and checks nothing of the request itself.
//!
//! * [`Path`], [`Query`]: axum's, but a path segment that is not UTF-8 once percent-decoded, or
//!   a query string that does not parse, is a bad parameter like any other (100/400).
//! * [`ApiVersion`]: the `{version}` segment, `v17.0` … `v26.0` (100/400); the router runs it
//!   on every route under `/{version}/` before the handler's own extractors.
//! * [`Auth`]: the bearer token's [`Grant`] (190/401), with the scope `S` (10/403).
//! * [`Owned`]: a token of the business that owns the resource named by `{id}` ([`OwnedNumber`],
//!   [`OwnedWaba`], [`OwnedApp`]), then the scope. Another business's resource answers exactly
//!   as an unknown one (200/403), checked before the scope and the body; an outage is 503.
//! * [`BusinessAuth`]: a business's token (200/403), then the scope.
//! * [`BodyBytes`], [`JsonBody`]: the body, at most [`MAX_BODY`](super::MAX_BODY) (100/400).
//!
//! After the version, extractors run in the order of the handler's arguments: token,
//! resource, scope, body. Nothing of the request is echoed back in a rejection.

use super::{ApiError, Shared, MAX_BODY, VERSIONS};
use crate::identity::Grant;
use axum::body::{to_bytes, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use sealpost_domain::identity::{SCOPE_MANAGEMENT, SCOPE_MESSAGING};
use sealpost_domain::{BusinessId, PhoneNumber, PhoneNumberId, PrincipalKind, Region};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;

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

/// The route's path parameter `name`, if the route has one (any segment that is not UTF-8 is
/// the rejection of [`Path`]).
async fn path_param(parts: &mut Parts, name: &str) -> Result<Option<String>, ApiError> {
    let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, &()).await?;
    Ok(params.remove(name))
}

/// The `{id}` path parameter, for handlers that take it by name.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Id {
    pub id: String,
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

/// A Graph API version the `{version}` path segment names, `v17.0` … `v26.0` ([`VERSIONS`]);
/// every version is served alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiVersion;

impl ApiVersion {
    fn parse(version: &str) -> Result<Self, ApiError> {
        version
            .strip_prefix('v')
            .and_then(|v| v.strip_suffix(".0"))
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| VERSIONS.contains(n))
            .map(|_| Self)
            .ok_or_else(|| ApiError::invalid("Unsupported API version."))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::parse(&path_param(parts, "version").await?.unwrap_or_default())
    }
}

/// A scope a route needs ([`Messaging`], [`Management`]), or none ([`AnyScope`]).
pub(crate) trait Scope: 'static {
    /// The scope's name in a token, `None` for any valid token.
    const NAME: Option<&'static str>;

    /// Error 10 unless the token carries the scope.
    fn require(grant: &Grant) -> Result<(), ApiError> {
        match Self::NAME {
            Some(scope) if !grant.scopes.iter().any(|sc| sc == scope) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                10,
                format!("The access token lacks {scope}."),
            )),
            _ => Ok(()),
        }
    }
}

/// Any valid token.
#[derive(Debug)]
pub(crate) struct AnyScope;
impl Scope for AnyScope {
    const NAME: Option<&'static str> = None;
}

/// `whatsapp_business_messaging`: sends, mark-as-read, the number's GET, media.
#[derive(Debug)]
pub(crate) struct Messaging;
impl Scope for Messaging {
    const NAME: Option<&'static str> = Some(SCOPE_MESSAGING);
}

/// `whatsapp_business_management`: settings, registration, templates, subscriptions, tokens.
#[derive(Debug)]
pub(crate) struct Management;
impl Scope for Management {
    const NAME: Option<&'static str> = Some(SCOPE_MANAGEMENT);
}

/// The grant of `Authorization: Bearer <token>`; no, a malformed or an unknown token is 190.
fn authenticate(s: &Shared, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        )
    };
    let header = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(bad)?;
    let token = header.strip_prefix("Bearer ").ok_or_else(bad)?.trim();
    s.tokens.authenticate(token).ok_or_else(bad)
}

/// A valid token (190) with the scope `S` (10).
#[derive(Debug)]
pub(crate) struct Auth<S = AnyScope> {
    pub grant: Grant,
    scope: PhantomData<fn() -> S>,
}

impl<S: Scope> FromRequestParts<Shared> for Auth<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let grant = authenticate(s, &parts.headers)?;
        S::require(&grant)?;
        Ok(Self {
            grant,
            scope: PhantomData,
        })
    }
}

/// A token of a business (any other principal is 200/403), then the scope `S`.
#[derive(Debug)]
pub(crate) struct BusinessAuth<S = AnyScope> {
    pub grant: Grant,
    pub business: BusinessId,
    scope: PhantomData<fn() -> S>,
}

impl<S: Scope> FromRequestParts<Shared> for BusinessAuth<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let grant = authenticate(s, &parts.headers)?;
        let business = match (&grant.principal.kind, &grant.principal.business) {
            (PrincipalKind::Business, Some(b)) => b.clone(),
            _ => return Err(ApiError::denied()),
        };
        S::require(&grant)?;
        Ok(Self {
            grant,
            business,
            scope: PhantomData,
        })
    }
}

/// Something a business owns, named by an id in the path.
pub(crate) trait Resource: Sized + Send {
    /// The resource named `id`, looked for among `business`'s (the token's: every address of
    /// business data names its business, ADR 0018); an unknown one is `ApiError::denied()`, as
    /// a foreign one.
    fn find(
        s: &Shared,
        business: &BusinessId,
        id: &str,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send;
    /// The business that owns it.
    fn owner(&self) -> Option<&BusinessId>;
}

/// The resource `R` named by the `{id}` path parameter, for a token of the business that owns
/// it, with the scope `S`: 190, then 200 (unknown and foreign alike), then 10.
#[derive(Debug)]
pub(crate) struct Owned<R, S = AnyScope> {
    pub grant: Grant,
    pub resource: R,
    scope: PhantomData<fn() -> S>,
}

impl<R: Resource, S: Scope> Owned<R, S> {
    /// The checks of the extractor for a grant already at hand (a route that serves more than
    /// one kind of resource).
    pub(crate) async fn check(s: &Shared, grant: Grant, id: &str) -> Result<Self, ApiError> {
        let business = match (&grant.principal.kind, &grant.principal.business) {
            (PrincipalKind::Business, Some(b)) => b.clone(),
            _ => return Err(ApiError::denied()),
        };
        let resource = R::find(s, &business, id).await?;
        if resource.owner() != Some(&business) {
            return Err(ApiError::denied());
        }
        S::require(&grant)?;
        Ok(Self {
            grant,
            resource,
            scope: PhantomData,
        })
    }
}

impl<R: Resource, S: Scope> FromRequestParts<Shared> for Owned<R, S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let id = path_param(parts, "id").await?.unwrap_or_default();
        let grant = authenticate(s, &parts.headers)?;
        Self::check(s, grant, &id).await
    }
}

/// A business phone number served here and its state.
#[derive(Debug)]
pub(crate) struct Number {
    pub id: PhoneNumberId,
    pub state: PhoneNumber,
}

/// A phone number of the token's business (`{phone-number-id}`).
pub(crate) type OwnedNumber<S> = Owned<Number, S>;

impl Resource for Number {
    async fn find(s: &Shared, business: &BusinessId, id: &str) -> Result<Self, ApiError> {
        let id = PhoneNumberId::parse(id).map_err(|_| ApiError::denied())?;
        if !s.numbers.contains_key(id.as_str()) {
            return Err(ApiError::denied());
        }
        let state = s
            .app
            .catalog()
            .phone_number(business, &id)
            .await
            .map_err(ApiError::denied_unless_unavailable)?;
        Ok(Self { id, state })
    }

    fn owner(&self) -> Option<&BusinessId> {
        self.state.business_id.as_ref()
    }
}

/// A WhatsApp Business Account: its business and region.
#[derive(Debug)]
pub(crate) struct Waba {
    pub id: String,
    pub business: BusinessId,
    pub region: Region,
}

/// A WABA of the token's business (`{waba-id}`).
pub(crate) type OwnedWaba<S> = Owned<Waba, S>;

impl Resource for Waba {
    async fn find(s: &Shared, _: &BusinessId, id: &str) -> Result<Self, ApiError> {
        s.apps
            .lock()
            .await
            .values()
            .find(|(_, waba, _)| waba == id)
            .map(|(business, _, region)| Self {
                id: id.to_owned(),
                business: business.clone(),
                region: *region,
            })
            .ok_or_else(ApiError::denied)
    }

    fn owner(&self) -> Option<&BusinessId> {
        Some(&self.business)
    }
}

/// An app: its id, business and region.
#[derive(Debug)]
pub(crate) struct App {
    pub id: String,
    pub business: BusinessId,
    pub region: Region,
}

/// An app of the token's business (`{app-id}`).
pub(crate) type OwnedApp<S> = Owned<App, S>;

impl Resource for App {
    async fn find(s: &Shared, _: &BusinessId, id: &str) -> Result<Self, ApiError> {
        let (business, _, region) = s
            .apps
            .lock()
            .await
            .get(id)
            .cloned()
            .ok_or_else(ApiError::denied)?;
        Ok(Self {
            id: id.to_owned(),
            business,
            region,
        })
    }

    fn owner(&self) -> Option<&BusinessId> {
        Some(&self.business)
    }
}

/// The request body, at most [`MAX_BODY`] bytes.
#[derive(Debug)]
pub(crate) struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        to_bytes(req.into_body(), MAX_BODY)
            .await
            .map(Self)
            .map_err(|_| ApiError::invalid("The request body is too large or unreadable."))
    }
}

/// The request body as JSON, at most [`MAX_BODY`] bytes (whatever its content type).
#[derive(Debug)]
pub(crate) struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, s: &S) -> Result<Self, ApiError> {
        let BodyBytes(bytes) = BodyBytes::from_request(req, s).await?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|_| ApiError::invalid("The request body is not valid JSON."))
    }
}
