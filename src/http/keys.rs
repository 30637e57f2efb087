//! The operator's keys over HTTP (ADR 0024, 0025). Operator tokens only; every other principal
//! gets 403.
//! * `GET /sealpost/v1/keys`: the root keys' custody, each region's root-key generation with
//!   what is left to rewrap, and every ledger key's version, when it was made and when it
//!   rotates;
//! * `POST /sealpost/v1/keys/ledger/rotate` `{"business_id", "region"}`: a ledger-key rotation
//!   now, recorded in the log like a scheduled one;
//! * `POST /sealpost/v1/keys/root/rotate` `{"region"}`: the region's root key gets its next
//!   generation now (202); the rewrap runs in the background, and the status shows it end;
//! * `POST /sealpost/v1/keys/root/retire` `{"region", "generation"}`: an old generation is
//!   destroyed, once nothing is left under it and the rotation has settled (409 before);
//! * `POST /sealpost/v1/keys/audit/rotate` `{}` or `{"region"}`: the home log, or a Local
//!   Storage region's own, is handed over to a new signing key (ADR 0026), by a checkpoint
//!   signed by the old and the new key, answered.

use super::extract::{Auth, BodyBytes, JsonBody};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sealpost_domain::{BusinessId, PrincipalKind, Region, Timestamp};
use serde_json::{json, Value};

/// Refuses every principal but the operator.
pub(super) fn operator_only(auth: &Auth) -> Result<(), ApiError> {
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
    let roots: Vec<Value> = s
        .app
        .root_key_status()
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "region": r.region,
                "generation": r.generation,
                "since": (r.since > 0).then(|| time(r.since)),
                "rewrap_pending": r.rewrap_pending,
            })
        })
        .collect();
    let audit = s.app.audit().await?;
    // A region out of reach leaves only its own logs' keys out of the status.
    let region_audit_keys: Vec<Value> = s
        .app
        .region_audits()
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the regions' audit keys are not listed now");
            Vec::new()
        })
        .iter()
        .map(|(region, log)| {
            json!({
                "region": region.code(),
                "generation": log.key_generation(),
                "verifier_key": log.verifier_key(),
            })
        })
        .collect();
    Ok(Json(json!({
        "custody": vault.custody(),
        "audit_key": {
            "generation": audit.key_generation(),
            "verifier_key": audit.verifier_key(),
        },
        "region_audit_keys": region_audit_keys,
        "root_keys": roots,
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
    let region = region_of(&body)?;
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

/// The body's `region`, parsed.
fn region_of(body: &Value) -> Result<Region, ApiError> {
    body.get("region")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing("region"))?
        .parse()
        .map_err(|_| ApiError::not_valid("region"))
}

/// `POST /sealpost/v1/keys/root/rotate` `{"region"}` → 202 `{"region", "generation",
/// "rewrap": "running"}`: rotated now; the rewrap runs on (the retention pass finishes it if
/// this node stops first).
pub(super) async fn rotate_root(
    State(s): State<Shared>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    operator_only(&auth)?;
    let region = region_of(&body)?;
    let principal = auth.grant.principal.clone();
    let generation = s.app.rotate_root_key(&principal, region).await?;
    let app = s.app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.rewrap_root_keys(&principal, region, &mut |_| {}).await {
            tracing::error!(
                region = region.code(),
                error = %e,
                "the rewrap after a root-key rotation stopped; the retention pass resumes it"
            );
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "region": region.code(),
            "generation": generation,
            "rewrap": "running",
        })),
    ))
}

/// `POST /sealpost/v1/keys/root/retire` `{"region", "generation"}` → `{"region", "generation",
/// "destroyed": true}`; 409 while rows are left under it or the rotation is too recent.
pub(super) async fn retire_root(
    State(s): State<Shared>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    use sealpost_adapters::vault::Retirement;
    operator_only(&auth)?;
    let region = region_of(&body)?;
    let generation = body
        .get("generation")
        .ok_or_else(|| ApiError::missing("generation"))?
        .as_u64()
        .and_then(|g| u32::try_from(g).ok())
        .filter(|g| *g >= 1)
        .ok_or_else(|| ApiError::not_valid("generation"))?;
    let refused = |details: String| Err(ApiError::new(StatusCode::CONFLICT, 100, details));
    match s
        .app
        .retire_root_key(&auth.grant.principal, region, generation)
        .await?
    {
        Retirement::Destroyed => Ok(Json(json!({
            "region": region.code(),
            "generation": generation,
            "destroyed": true,
        }))),
        Retirement::Absent => refused(
            "That generation is not in this node's custody (destroyed before, or kept elsewhere): nothing was destroyed.".into(),
        ),
        Retirement::Refused(why) => refused(format!("Not destroyed: {why}.")),
        Retirement::Current => Err(ApiError::invalid(
            "That generation is not older than the region's current root key: rotate first.",
        )),
        Retirement::Settling(from) => refused(format!(
            "The rotation away from that generation is too recent for every node to have followed it; it may be destroyed from {}.",
            Timestamp::from_millis(from).utc_rfc3339()
        )),
        Retirement::Pending => refused(
            "Keys are still wrapped under that generation after a rewrap: another node is wrapping under it; try again in a minute.".into(),
        ),
    }
}

/// `POST /sealpost/v1/keys/audit/rotate` `{}` or `{"region"}` → `{"region", "generation",
/// "verifier_key", "checkpoint"}`: the hand-over checkpoint of the home log, or of a Local
/// Storage region's own log, signed by the old and the new key.
pub(super) async fn rotate_audit(
    State(s): State<Shared>,
    auth: Auth,
    BodyBytes(bytes): BodyBytes,
) -> Result<Json<Value>, ApiError> {
    operator_only(&auth)?;
    // No body, `{}`, or `{"region": <a Local Storage region>}`.
    let body: Value = match bytes.is_empty() {
        true => json!({}),
        false => serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::invalid("The request body is not valid JSON."))?,
    };
    let region = match body.get("region") {
        None | Some(Value::Null) => None,
        Some(_) => match region_of(&body)? {
            r if r.is_local_storage() => Some(r),
            _ => return Err(ApiError::not_valid("region")),
        },
    };
    let Some((generation, checkpoint)) = s
        .app
        .rotate_audit_key(&auth.grant.principal, region)
        .await?
    else {
        return Err(ApiError::invalid(
            "That Local Storage region has no store yet, so no log of its own to rotate the key of.",
        ));
    };
    let region = region.map(|r| r.code().to_owned());
    Ok(Json(json!({
        "region": region,
        "generation": generation,
        "verifier_key": checkpoint.verifier_key().unwrap_or_default(),
        "checkpoint": checkpoint,
    })))
}
