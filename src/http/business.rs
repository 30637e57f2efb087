//! The Business Manager surface a Cloud API client reads and sets (issue 16): a WhatsApp
//! Business Account (`GET /{version}/{waba-id}`), its phone numbers (`GET …/phone_numbers`),
//! the apps subscribed to its webhooks (`GET/POST/DELETE …/subscribed_apps`), and a number's
//! business profile (`GET/POST /{version}/{phone-number-id}/whatsapp_business_profile`), which
//! is business information in the matrix, kept as events on the number's stream.
//!
//! `?fields=a,b` narrows an object to the fields named (and its `id`), as the Graph API does.

use super::bodies::{Cursors, Data, Narrowable, Narrowed, Page, Paging, Success};
use super::extract::{Management, Messaging, OwnedNumber, OwnedWaba, Waba};
use super::params::Params;
use super::phone_numbers::NumberObject;
use super::phone_numbers::{describe_number, number_command};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::{Query, State};
use axum::Json;
use sealpost_domain::aggregates::profile::BusinessProfile;
use sealpost_domain::apps::AppEvent;
use sealpost_domain::{Category, PhoneNumberCommand, PhoneNumberId, Purpose, Region};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;

/// The query of a read: `fields`, comma-separated.
pub(super) type Fields = Query<HashMap<String, String>>;

/// `GET /{version}/{waba-id}` (reached through the shared `/{version}/{id}` route): the
/// account's id, name and the business it belongs to.
pub(super) async fn describe_waba(
    s: &Shared,
    waba: &OwnedWaba<Management>,
    query: &HashMap<String, String>,
) -> Result<Narrowed<WabaObject>, ApiError> {
    let Waba { id, business, .. } = &waba.resource;
    let b = s.app.catalog().business(business).await?;
    let described = WabaObject {
        id: id.clone(),
        name: b.name.clone(),
        owner_business_info: Owner {
            id: business.as_str().to_owned(),
            name: b.name,
        },
    };
    Ok(Narrowed::new(&described, query))
}

/// A WhatsApp Business Account.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WabaObject {
    /// Its id.
    id: String,
    /// Its name (the business's).
    name: String,
    /// The business it belongs to.
    owner_business_info: Owner,
}

impl Narrowable for WabaObject {
    const KEEP: &'static [&'static str] = &["id"];
}

/// The business an account belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Owner {
    /// The business's id.
    id: String,
    /// Its name.
    name: String,
}

/// `GET /{version}/{waba-id}/phone_numbers` → `{"data": [number…], "paging": {"cursors": …}}`.
#[utoipa::path(
    get,
    path = "/{version}/{id}/phone_numbers",
    tag = "business",
    params(super::openapi::Version, super::openapi::WabaPath, super::openapi::FieldsQuery),
    responses((status = 200, description = "The account's phone numbers", body = Page<Narrowed<NumberObject>>)),
    security(("bearer" = [])),
)]
pub(super) async fn phone_numbers(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
    Query(query): Fields,
) -> Result<Json<Page<Narrowed<NumberObject>>>, ApiError> {
    let business = waba.resource.business.clone();
    let mut data = Vec::new();
    for id in s.numbers.keys() {
        let Ok(number) = PhoneNumberId::parse(id) else {
            continue;
        };
        // Another business's number is not found among this business's streams.
        let state = match s.app.catalog().phone_number(&business, &number).await {
            Ok(state) if state.business_id.as_ref() == Some(&business) => state,
            Ok(_) | Err(AppError::Domain(sealpost_domain::DomainError::NotFound)) => continue,
            Err(e) => return Err(e.into()),
        };
        let described = describe_number(&s, &waba.grant, &number, &state).await?;
        data.push(Narrowed::new(&described, &query));
    }
    let cursor = |v: Option<&Narrowed<NumberObject>>| {
        v.and_then(Narrowed::key)
            .map(|id| base64_url(id.as_bytes()))
    };
    let cursors = Cursors {
        before: cursor(data.first()),
        after: cursor(data.last()),
    };
    Ok(Json(Page {
        data,
        paging: Paging { cursors },
    }))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The apps of the WABA's business that serve it: id → whether subscribed to its webhooks.
async fn apps_of(s: &Shared, waba_id: &str) -> Result<Vec<(String, bool)>, ApiError> {
    let apps = crate::app::apps(s.app.store()).await?;
    Ok(apps
        .into_iter()
        .filter(|(_, a)| a.waba_id == waba_id)
        .map(|(id, a)| (id, a.waba_subscribed()))
        .collect())
}

/// `GET /{version}/{waba-id}/subscribed_apps` → `{"data": [{"whatsapp_business_api_data":
/// {"id"}}]}`: the apps that get its webhooks.
#[utoipa::path(
    get,
    path = "/{version}/{id}/subscribed_apps",
    tag = "business",
    params(super::openapi::Version, super::openapi::WabaPath),
    responses((status = 200, description = "The apps that get its webhooks", body = Data<SubscribedApp>)),
    security(("bearer" = [])),
)]
pub(super) async fn subscribed_apps(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
) -> Result<Json<Data<SubscribedApp>>, ApiError> {
    let data = apps_of(&s, &waba.resource.id)
        .await?
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(id, _)| SubscribedApp {
            whatsapp_business_api_data: AppRef { id },
        })
        .collect();
    Ok(Json(Data { data }))
}

