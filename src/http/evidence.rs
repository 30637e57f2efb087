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
use sealpost_audit::log::Checkpoint;
use sealpost_domain::DomainError;
use sealpost_domain::{BusinessId, MessageId, Opened, Principal, Purpose};
use sealpost_projections::evidence::AccessQuery;
use sealpost_projections::report::RetentionReport;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

mod answers;

use answers::{
    AccessLog, AccessParams, Billing, BusinessQuery, Erased, LogKey, MessageRead, Next, Proof,
    PublicKeys, Statistics,
};

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
#[utoipa::path(
    get,
    path = "/sealpost/v1/audit/access",
    tag = "evidence",
    params(AccessParams),
    responses((status = 200, description = "A page of the access log, consistent with the checkpoint", body = AccessLog)),
    security(("bearer" = [])),
)]
pub(super) async fn access(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    Auth { grant, .. }: Auth,
) -> Result<Json<AccessLog>, ApiError> {
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
    Ok(Json(AccessLog {
        data: page.entries,
        paging: Next {
            next: page.next.map(|n| n.to_string()),
        },
        checkpoint,
    }))
}

/// A text answer (a signed note, a verifier key).
fn plain(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// `GET /sealpost/v1/audit/public-key[?format=json|vkey]`: the key checkpoints verify under
/// (published, no token); `vkey`: the home log's note verifier key as text (ADR 0022).
#[utoipa::path(
    get,
    path = "/sealpost/v1/audit/public-key",
    tag = "evidence",
    params(("format" = Option<String>, Query, description = "`json` (default) or `vkey`")),
    responses((status = 200, description = "The keys checkpoints verify under", content(
        (PublicKeys = "application/json"),
        (String = "text/plain"),
    ))),
)]
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
    let regions: BTreeMap<String, LogKey> = s
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
                LogKey {
                    origin: log.origin().to_owned(),
                    public_key: log.public_key_hex(),
                    vkey: log.verifier_key(),
                },
            )
        })
        .collect();
    Ok(Json(PublicKeys {
        home: LogKey {
            origin: audit.origin().to_owned(),
            public_key: audit.public_key_hex(),
            vkey: audit.verifier_key(),
        },
        algorithm: "Ed25519",
        regions,
    })
    .into_response())
}

/// `GET /sealpost/v1/audit/checkpoint[?format=json|note]`: the newest checkpoint (signed now if
/// rows are newer), as JSON, or as its C2SP signed note (`format=note`, or without `format` a
/// client that accepts `text/plain` and not JSON). Never cached: a newer one may come any time.
#[utoipa::path(
    get,
    path = "/sealpost/v1/audit/checkpoint",
    tag = "evidence",
    params(("format" = Option<String>, Query, description = "`json` or `note` (default by `Accept`)")),
    responses((status = 200, description = "The newest checkpoint", content(
        (Checkpoint = "application/json"),
        (String = "text/plain"),
    ))),
    security(("bearer" = [])),
)]
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
        false => Json(checkpoint).into_response(),
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
#[utoipa::path(
    get,
    path = "/sealpost/v1/audit/proofs/{kind}",
    tag = "evidence",
    params(
        ("kind" = String, Path, description = "`inclusion` or `consistency`"),
        ("position" = Option<u64>, Query, description = "inclusion: the row's position"),
        ("size" = Option<u64>, Query, description = "inclusion: the tree size (default: the checkpoint's)"),
        ("old" = Option<u64>, Query, description = "consistency: the older size"),
        ("new" = Option<u64>, Query, description = "consistency: the newer size (default: the checkpoint's)"),
    ),
    responses((status = 200, description = "The proof", body = Proof)),
    security(("bearer" = [])),
)]
pub(super) async fn proof(
    State(s): State<Shared>,
    Path(kind): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    _: Auth,
) -> Result<Json<Proof>, ApiError> {
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
            Proof::Inclusion(p)
        }
        "consistency" => {
            let old: u64 = parse_num(&q, "old")?.ok_or_else(|| ApiError::missing("old"))?;
            let new = parse_num(&q, "new")?.unwrap_or(latest.size);
            if old > new || new > latest.size {
                return Err(ApiError::invalid("The position or size is not in the log."));
            }
            let p = audit.consistency(old, new).await.map_err(out_of_range)?;
            Proof::Consistency(p)
        }
        _ => return Err(ApiError::unknown_path()),
    };
    Ok(Json(proof))
}

