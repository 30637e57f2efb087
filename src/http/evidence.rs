//! Evidence over HTTP: the auditor's access-log queries, the published checkpoint, key and
//! proofs, statistics and billing, the DPO's retention report and erasure requests, and a
//! business's read of one of its own messages. Every read goes through the access gate, so a
//! principal the matrix refuses gets the same 403 as everywhere and the refusal is recorded.
//!
//! A query string is read before the token, as the routes always have.

use super::extract::{AnyScope, Auth, JsonBody, Path, Query};
use super::{ApiError, Shared};
use crate::app::evidence::{ErasureOutcome, ErasureTarget, TargetError};
use crate::app::AppError;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sealpost_domain::DomainError;
use sealpost_domain::{BusinessId, MessageId, Opened, Principal, Purpose};
use sealpost_projections::evidence::AccessQuery;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn parse_enum<T: serde::de::DeserializeOwned>(
    q: &BTreeMap<String, String>,
    field: &str,
) -> Result<Option<T>, ApiError> {
    q.get(field)
        .map(|v| {
            serde_json::from_value(Value::String(v.clone())).map_err(|_| ApiError::not_valid(field))
        })
        .transpose()
}

fn parse_num<T: std::str::FromStr>(
    q: &BTreeMap<String, String>,
    field: &str,
) -> Result<Option<T>, ApiError> {
    q.get(field)
        .map(|v| v.parse().map_err(|_| ApiError::not_valid(field)))
        .transpose()
}

fn business_param(q: &BTreeMap<String, String>) -> Result<Option<BusinessId>, ApiError> {
    q.get("business_id")
        .map(|b| BusinessId::parse(b).map_err(|_| ApiError::not_valid("business_id")))
        .transpose()
}

/// An evidence question: who asks (any authenticated principal; the gate decides) and the
/// optional `?business_id=` it is narrowed to, parsed at the edge (invalid: 100; checked before
/// the token, as the handlers' extractors were).
pub(super) struct Asked {
    s: Shared,
    principal: Principal,
    business: Option<BusinessId>,
}

impl FromRequestParts<Shared> for Asked {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let Query(q) = Query::<BTreeMap<String, String>>::from_request_parts(parts, s).await?;
        let business = business_param(&q)?;
        let Auth { grant, .. } = Auth::<AnyScope>::from_request_parts(parts, s).await?;
        Ok(Self {
            s: s.clone(),
            principal: grant.principal,
            business,
        })
    }
}

/// The parameters `GET /sealpost/v1/audit/access` knows.
const ACCESS_PARAMS: [&str; 11] = [
    "principal",
    "principal_kind",
    "category",
    "purpose",
    "decision",
    "object",
    "business_id",
    "from",
    "to",
    "after",
    "limit",
];

/// `GET /sealpost/v1/audit/access?principal=&principal_kind=&category=&purpose=&decision=&object=&business_id=&from=&to=&after=&limit=`
pub(super) async fn access(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    Auth { grant, .. }: Auth,
) -> Result<Json<Value>, ApiError> {
    if let Some(k) = q.keys().find(|k| !ACCESS_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!("Unknown parameter {k}.")));
    }
    if let Some(d) = q.get("decision") {
        if d != "allowed" && d != "denied" {
            return Err(ApiError::not_valid("decision"));
        }
    }
    let query = AccessQuery {
        principal: q.get("principal").cloned(),
        principal_kind: parse_enum(&q, "principal_kind")?,
        category: parse_enum(&q, "category")?,
        purpose: parse_enum(&q, "purpose")?,
        decision: q.get("decision").cloned(),
        object: q.get("object").cloned(),
        business_id: q.get("business_id").cloned(),
        from: parse_num(&q, "from")?,
        to: parse_num(&q, "to")?,
        after: parse_num(&q, "after")?,
        limit: parse_num(&q, "limit")?,
    };
    let (page, checkpoint) = s.app.evidence().access_log(&grant.principal, query).await?;
    Ok(Json(json!({
        "data": page.entries,
        "paging": { "next": page.next.map(|n| n.to_string()) },
        "checkpoint": checkpoint,
    })))
}

/// A text answer (a signed note, a verifier key).
fn plain(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// `GET /sealpost/v1/audit/public-key[?format=json|vkey]`: the key checkpoints verify under
/// (published, no token); `vkey`: the home log's note verifier key as text (ADR 0022).
pub(super) async fn public_key(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let format = q.get("format").map_or("json", String::as_str);
    if !["json", "vkey"].contains(&format) {
        return Err(ApiError::not_valid("format"));
    }
    let audit = s.app.audit().await?;
    if format == "vkey" {
        return Ok(plain(format!("{}\n", audit.verifier_key())));
    }
    // Each Local Storage region's own log signs with its own key (ADR 0020); a region out
    // of reach leaves only its own key out.
    let regions: BTreeMap<String, Value> = s
        .app
        .region_audits()
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the regions' audit keys are not published now");
            Vec::new()
        })
        .into_iter()
        .map(|(region, log)| {
            (
                region.code().to_owned(),
                json!({
                    "origin": log.origin(),
                    "public_key": log.public_key_hex(),
                    "vkey": log.verifier_key(),
                }),
            )
        })
        .collect();
    Ok(Json(json!({
        "origin": audit.origin(),
        "public_key": audit.public_key_hex(),
        "vkey": audit.verifier_key(),
        "algorithm": "Ed25519",
        "regions": regions,
    }))
    .into_response())
}