/// An app subscribed to an account's webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SubscribedApp {
    /// The app.
    whatsapp_business_api_data: AppRef,
}

/// An app, by id.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AppRef {
    /// The app's id.
    id: String,
}

/// The optional body of a subscription (`override_callback_uri` is refused).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read for the one member refused; this is its schema.
pub(super) struct AppSubscription {
    /// Not supported: refused with 100.
    override_callback_uri: Option<String>,
    /// Goes with `override_callback_uri`.
    verify_token: Option<String>,
}

/// `POST` (subscribe) or `DELETE` (unsubscribe) `/{version}/{waba-id}/subscribed_apps` →
/// `{"success": true}`: every app of the business serving the WABA, recorded; its worker
/// follows at once (and other nodes' within their next look at the log).
async fn set_subscribed(
    s: &Shared,
    waba: &OwnedWaba<Management>,
    on: bool,
) -> Result<(), ApiError> {
    let Waba {
        id: waba_id,
        business,
        region,
    } = &waba.resource;
    for (app_id, subscribed) in apps_of(s, waba_id).await? {
        if subscribed == on {
            continue;
        }
        let at = s.app.now();
        let waba_id = waba_id.to_owned();
        let event = match on {
            true => AppEvent::WabaSubscribed { waba_id, at },
            false => AppEvent::WabaUnsubscribed { waba_id, at },
        };
        crate::webhooks::record(&s.app, &app_id, business, *region, event).await?;
        super::subscriptions::restart_from_log(s, &app_id).await?;
    }
    Ok(())
}

/// `POST /{version}/{waba-id}/subscribed_apps`. Overriding the callback per WABA
/// (`override_callback_uri`) is not supported: the app's own subscription is used.
#[utoipa::path(
    post,
    path = "/{version}/{id}/subscribed_apps",
    tag = "business",
    params(super::openapi::Version, super::openapi::WabaPath),
    request_body(content = Option<AppSubscription>, description = "Optional"),
    responses((status = 200, description = "The business's apps get the account's webhooks", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn subscribe_app(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
    super::extract::BodyBytes(body): super::extract::BodyBytes,
) -> Result<Json<Success>, ApiError> {
    // The body is optional; only a JSON object naming an override is refused.
    let overrides = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|b| b.get("override_callback_uri").is_some());
    if overrides {
        return Err(ApiError::invalid(
            "override_callback_uri is not supported: subscribe the app's callback with POST /{app-id}/subscriptions.",
        ));
    }
    set_subscribed(&s, &waba, true).await?;
    Ok(Success::done())
}

/// `DELETE /{version}/{waba-id}/subscribed_apps`.
#[utoipa::path(
    delete,
    path = "/{version}/{id}/subscribed_apps",
    tag = "business",
    params(super::openapi::Version, super::openapi::WabaPath),
    responses((status = 200, description = "The business's apps no longer get the account's webhooks", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn unsubscribe_app(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
) -> Result<Json<Success>, ApiError> {
    set_subscribed(&s, &waba, false).await?;
    Ok(Success::done())
}

/// A business profile as the Cloud API answers it (every field, empty when unset).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Profile {
    /// Always `whatsapp`.
    messaging_product: &'static str,
    /// The profile's "about" text.
    about: String,
    /// Its address.
    address: String,
    /// Its description.
    description: String,
    /// Its email address.
    email: String,
    /// Its industry (`UNDEFINED` when unset).
    vertical: String,
    /// Its websites.
    websites: Vec<String>,
    /// Always empty: profile pictures are not served.
    profile_picture_url: &'static str,
}

impl Narrowable for Profile {
    const KEEP: &'static [&'static str] = &["messaging_product"];
}

impl From<&BusinessProfile> for Profile {
    fn from(p: &BusinessProfile) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            messaging_product: "whatsapp",
            about: text(&p.about),
            address: text(&p.address),
            description: text(&p.description),
            email: text(&p.email),
            vertical: p
                .vertical
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "UNDEFINED".into()),
            websites: p.websites.clone().unwrap_or_default(),
            profile_picture_url: "",
        }
    }
}