/// `GET /sealpost/v1/statistics?business_id=`
#[utoipa::path(
    get,
    path = "/sealpost/v1/statistics",
    tag = "evidence",
    params(BusinessQuery),
    responses((status = 200, description = "Statistics, small groups suppressed", body = Statistics)),
    security(("bearer" = [])),
)]
pub(super) async fn statistics(q: Asked) -> Result<Json<Statistics>, ApiError> {
    let evidence = q.s.app.evidence();
    let (rows, checkpoint) = evidence
        .statistics(&q.principal, q.business.as_ref())
        .await?;
    Ok(Json(Statistics {
        data: rows,
        min_group: sealpost_projections::evidence::DEFAULT_MIN_GROUP,
        checkpoint,
    }))
}

/// `GET /sealpost/v1/billing?business_id=`
#[utoipa::path(
    get,
    path = "/sealpost/v1/billing",
    tag = "evidence",
    params(BusinessQuery),
    responses((status = 200, description = "Billing lines", body = Billing)),
    security(("bearer" = [])),
)]
pub(super) async fn billing(q: Asked) -> Result<Json<Billing>, ApiError> {
    let evidence = q.s.app.evidence();
    let (rows, checkpoint) = evidence.billing(&q.principal, q.business.as_ref()).await?;
    Ok(Json(Billing {
        data: rows,
        checkpoint,
    }))
}

/// `GET /sealpost/v1/dpo/retention?format=json|html|csv&business_id=`
#[utoipa::path(
    get,
    path = "/sealpost/v1/dpo/retention",
    tag = "evidence",
    params(
        BusinessQuery,
        ("format" = Option<String>, Query, description = "`json` (default), `html` or `csv`"),
    ),
    responses((status = 200, description = "The retention report", content(
        (RetentionReport = "application/json"),
        (String = "text/html"),
        (String = "text/csv"),
    ))),
    security(("bearer" = [])),
)]
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

/// Whom to erase: a subject, or a consumer of a number by number or by user id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ErasureRequest {
    subject_id: Option<String>,
    phone_number_id: Option<String>,
    wa_id: Option<String>,
    user_id: Option<String>,
}

/// `POST /sealpost/v1/dpo/erasures` with `{"subject_id"}`, `{"phone_number_id", "wa_id"}` or
/// `{"phone_number_id", "user_id"}` → the erasure certificate (201), or 200 with
/// `"erased": false` when nothing is held for that number.
#[utoipa::path(
    post,
    path = "/sealpost/v1/dpo/erasures",
    tag = "evidence",
    params(("format" = Option<String>, Query, description = "`json` (default) or `html` (the certificate as a page)")),
    request_body = ErasureRequest,
    responses(
        (status = 201, description = "Erased: the certificate", content(
            (Erased = "application/json"),
            (String = "text/html"),
        )),
        (status = 200, description = "Nothing was held", body = Erased),
    ),
    security(("bearer" = [])),
)]
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
            Json(Erased {
                erased: true,
                certificate: Some(cert),
                reason: None,
            }),
        )
            .into_response()),
        Ok(ErasureOutcome::NothingHeld) => Ok(Json(Erased {
            erased: false,
            certificate: None,
            reason: Some("No data is held for this consumer on this number (never known, expired or already erased)."),
        })
        .into_response()),
        // An unknown subject answers like a foreign one.
        Err(AppError::Domain(DomainError::NotFound)) => Err(ApiError::denied()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /sealpost/v1/messages/{message-id}`: a business reads one of its own messages (within
/// retention). Anyone else — the operator's analytics, the transport, an auditor, a DPO, another
/// business — is refused by the matrix, and the refusal is in the access log.
#[utoipa::path(
    get,
    path = "/sealpost/v1/messages/{id}",
    tag = "evidence",
    params(super::openapi::MessagePath),
    responses((status = 200, description = "The message, or that it was shredded", body = MessageRead)),
    security(("bearer" = [])),
)]
pub(super) async fn message(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Auth { grant, .. }: Auth,
) -> Result<Json<MessageRead>, ApiError> {
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
    let id = id.as_str().to_owned();
    Ok(Json(match content {
        Opened::Plain(c) => MessageRead {
            id,
            kind: Some(c.kind()),
            message: Some(c),
            shredded: None,
        },
        Opened::Shredded => MessageRead {
            id,
            kind: None,
            message: None,
            shredded: Some(true),
        },
    }))
}

/// `GET /sealpost/v1/audit/tlog/checkpoint`: the newest checkpoint as a signed note, where a
/// C2SP `tlog-tiles` client looks for it (the log's prefix is `/sealpost/v1/audit/tlog/`).
#[utoipa::path(
    get,
    path = "/sealpost/v1/audit/tlog/checkpoint",
    tag = "evidence",
    responses((status = 200, description = "The newest checkpoint as a signed note", content_type = "text/plain", body = String)),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    get,
    path = "/sealpost/v1/audit/tlog/tile/{*path}",
    tag = "evidence",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]`")),
    responses((status = 200, description = "The tile's hashes", content_type = "application/octet-stream", body = Vec<u8>)),
    security(("bearer" = [])),
)]
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