/// `GET /sealpost/v1/audit/checkpoint[?format=json|note]`: the newest checkpoint (signed now if
/// rows are newer), as JSON, or as its C2SP signed note (`format=note`, or without `format` a
/// client that accepts `text/plain` and not JSON). Never cached: a newer one may come any time.
pub(super) async fn checkpoint(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: axum::http::HeaderMap,
    _: Auth,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let note = match q.get("format").map(String::as_str) {
        Some("note") => true,
        Some("json") => false,
        None => accept.contains("text/plain") && !accept.contains("application/json"),
        Some(_) => return Err(ApiError::not_valid("format")),
    };
    let checkpoint = s.app.evidence().checkpoint().await?;
    let mut answer = match note {
        true => plain(checkpoint.note),
        false => Json(json!(checkpoint)).into_response(),
    };
    let headers = answer.headers_mut();
    headers.insert(header::VARY, header::HeaderValue::from_static("accept"));
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(answer)
}

/// `GET /sealpost/v1/audit/proofs/inclusion?position=&size=` and
/// `GET /sealpost/v1/audit/proofs/consistency?old=&new=`; any other kind is an unknown path.
pub(super) async fn proof(
    State(s): State<Shared>,
    Path(kind): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    _: Auth,
) -> Result<Json<Value>, ApiError> {
    let audit = s.app.audit().await?;
    let latest = s.app.evidence().checkpoint().await?;
    let out_of_range = |e: sealpost_audit::log::AuditError| {
        if e.is_unavailable() {
            ApiError::from(AppError::from(e))
        } else {
            ApiError::invalid("The position or size is not in the log.")
        }
    };
    let proof = match kind.as_str() {
        "inclusion" => {
            let position: u64 =
                parse_num(&q, "position")?.ok_or_else(|| ApiError::missing("position"))?;
            let size = parse_num(&q, "size")?.unwrap_or(latest.size);
            let p = audit
                .inclusion(position, size)
                .await
                .map_err(out_of_range)?;
            serde_json::to_value(p)
        }
        "consistency" => {
            let old: u64 = parse_num(&q, "old")?.ok_or_else(|| ApiError::missing("old"))?;
            let new = parse_num(&q, "new")?.unwrap_or(latest.size);
            if old > new || new > latest.size {
                return Err(ApiError::invalid("The position or size is not in the log."));
            }
            let p = audit.consistency(old, new).await.map_err(out_of_range)?;
            serde_json::to_value(p)
        }
        _ => return Err(ApiError::unknown_path()),
    };
    Ok(Json(proof.unwrap_or(Value::Null)))
}

/// `GET /sealpost/v1/statistics?business_id=`
pub(super) async fn statistics(q: Asked) -> Result<Json<Value>, ApiError> {
    let evidence = q.s.app.evidence();
    let (rows, checkpoint) = evidence
        .statistics(&q.principal, q.business.as_ref())
        .await?;
    Ok(Json(json!({
        "data": rows,
        "min_group": sealpost_projections::evidence::DEFAULT_MIN_GROUP,
        "checkpoint": checkpoint,
    })))
}

/// `GET /sealpost/v1/billing?business_id=`
pub(super) async fn billing(q: Asked) -> Result<Json<Value>, ApiError> {
    let evidence = q.s.app.evidence();
    let (rows, checkpoint) = evidence.billing(&q.principal, q.business.as_ref()).await?;
    Ok(Json(json!({ "data": rows, "checkpoint": checkpoint })))
}

