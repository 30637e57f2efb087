//! The Business Manager surface a Cloud API client reads and sets (issue 16): a WhatsApp
//! Business Account (`GET /{version}/{waba-id}`), its phone numbers (`GET …/phone_numbers`),
//! the apps subscribed to its webhooks (`GET/POST/DELETE …/subscribed_apps`), and a number's
//! business profile (`GET/POST /{version}/{phone-number-id}/whatsapp_business_profile`), which
//! is business information in the matrix, kept as events on the number's stream.
//!
//! `?fields=a,b` narrows an object to the fields named (and its `id`), as the Graph API does.

use super::extract::{Management, Messaging, OwnedNumber, OwnedWaba, Waba};
use super::params::Params;
use super::phone_numbers::{describe_number, number_command};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::{Query, State};
use axum::Json;
use sealpost_domain::aggregates::profile::BusinessProfile;
use sealpost_domain::apps::AppEvent;
use sealpost_domain::{Category, PhoneNumberCommand, PhoneNumberId, Purpose, Region};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The query of a read: `fields`, comma-separated.
pub(super) type Fields = Query<HashMap<String, String>>;

/// `object` narrowed to the fields `query` names (always keeping those in `keep`); all of it
/// without `fields`.
pub(super) fn narrowed(object: Value, query: &HashMap<String, String>, keep: &[&str]) -> Value {
    let Some(names) = query.get("fields") else {
        return object;
    };
    let wanted: Vec<&str> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    match object {
        Value::Object(all) => Value::Object(
            all.into_iter()
                .filter(|(k, _)| wanted.contains(&k.as_str()) || keep.contains(&k.as_str()))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// `GET /{version}/{waba-id}` (reached through the shared `/{version}/{id}` route): the
/// account's id, name and the business it belongs to.
pub(super) async fn describe_waba(
    s: &Shared,
    waba: &OwnedWaba<Management>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let Waba { id, business, .. } = &waba.resource;
    let b = s.app.catalog().business(business).await?;
    let described = json!({
        "id": id,
        "name": b.name,
        "owner_business_info": { "id": business.as_str(), "name": b.name },
    });
    Ok(narrowed(described, query, &["id"]))
}

/// `GET /{version}/{waba-id}/phone_numbers` → `{"data": [number…], "paging": {"cursors": …}}`.
pub(super) async fn phone_numbers(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
    Query(query): Fields,
) -> Result<Json<Value>, ApiError> {
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
        data.push(narrowed(described, &query, &["id"]));
    }
    let cursor = |v: Option<&Value>| {
        v.and_then(|n| n["id"].as_str())
            .map(|id| base64_url(id.as_bytes()))
    };
    Ok(Json(json!({
        "data": data,
        "paging": { "cursors": { "before": cursor(data.first()), "after": cursor(data.last()) } },
    })))
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
pub(super) async fn subscribed_apps(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = apps_of(&s, &waba.resource.id)
        .await?
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(id, _)| json!({ "whatsapp_business_api_data": { "id": id } }))
        .collect();
    Ok(Json(json!({ "data": data })))
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
pub(super) async fn subscribe_app(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
    super::extract::BodyBytes(body): super::extract::BodyBytes,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "success": true })))
}

/// `DELETE /{version}/{waba-id}/subscribed_apps`.
pub(super) async fn unsubscribe_app(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
) -> Result<Json<Value>, ApiError> {
    set_subscribed(&s, &waba, false).await?;
    Ok(Json(json!({ "success": true })))
}

/// The profile as the Cloud API answers it (every field, empty when unset).
fn profile_json(p: &BusinessProfile) -> Value {
    let text = |v: &Option<String>| json!(v.clone().unwrap_or_default());
    json!({
        "messaging_product": "whatsapp",
        "about": text(&p.about),
        "address": text(&p.address),
        "description": text(&p.description),
        "email": text(&p.email),
        "vertical": p.vertical.clone().filter(|v| !v.is_empty()).unwrap_or_else(|| "UNDEFINED".into()),
        "websites": p.websites.clone().unwrap_or_default(),
        "profile_picture_url": "",
    })
}

/// `GET /{version}/{phone-number-id}/whatsapp_business_profile` → `{"data": [profile]}`; a
/// read of business information, recorded by the gate.
pub(super) async fn get_profile(
    State(s): State<Shared>,
    number: OwnedNumber<Messaging>,
    Query(query): Fields,
) -> Result<Json<Value>, ApiError> {
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
    let profile = narrowed(profile_json(&state.profile), &query, &["messaging_product"]);
    Ok(Json(json!({ "data": [profile] })))
}

/// `POST /{version}/{phone-number-id}/whatsapp_business_profile` `{"messaging_product":
/// "whatsapp", "about"?, "address"?, "description"?, "email"?, "vertical"?, "websites"?,
/// "profile_picture_handle"?}` → `{"success": true}`.
pub(super) async fn post_profile(
    State(s): State<Shared>,
    number: OwnedNumber<Management>,
    super::extract::JsonBody(body): super::extract::JsonBody,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "success": true })))
}