/// A change of a business profile: the members given are set.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct ProfileUpdate {
    /// Always `whatsapp`.
    messaging_product: String,
    /// At most 139 characters.
    about: Option<String>,
    /// At most 256 characters.
    address: Option<String>,
    /// At most 512 characters.
    description: Option<String>,
    /// At most 128 characters.
    email: Option<String>,
    /// An industry (`RETAIL`, `EDU`, …).
    vertical: Option<String>,
    /// At most two `http(s)` URLs.
    websites: Option<Vec<String>>,
    /// A handle of an uploaded picture.
    profile_picture_handle: Option<String>,
}

/// `GET /{version}/{phone-number-id}/whatsapp_business_profile` → `{"data": [profile]}`; a
/// read of business information, recorded by the gate.
#[utoipa::path(
    get,
    path = "/{version}/{id}/whatsapp_business_profile",
    tag = "business",
    params(super::openapi::Version, super::openapi::PhoneNumberPath, super::openapi::FieldsQuery),
    responses((status = 200, description = "The number's business profile", body = Data<Narrowed<Profile>>)),
    security(("bearer" = [])),
)]
pub(super) async fn get_profile(
    State(s): State<Shared>,
    number: OwnedNumber<Messaging>,
    Query(query): Fields,
) -> Result<Json<Data<Narrowed<Profile>>>, ApiError> {
    let state = &number.resource.state;
    let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
    let req = sealpost_audit::AccessRequest {
        principal: &number.grant.principal,
        category: Category::BusinessInformation,
        purpose: Purpose::BusinessApi,
        object: number.resource.id.as_str(),
        owner: Some(&business),
        region: state.storage_region().unwrap_or(Region::Eu),
    };
    s.app.gate().authorize(&req).await.map_err(AppError::from)?;
    let profile = Narrowed::new(&Profile::from(&state.profile), &query);
    Ok(Json(Data {
        data: vec![profile],
    }))
}

/// `POST /{version}/{phone-number-id}/whatsapp_business_profile` `{"messaging_product":
/// "whatsapp", "about"?, "address"?, "description"?, "email"?, "vertical"?, "websites"?,
/// "profile_picture_handle"?}` → `{"success": true}`.
#[utoipa::path(
    post,
    path = "/{version}/{id}/whatsapp_business_profile",
    tag = "business",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    request_body = ProfileUpdate,
    responses((status = 200, description = "Recorded", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn post_profile(
    State(s): State<Shared>,
    number: OwnedNumber<Management>,
    super::extract::JsonBody(body): super::extract::JsonBody,
) -> Result<Json<Success>, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    let p = Params::root(obj);
    match p.string("messaging_product")? {
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
        None => return Err(ApiError::missing("messaging_product")),
    }
    let text =
        |name: &str| -> Result<Option<String>, ApiError> { Ok(p.string(name)?.map(str::to_owned)) };
    let websites = match p.array("websites")? {
        None => None,
        Some(sites) => Some(
            sites
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| p.wrong_type("websites", "an array of strings"))?,
        ),
    };
    let update = BusinessProfile {
        about: text("about")?,
        address: text("address")?,
        description: text("description")?,
        email: text("email")?,
        vertical: text("vertical")?,
        websites,
        profile_picture_handle: text("profile_picture_handle")?,
    };
    if update.is_empty() {
        return Err(ApiError::missing(
            "about, address, description, email, vertical or websites",
        ));
    }
    number_command(&s, &number, PhoneNumberCommand::UpdateProfile { update }).await?;
    Ok(Success::done())
}
