//! Business Manager system-user tokens over HTTP: a business with the management scope lists
//! its live tokens (ids and scopes only), issues new ones with a subset of its own scopes, and
//! revokes any of its own with immediate effect. Another business's token id answers exactly as
//! an unknown one.

use super::extract::Path;
use super::{authenticate, reply, require_scope, ApiError, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use sealpost_domain::identity::{SCOPE_MANAGEMENT, SCOPE_MESSAGING};
use sealpost_domain::{BusinessId, Principal, PrincipalKind};
use serde_json::{json, Value};

/// The caller's business, if the token is a business token with the management scope.
fn manager(s: &Shared, headers: &HeaderMap) -> Result<(BusinessId, Vec<String>), ApiError> {
    let grant = authenticate(s, headers)?;
    let business = match (&grant.principal.kind, &grant.principal.business) {
        (PrincipalKind::Business, Some(b)) => b.clone(),
        _ => return Err(ApiError::denied()),
    };
    require_scope(&grant, SCOPE_MANAGEMENT)?;
    Ok((business, grant.scopes))
}

fn unknown() -> ApiError {
    ApiError::invalid("The token does not exist or belongs to another business.")
}

/// `GET /sealpost/v1/tokens`: the business's live tokens.
pub(super) async fn list(State(s): State<Shared>, headers: HeaderMap) -> Response {
    reply(
        async {
            let (business, _) = manager(&s, &headers)?;
            let data: Vec<Value> = s
                .tokens
                .of_business(&business)
                .into_iter()
                .map(|g| json!({ "id": g.token_id, "scopes": g.scopes }))
                .collect();
            Ok(json!({ "data": data }))
        }
        .await,
    )
}

/// `POST /sealpost/v1/tokens` `{"scopes": [...]}` → `{"id", "access_token", "scopes"}`; the
/// token is shown this once.
pub(super) async fn issue(State(s): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    reply(
        async {
            let (business, own) = manager(&s, &headers)?;
            let body = super::read_json(body).await?;
            let scopes: Vec<String> = match body.get("scopes") {
                None => vec![SCOPE_MESSAGING.to_owned()],
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ApiError::not_valid("scopes"))?,
                Some(_) => return Err(ApiError::not_valid("scopes")),
            };
            if scopes.iter().any(|sc| !own.contains(sc)) {
                // Never more than the caller holds.
                return Err(ApiError::not_valid("scopes"));
            }
            let region = s.app.business_region(&business).await?;
            let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let token = s
                .tokens
                .issue(
                    Principal::business(business.clone(), "system-user"),
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
            Ok(json!({ "id": id, "access_token": token, "scopes": scopes }))
        }
        .await,
    )
}

/// `DELETE /sealpost/v1/tokens/{token-id}`: the token stops working at once.
pub(super) async fn revoke(
    State(s): State<Shared>,
    Path(token_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            let (business, _) = manager(&s, &headers)?;
            let owned = s
                .tokens
                .by_id(&token_id)
                .is_some_and(|g| g.principal.business.as_ref() == Some(&business));
            if !owned {
                return Err(unknown());
            }
            let region = s.app.business_region(&business).await?;
            if !s.tokens.revoke(&token_id, region, s.app.now()).await? {
                return Err(unknown());
            }
            Ok(json!({ "success": true }))
        }
        .await,
    )
}
