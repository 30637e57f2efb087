//! A business phone number: its description (`GET /{version}/{phone-number-id}`, which also
//! describes media objects by their id), Local Storage settings, register and deregister.

use super::bodies::{Narrowable, Narrowed, Success};
use super::extract::{
    Auth, Id, JsonBody, Management, Messaging, Number, Owned, OwnedNumber, OwnedWaba, Path,
};
use super::{media, ApiError, Shared};
use crate::app::AppError;
use crate::identity::Grant;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::aggregates::phone_number::ThroughputTier;
use sealpost_domain::{PhoneNumber, PhoneNumberCommand, PhoneNumberId, Region};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /{version}/{id}`: a media object of the business when `id` names one, a WhatsApp
/// Business Account of it when `id` names one, else the phone number (display number, quality
/// rating, throughput, messaging-limit tier); `?fields=` narrows the answer.
#[utoipa::path(
    get,
    path = "/{version}/{id}",
    tag = "phone numbers",
    params(super::openapi::Version, super::openapi::AnyPath, super::openapi::FieldsQuery),
    responses((status = 200, description = "A media object, a WhatsApp Business Account or a phone number", body = Described)),
    security(("bearer" = [])),
)]
pub(super) async fn get(
    State(s): State<Shared>,
    Path(Id { id }): Path<Id>,
    Auth { grant, .. }: Auth,
    Query(query): super::business::Fields,
    headers: HeaderMap,
) -> Result<Json<Described>, ApiError> {
    // The same path names media objects too (`GET /{version}/{media-id}`).
    if let Some(described) = media::describe(&s, &grant, &id, &headers).await? {
        return Ok(Json(Described::Media(described)));
    }
    if let Ok(waba) = OwnedWaba::<Management>::check(&s, grant.clone(), &id).await {
        return Ok(Json(Described::Waba(
            super::business::describe_waba(&s, &waba, &query).await?,
        )));
    }
    let Owned {
        grant,
        resource: Number { id: number, state },
        ..
    } = OwnedNumber::<Messaging>::check(&s, grant, &id).await?;
    let described = describe_number(&s, &grant, &number, &state).await?;
    Ok(Json(Described::Number(Narrowed::new(&described, &query))))
}

/// What `GET /{version}/{id}` answers, by what the id names.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Described {
    /// A media object.
    Media(media::MediaObject),
    /// A WhatsApp Business Account.
    Waba(Narrowed<super::business::WabaObject>),
    /// A business phone number.
    Number(Narrowed<NumberObject>),
}

// Narrowed by `?fields=`, a WABA's and a number's answers may look alike.
super::bodies::any_of!(
    Described,
    "A media object, a WhatsApp Business Account or a phone number",
    media::MediaObject,
    Narrowed<super::business::WabaObject>,
    Narrowed<NumberObject>,
);

/// A business phone number as the Cloud API describes it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NumberObject {
    /// The business's verified name.
    verified_name: String,
    /// `+` and the digits.
    display_phone_number: String,
    /// The phone number id.
    pub(super) id: String,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    quality_rating: String,
    /// Its throughput tier.
    throughput: Throughput,
    /// `TIER_250`, `TIER_1K`, `TIER_10K`, `TIER_100K` or `TIER_UNLIMITED`.
    messaging_limit_tier: &'static str,
    /// Always `VERIFIED`.
    code_verification_status: &'static str,
    /// Always `CLOUD_API`.
    platform_type: &'static str,
    /// `CONNECTED` (registered) or `PENDING`.
    status: &'static str,
}

impl Narrowable for NumberObject {
    const KEEP: &'static [&'static str] = &["id"];
}

/// A throughput tier.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Throughput {
    /// `STANDARD` or `HIGH`.
    level: &'static str,
}

impl Throughput {
    fn of(tier: Option<ThroughputTier>) -> Self {
        let level = match tier {
            Some(ThroughputTier::High) => "HIGH",
            _ => "STANDARD",
        };
        Self { level }
    }
}

/// A business phone number as the Cloud API describes it. Its quality rating is an integrity
/// signal: the business may read its own, and the read is recorded.
pub(super) async fn describe_number(
    s: &Shared,
    grant: &Grant,
    number: &PhoneNumberId,
    state: &PhoneNumber,
) -> Result<NumberObject, ApiError> {
    let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
    let region = state.storage_region().unwrap_or(Region::Eu);
    let req = sealpost_audit::AccessRequest {
        principal: &grant.principal,
        category: sealpost_domain::Category::IntegritySignals,
        purpose: sealpost_domain::Purpose::BusinessApi,
        object: number.as_str(),
        owner: Some(&business),
        region,
    };
    s.app.gate().authorize(&req).await.map_err(AppError::from)?;
    let integrity = s.app.catalog().integrity(&business, number).await?;
    let rating = integrity.rating;
    let b = s.app.catalog().business(&business).await?;
    let tier = integrity
        .lowered_tier
        .or(b.tier)
        .unwrap_or(MessagingLimitTier::Tier250)
        .name();
    Ok(NumberObject {
        verified_name: b.name,
        display_phone_number: format!("+{}", state.display_number),
        id: number.as_str().to_owned(),
        quality_rating: format!("{rating:?}").to_uppercase(),
        throughput: Throughput::of(state.throughput),
        messaging_limit_tier: tier,
        code_verification_status: "VERIFIED",
        // Every number Sealpost serves sends and receives through it, registered or not:
        // it is on the Cloud API platform (ON_PREMISE and NOT_APPLICABLE never hold here).
        platform_type: "CLOUD_API",
        status: if state.registered {
            "CONNECTED"
        } else {
            "PENDING"
        },
    })
}

/// A number's settings: its Local Storage configuration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct Settings {
    /// Where its data is kept.
    storage_configuration: StorageConfiguration,
}

/// Local Storage: enabled in a region, or disabled.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct StorageConfiguration {
    /// `IN_COUNTRY_STORAGE_ENABLED` or `IN_COUNTRY_STORAGE_DISABLED`.
    status: String,
    /// The region's code (`DE`, `IN`, …) when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_localization_region: Option<String>,
}

/// `GET /{version}/{phone-number-id}/settings`: the Local Storage configuration.
#[utoipa::path(
    get,
    path = "/{version}/{id}/settings",
    tag = "phone numbers",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    responses((status = 200, description = "Its Local Storage configuration", body = Settings)),
    security(("bearer" = [])),
)]
pub(super) async fn get_settings(number: OwnedNumber<Management>) -> Json<Settings> {
    let configuration = match number.resource.state.elected_region {
        Some(r) => StorageConfiguration {
            status: "IN_COUNTRY_STORAGE_ENABLED".into(),
            data_localization_region: Some(r.code().to_owned()),
        },
        None => StorageConfiguration {
            status: "IN_COUNTRY_STORAGE_DISABLED".into(),
            data_localization_region: None,
        },
    };
    Json(Settings {
        storage_configuration: configuration,
    })
}

/// Runs a command of the number's aggregate as the token's principal.
pub(super) async fn number_command<S>(
    s: &Shared,
    number: &Owned<Number, S>,
    command: PhoneNumberCommand,
) -> Result<(), ApiError> {
    let Number { id, state } = &number.resource;
    let grant: &Grant = &number.grant;
    let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
    let region = state.storage_region().unwrap_or(Region::Eu);
    s.app
        .catalog()
        .number_command(&grant.principal, id, (&business, region), command)
        .await?;
    Ok(())
}

fn storage_region(value: &Value) -> Result<Option<Region>, ApiError> {
    match value.get("status").and_then(Value::as_str) {
        Some("IN_COUNTRY_STORAGE_DISABLED") => Ok(None),
        Some("IN_COUNTRY_STORAGE_ENABLED") => {
            let code = value
                .get("data_localization_region")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("data_localization_region"))?;
            let region: Region = code
                .parse()
                .map_err(|_| ApiError::not_valid("data_localization_region"))?;
            Ok(Some(region))
        }
        Some(_) => Err(ApiError::not_valid("storage_configuration.status")),
        None => Err(ApiError::missing("storage_configuration.status")),
    }
}

/// `POST /{version}/{phone-number-id}/settings` `{"storage_configuration": …}`.
#[utoipa::path(
    post,
    path = "/{version}/{id}/settings",
    tag = "phone numbers",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    request_body = Settings,
    responses((status = 200, description = "Recorded (only while unregistered)", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn post_settings(
    State(s): State<Shared>,
    number: OwnedNumber<Management>,
    JsonBody(body): JsonBody,
) -> Result<Json<Success>, ApiError> {
    let config = body
        .get("storage_configuration")
        .ok_or_else(|| ApiError::missing("storage_configuration"))?;
    let region = storage_region(config)?;
    number_command(&s, &number, PhoneNumberCommand::ConfigureStorage { region }).await?;
    Ok(Success::done())
}

/// The body of a registration.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct Registration {
    /// Always `whatsapp`.
    messaging_product: String,
    /// Six digits.
    pin: String,
    /// API v20 and older: the Local Storage region.
    data_localization_region: Option<String>,
}

/// `POST /{version}/{phone-number-id}/register` `{"messaging_product", "pin"}` (and, as API
/// v20 and older carried it, `data_localization_region`).
#[utoipa::path(
    post,
    path = "/{version}/{id}/register",
    tag = "phone numbers",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    request_body = Registration,
    responses((status = 200, description = "Registered", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn register(
    State(s): State<Shared>,
    number: OwnedNumber<Management>,
    JsonBody(body): JsonBody,
) -> Result<Json<Success>, ApiError> {
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(ApiError::not_valid("messaging_product"));
    }
    let pin = body
        .get("pin")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing("pin"))?;
    if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::not_valid("pin"));
    }
    // API v20 and older carry Local Storage in the register body.
    if let Some(code) = body.get("data_localization_region").and_then(Value::as_str) {
        let region: Region = code
            .parse()
            .map_err(|_| ApiError::not_valid("data_localization_region"))?;
        let command = PhoneNumberCommand::ConfigureStorage {
            region: Some(region),
        };
        number_command(&s, &number, command).await?;
    }
    number_command(&s, &number, PhoneNumberCommand::Register).await?;
    Ok(Success::done())
}

/// `POST /{version}/{phone-number-id}/deregister`.
#[utoipa::path(
    post,
    path = "/{version}/{id}/deregister",
    tag = "phone numbers",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    responses((status = 200, description = "Deregistered", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn deregister(
    State(s): State<Shared>,
    number: OwnedNumber<Management>,
) -> Result<Json<Success>, ApiError> {
    number_command(&s, &number, PhoneNumberCommand::Deregister).await?;
    Ok(Success::done())
}

/// An operator's change of a number's throughput tier.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct ThroughputChange {
    /// `HIGH` or `STANDARD`.
    level: String,
}

/// A number's throughput tier after a change.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ThroughputChanged {
    /// The phone number id.
    id: String,
    /// Its tier now.
    throughput: Throughput,
    /// Until when sends are refused with 131057 (RFC 3339), after an upgrade.
    maintenance_until: Option<String>,
}

/// `POST /sealpost/v1/numbers/{phone-number-id}/throughput` `{"level": "HIGH" | "STANDARD"}`
/// (the operator only) → `{"id", "throughput": {"level"}, "maintenance_until"}`: the number's
/// throughput tier changed now and recorded; an upgrade puts it in maintenance for
/// `MAINTENANCE_MS`, during which sends are 131057.
#[utoipa::path(
    post,
    path = "/sealpost/v1/numbers/{id}/throughput",
    tag = "operator",
    params(super::openapi::PhoneNumberPath),
    request_body = ThroughputChange,
    responses((status = 200, description = "The tier changed", body = ThroughputChanged)),
    security(("bearer" = [])),
)]
pub(super) async fn post_throughput(
    State(s): State<Shared>,
    Path(Id { id }): Path<Id>,
    auth: Auth,
    super::extract::BodyBytes(bytes): super::extract::BodyBytes,
) -> Result<Json<ThroughputChanged>, ApiError> {
    super::keys::operator_only(&auth)?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::invalid("The request body is not valid JSON."))?;
    let tier = match body.get("level").and_then(Value::as_str) {
        Some("HIGH") => ThroughputTier::High,
        Some("STANDARD") => ThroughputTier::Standard,
        Some(_) => return Err(ApiError::not_valid("level")),
        None => return Err(ApiError::missing("level")),
    };
    let number = PhoneNumberId::parse(&id).map_err(|_| ApiError::not_valid("phone_number_id"))?;
    if !s.numbers.contains_key(number.as_str()) {
        return Err(ApiError::not_valid("phone_number_id"));
    }
    let principal = &auth.grant.principal;
    let catalog = s.app.catalog();
    let home = catalog.number_home(principal, &number).await?;
    catalog
        .number_command(
            principal,
            &number,
            (&home.0, home.1),
            PhoneNumberCommand::ChangeThroughput { tier },
        )
        .await?;
    let state = catalog.number_for(principal, &number).await?;
    let until = state.maintenance_until(s.app.now());
    Ok(Json(ThroughputChanged {
        id: number.as_str().to_owned(),
        throughput: Throughput::of(Some(tier)),
        maintenance_until: until.map(|t| t.utc_rfc3339()),
    }))
}
