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
use sealpost_audit::log::Checkpoint;
use sealpost_domain::{BusinessId, PrincipalKind, Region, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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
#[utoipa::path(
    get,
    path = "/sealpost/v1/keys",
    tag = "operator",
    responses((status = 200, description = "Every key's state", body = KeyStatus)),
    security(("bearer" = [])),
)]
pub(super) async fn status(
    State(s): State<Shared>,
    auth: Auth,
) -> Result<Json<KeyStatus>, ApiError> {
    operator_only(&auth)?;
    let vault = s.app.store().vault();
    let period = crate::app::ledger_rotation_ms();
    let heads = vault.key_store().ledger_heads().await.map_err(|e| {
        ApiError::from(AppError::from(sealpost_adapters::vault::VaultError::from(
            e,
        )))
    })?;
    let time = |ms: i64| Timestamp::from_millis(ms).utc_rfc3339();
    let ledger = heads
        .iter()
        .map(|k| LedgerKey {
            business_id: k.business_id.clone(),
            region: k.region.clone(),
            version: k.version,
            made_at: time(k.created_at),
            next_rotation_at: (period > 0).then(|| time(k.created_at + period)),
        })
        .collect();
    let roots = s
        .app
        .root_key_status()
        .await?
        .into_iter()
        .map(|r| RootKey {
            region: r.region,
            generation: r.generation,
            since: (r.since > 0).then(|| time(r.since)),
            rewrap_pending: r.rewrap_pending,
        })
        .collect();
    let audit = s.app.audit().await?;
    // A region out of reach leaves only its own logs' keys out of the status.
    let region_audit_keys = s
        .app
        .region_audits()
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the regions' audit keys are not listed now");
            Vec::new()
        })
        .iter()
        .map(|(region, log)| AuditKey {
            region: Some(region.code().to_owned()),
            generation: log.key_generation(),
            verifier_key: log.verifier_key(),
        })
        .collect();
    Ok(Json(KeyStatus {
        custody: vault.custody(),
        audit_key: AuditKey {
            region: None,
            generation: audit.key_generation(),
            verifier_key: audit.verifier_key(),
        },
        region_audit_keys,
        root_keys: roots,
        ledger_rotation_days: period / sealpost_domain::time::DAY_MS,
        ledger_keys: ledger,
    }))
}

/// Every key's state.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyStatus {
    /// Where the root keys are kept (`file`, or the PKCS#11 token).
    custody: String,
    /// The home audit log's signing key.
    audit_key: AuditKey,
    /// Each Local Storage region's own log's signing key.
    region_audit_keys: Vec<AuditKey>,
    /// Each region's root key.
    root_keys: Vec<RootKey>,
    /// Days between scheduled ledger-key rotations (0: never).
    ledger_rotation_days: i64,
    /// Every business's ledger key, by region.
    ledger_keys: Vec<LedgerKey>,
}

/// An audit log's signing key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AuditKey {
    /// The Local Storage region whose log it signs (none: the home log).
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// Its generation.
    generation: u32,
    /// Its C2SP note verifier key.
    verifier_key: String,
}

/// A region's root key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RootKey {
    /// The region's code.
    region: String,
    /// The generation keys are wrapped under now.
    generation: u32,
    /// Since when (RFC 3339; none for the first).
    since: Option<String>,
    /// Keys still wrapped under an older generation.
    rewrap_pending: u64,
}

/// A business's ledger key in a region.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LedgerKey {
    /// The business (`0`: the deployment's own).
    business_id: String,
    /// The region's code.
    region: String,
    /// Its version.
    version: u32,
    /// When it was made (RFC 3339).
    made_at: String,
    /// When it rotates (RFC 3339; none when rotation is off).
    next_rotation_at: Option<String>,
}

/// A ledger-key rotation asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct LedgerRotation {
    /// The business.
    business_id: String,
    /// The region's code.
    region: String,
}

