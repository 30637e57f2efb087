//! The operator's keys over HTTP (ADR 0024): `GET /sealpost/v1/keys` (the root keys' custody
//! and every ledger key's version, when it was made and when it rotates) and
//! `POST /sealpost/v1/keys/ledger/rotate` `{"business_id", "region"}` (a rotation now, recorded
//! in the log like a scheduled one). Operator tokens only; every other principal gets 403.

use super::extract::{Auth, JsonBody};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sealpost_domain::{BusinessId, PrincipalKind, Region, Timestamp};
use serde_json::{json, Value};

/// Refuses every principal but the operator.
fn operator_only(auth: &Auth) -> Result<(), ApiError> {
    match auth.grant.principal.kind {
        PrincipalKind::Operator => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            200,
            "Only the operator's token may read or rotate keys.",
        )),
    }
}

/// `GET /sealpost/v1/keys`.
pub(super) async fn status(State(s): State<Shared>, auth: Auth) -> Result<Json<Value>, ApiError> {
    operator_only(&auth)?;
    let vault = s.app.store().vault();
    let period = crate::app::ledger_rotation_ms();
    let heads = vault.key_store().ledger_heads().await.map_err(|e| {
        ApiError::from(AppError::from(sealpost_adapters::vault::VaultError::from(
            e,
        )))
    })?;
    let time = |ms: i64| Timestamp::from_millis(ms).utc_rfc3339();
    let ledger: Vec<Value> = heads
        .iter()
        .map(|k| {
            json!({
                "business_id": k.business_id,
                "region": k.region,
                "version": k.version,
                "made_at": time(k.created_at),
                "next_rotation_at": (period > 0).then(|| time(k.created_at + period)),
            })
        })
        .collect();
    Ok(Json(json!({
        "custody": vault.custody(),
        "ledger_rotation_days": period / sealpost_domain::time::DAY_MS,
        "ledger_keys": ledger,
    })))
}

/// `POST /sealpost/v1/keys/ledger/rotate` `{"business_id", "region"}` → `{"business_id",
/// "region", "version"}`.
pub(super) async fn rotate(
    State(s): State<Shared>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    operator_only(&auth)?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing(name))
    };
    let business =
        BusinessId::parse(field("business_id")?).map_err(|_| ApiError::not_valid("business_id"))?;
    let region: Region = field("region")?
        .parse()
        .map_err(|_| ApiError::not_valid("region"))?;
    match s
        .app
        .rotate_ledger_key(&auth.grant.principal, &business, region)
        .await?
    {
        Some(version) => Ok(Json(json!({
            "business_id": business.as_str(),
            "region": region.code(),
            "version": version,
        }))),
        None => Err(ApiError::invalid(
            "The business has no ledger key in that region: nothing was sealed there yet.",
        )),
    }
}
