//! Business Manager system-user tokens over HTTP: a business with the management scope lists
//! its live tokens (ids and scopes only), issues new ones with a subset of its own scopes, and
//! revokes any of its own with immediate effect. Another business's token id answers exactly as
//! an unknown one.

use super::bodies::{Data, Success};
use super::extract::{BusinessAuth, JsonBody, Management, Path};
use super::{ApiError, Shared};
use axum::extract::State;
use axum::Json;
use sealpost_domain::identity::SCOPE_MESSAGING;
use sealpost_domain::Principal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A business token with the management scope.
type Manager = BusinessAuth<Management>;

fn unknown() -> ApiError {
    ApiError::invalid("The token does not exist or belongs to another business.")
}

/// A live token: its id and scopes (never the token).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TokenRow {
    /// Its id.
    id: String,
    /// What it may do.
    scopes: Vec<String>,
}

/// A token issued: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Issued {
    /// Its id.
    id: String,
    /// The bearer token.
    access_token: String,
    /// What it may do.
    scopes: Vec<String>,
}

/// What a new token may do.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct Issue {
    /// A subset of the caller's scopes (default `whatsapp_business_messaging`).
    scopes: Option<Vec<String>>,
}

/// `GET /sealpost/v1/tokens`: the business's live tokens.
#[utoipa::path(
    get,
    path = "/sealpost/v1/tokens",
    tag = "tokens",
    responses((status = 200, description = "The business's live tokens", body = Data<TokenRow>)),
    security(("bearer" = [])),
)]
pub(super) async fn list(State(s): State<Shared>, manager: Manager) -> Json<Data<TokenRow>> {
    let data = s
        .tokens
        .of_business(&manager.business)
        .into_iter()
        .map(|g| TokenRow {
            id: g.token_id,
            scopes: g.scopes,
        })
        .collect();
    Json(Data { data })
}

/// `POST /sealpost/v1/tokens` `{"scopes": [...]}` → `{"id", "access_token", "scopes"}`; the
/// token is shown this once.
#[utoipa::path(
    post,
    path = "/sealpost/v1/tokens",
    tag = "tokens",
    request_body = Issue,
    responses((status = 200, description = "Issued", body = Issued)),
    security(("bearer" = [])),
)]
pub(super) async fn issue(
    State(s): State<Shared>,
    manager: Manager,
    JsonBody(body): JsonBody,
) -> Result<Json<Issued>, ApiError> {
    let scopes: Vec<String> = match body.get("scopes") {
        None => vec![SCOPE_MESSAGING.to_owned()],
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::not_valid("scopes"))?,
        Some(_) => return Err(ApiError::not_valid("scopes")),
    };
    if scopes.iter().any(|sc| !manager.grant.scopes.contains(sc)) {
        // Never more than the caller holds.
        return Err(ApiError::not_valid("scopes"));
    }
    let business = manager.business;
    let region = s.app.catalog().business_region(&business).await?;
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let token = s
        .tokens
        .issue(
            Principal::business(business, "system-user"),
            &refs,
            region,
            s.app.now(),
        )
        .await?;
    let id = s
        .tokens
        .authenticate(&token)
        .map(|g| g.token_id)
        .ok_or_else(unknown)?;
    Ok(Json(Issued {
        id,
        access_token: token,
        scopes,
    }))
}

/// `DELETE /sealpost/v1/tokens/{token-id}`: the token stops working at once.
#[utoipa::path(
    delete,
    path = "/sealpost/v1/tokens/{token_id}",
    tag = "tokens",
    params(("token_id" = String, Path, description = "A token id of the business")),
    responses((status = 200, description = "Revoked", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn revoke(
    State(s): State<Shared>,
    Path(token_id): Path<String>,
    manager: Manager,
) -> Result<Json<Success>, ApiError> {
    let owned = s
        .tokens
        .by_id(&token_id)
        .is_some_and(|g| g.principal.business.as_ref() == Some(&manager.business));
    if !owned {
        return Err(unknown());
    }
    let region = s.app.catalog().business_region(&manager.business).await?;
    if !s.tokens.revoke(&token_id, region, s.app.now()).await? {
        return Err(unknown());
    }
    Ok(Success::done())
}