/// A ledger key made.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LedgerRotated {
    /// The business.
    business_id: String,
    /// The region's code.
    region: String,
    /// The version made.
    version: u32,
}

/// A region, named.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct RegionNamed {
    /// The region's code (`EU`, `DE`, …).
    region: Option<String>,
}

/// A root key's generation, named.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct Generation {
    /// The region's code.
    region: String,
    /// The generation to destroy.
    generation: u32,
}

/// A root key rotated, or one destroyed.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RootRotated {
    /// The region's code.
    region: String,
    /// The generation.
    generation: u32,
    /// `running`: the rewrap under the new generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    rewrap: Option<&'static str>,
    /// `true`: the generation was destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    destroyed: Option<bool>,
}

/// An audit log handed over to a new signing key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AuditRotated {
    /// The Local Storage region whose log it is (none: the home log).
    region: Option<String>,
    /// The new key's generation.
    generation: u32,
    /// The new key's note verifier key.
    verifier_key: String,
    /// The hand-over checkpoint, signed by the old and the new key.
    checkpoint: Checkpoint,
}

/// `POST /sealpost/v1/keys/ledger/rotate` `{"business_id", "region"}` → `{"business_id",
/// "region", "version"}`.
#[utoipa::path(
    post,
    path = "/sealpost/v1/keys/ledger/rotate",
    tag = "operator",
    request_body = LedgerRotation,
    responses((status = 200, description = "Rotated", body = LedgerRotated)),
    security(("bearer" = [])),
)]
pub(super) async fn rotate(
    State(s): State<Shared>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<LedgerRotated>, ApiError> {
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
        Some(version) => Ok(Json(LedgerRotated {
            business_id: business.as_str().to_owned(),
            region: region.code().to_owned(),
            version,
        })),
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
#[utoipa::path(
    post,
    path = "/sealpost/v1/keys/root/rotate",
    tag = "operator",
    request_body = RegionNamed,
    responses((status = 202, description = "Rotated; the rewrap runs", body = RootRotated)),
    security(("bearer" = [])),
)]
pub(super) async fn rotate_root(
    State(s): State<Shared>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<RootRotated>), ApiError> {
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
        Json(RootRotated {
            region: region.code().to_owned(),
            generation,
            rewrap: Some("running"),
            destroyed: None,
        }),
    ))
}

/// `POST /sealpost/v1/keys/root/retire` `{"region", "generation"}` → `{"region", "generation",
/// "destroyed": true}`; 409 while rows are left under it or the rotation is too recent.
#[utoipa::path(
    post,
    path = "/sealpost/v1/keys/root/retire",
    tag = "operator",
    request_body = Generation,
    responses((status = 200, description = "Destroyed", body = RootRotated)),
    security(("bearer" = [])),
)]
pub(super) async fn retire_root(
    State(s): State<Shared>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<RootRotated>, ApiError> {
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
        Retirement::Destroyed => Ok(Json(RootRotated {
            region: region.code().to_owned(),
            generation,
            rewrap: None,
            destroyed: Some(true),
        })),
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
#[utoipa::path(
    post,
    path = "/sealpost/v1/keys/audit/rotate",
    tag = "operator",
    request_body(content = Option<RegionNamed>, description = "Optional: a Local Storage region"),
    responses((status = 200, description = "Handed over", body = AuditRotated)),
    security(("bearer" = [])),
)]
pub(super) async fn rotate_audit(
    State(s): State<Shared>,
    auth: Auth,
    BodyBytes(bytes): BodyBytes,
) -> Result<Json<AuditRotated>, ApiError> {
    operator_only(&auth)?;
    // No body, `{}`, or `{"region": <a Local Storage region>}`.
    let body: Value = match bytes.is_empty() {
        true => Value::Object(serde_json::Map::new()),
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
    Ok(Json(AuditRotated {
        region,
        generation,
        verifier_key: checkpoint.verifier_key().unwrap_or_default(),
        checkpoint,
    }))
}