/// `GET /sealpost/v1/dpo/retention?format=json|html|csv&business_id=`
pub(super) async fn retention(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    Auth { grant, .. }: Auth,
) -> Result<Response, ApiError> {
    let business = business_param(&q)?;
    let format = q.get("format").map_or("json", String::as_str);
    if !["json", "html", "csv"].contains(&format) {
        return Err(ApiError::not_valid("format"));
    }
    let report = s
        .app
        .evidence()
        .retention_report(&grant.principal, business.as_ref())
        .await?;
    let (content_type, text) = match format {
        "html" => ("text/html; charset=utf-8", report.to_html()),
        "csv" => ("text/csv; charset=utf-8", report.to_csv()),
        _ => ("application/json", report.to_json()),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureRequest {
    subject_id: Option<String>,
    phone_number_id: Option<String>,
    wa_id: Option<String>,
    user_id: Option<String>,
}

/// `POST /sealpost/v1/dpo/erasures` with `{"subject_id"}`, `{"phone_number_id", "wa_id"}` or
/// `{"phone_number_id", "user_id"}` → the erasure certificate (201), or 200 with
/// `"erased": false` when nothing is held for that number.
pub(super) async fn erase(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    Auth { grant, .. }: Auth,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    // `html`: the certificate as a page to print and file (checked before anything is erased).
    let html = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("html") => true,
        Some(_) => return Err(ApiError::not_valid("format")),
    };
    let req: ErasureRequest = serde_json::from_value(body).map_err(|_| {
        ApiError::invalid(
            "Expected {\"subject_id\"}, {\"phone_number_id\", \"wa_id\"} or {\"phone_number_id\", \"user_id\"}.",
        )
    })?;
    let target = ErasureTarget::from_fields(
        req.subject_id.as_deref(),
        req.phone_number_id.as_deref(),
        req.wa_id.as_deref(),
        req.user_id.as_deref(),
    )
    .map_err(|e| match e {
        TargetError::Missing(field) => ApiError::missing(field),
        TargetError::Invalid(field) => ApiError::not_valid(field),
        TargetError::NotExactlyOne => {
            ApiError::invalid("Name exactly one of subject_id, wa_id or user_id.")
        }
    })?;
    match s.app.evidence().erase_with_certificate(&grant.principal, target).await {
        Ok(ErasureOutcome::Erased(cert)) if html => Ok((
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            cert.to_html(),
        )
            .into_response()),
        Ok(ErasureOutcome::Erased(cert)) => Ok((
            StatusCode::CREATED,
            Json(json!({ "erased": true, "certificate": cert })),
        )
            .into_response()),
        Ok(ErasureOutcome::NothingHeld) => Ok(Json(json!({
            "erased": false,
            "reason": "No data is held for this consumer on this number (never known, expired or already erased)."
        }))
        .into_response()),
        // An unknown subject answers like a foreign one.
        Err(AppError::Domain(DomainError::NotFound)) => Err(ApiError::denied()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /sealpost/v1/messages/{message-id}`: a business reads one of its own messages (within
/// retention). Anyone else — the operator's analytics, the transport, an auditor, a DPO, another
/// business — is refused by the matrix, and the refusal is in the access log.
pub(super) async fn message(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Auth { grant, .. }: Auth,
) -> Result<Json<Value>, ApiError> {
    let id = MessageId::parse(&id).map_err(|_| ApiError::denied())?;
    let messaging = s.app.messaging();
    let content = async {
        let business = messaging.find_business(&id).await?;
        messaging
            .read_content(&grant.principal, Purpose::BusinessApi, &business, &id)
            .await
    }
    .await
    .map_err(|e| match e {
        AppError::Domain(DomainError::NotFound) => ApiError::denied(),
        other => other.into(),
    })?;
    Ok(Json(match content {
        Opened::Plain(c) => json!({
            "id": id.as_str(),
            "type": serde_json::to_value(c.kind()).unwrap_or(Value::Null),
            // The Cloud API message object it was sent or received as.
            "message": serde_json::to_value(&c).unwrap_or(Value::Null),
        }),
        Opened::Shredded => json!({ "id": id.as_str(), "shredded": true }),
    }))
}

/// `GET /sealpost/v1/audit/tlog/checkpoint`: the newest checkpoint as a signed note, where a
/// C2SP `tlog-tiles` client looks for it (the log's prefix is `/sealpost/v1/audit/tlog/`).
pub(super) async fn tlog_checkpoint(
    State(s): State<Shared>,
    _: Auth,
) -> Result<Response, ApiError> {
    let checkpoint = s.app.evidence().checkpoint().await?;
    let mut answer = plain(checkpoint.note);
    answer.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(answer)
}

/// `GET /sealpost/v1/audit/tlog/tile/<L>/<N>[.p/<W>]`: a tile of hashes (C2SP `tlog-tiles`);
/// 404 for a path that is not a tile's or a tile the newest checkpoint's tree does not hold.
/// A tile never changes: it may be cached for good (privately: it is answered to a token).
pub(super) async fn tlog_tile(
    State(s): State<Shared>,
    axum::extract::Path(path): axum::extract::Path<String>,
    _: Auth,
) -> Result<Response, ApiError> {
    let address =
        sealpost_audit::tiles::TileAddress::parse(&path).ok_or_else(ApiError::unknown_path)?;
    let tile = s
        .app
        .evidence()
        .tile(address)
        .await?
        .ok_or_else(ApiError::unknown_path)?;
    // A tile (full or partial) never changes; it is answered to a token, so private caches
    // only.
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
        ],
        tile,
    )
        .into_response())
}
