//! Sending (`POST`/`PUT /{version}/{phone-number-id}/messages`, also unversioned) and marking
//! an inbound message read (the same route, with `"status": "read"`).
//!
//! The send body's content is checked by [`parse_send`] (with [`Params`]) at the end of this
//! file, one function apart from the handler: it returns the kind, the content to seal and the
//! callback data. The handler reads only the addressee (`to` or `recipient`) and, for a
//! template, its name and language.

use super::bodies::Success;
use super::extract::{JsonBody, Messaging, Number, Owned, OwnedNumber};
use super::limits::Admitted;
use super::params::Params;
use super::{media, templates, ApiError, Shared};
use crate::app::media::MEDIA_KINDS as MEDIA;
use crate::app::AppError;
use crate::identity::Grant;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sealpost_domain::content::Payload;
use sealpost_domain::{MessageContent, PhoneNumber, PhoneNumberId, E164};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The most a text body may hold.
pub const MAX_TEXT: usize = 4096;

/// `POST`/`PUT …/messages`: a send → `{"contacts", "messages", "messaging_product"}`, or, with
/// `status`, mark-as-read → `{"success": true}`.
#[utoipa::path(
    method(post, put),
    path = "/{version}/{id}/messages",
    tag = "messages",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    request_body = SendBody,
    responses((status = 200, description = "Sent (`contacts`, `messages`) or marked read (`success`)", body = Sent)),
    security(("bearer" = [])),
)]
pub(super) async fn send(
    State(s): State<Shared>,
    // First: a send over the limit is answered before any work is done for it.
    _admitted: Admitted,
    Owned {
        grant,
        resource: Number { id: number, state },
        ..
    }: OwnedNumber<Messaging>,
    JsonBody(body): JsonBody,
) -> Result<Json<Sent>, ApiError> {
    if body.get("status").is_some() {
        let business = state.business_id.as_ref().ok_or_else(ApiError::denied)?;
        mark_read(&s, business, &number, &body).await?;
        return Ok(Json(Sent::Read(Success { success: true })));
    }
    let now = s.app.now();
    if let Some(until) = state.maintenance_until(now) {
        let seconds = (until.millis() - now.millis() + 999) / 1_000;
        return Err(ApiError::maintenance(u64::try_from(seconds).unwrap_or(1)));
    }
    let (content, callback) = parse_send(&body)?;
    let content = media::attach(&s, &grant, content).await?;
    if let Payload::Template(t) = &content.payload {
        require_approved(&s, &grant, &t.name, &t.language.code).await?;
    }
    let (to_raw, to, by_user) = recipient(&s, &grant, &number, &body).await?;
    // The integrity throttle (messaging limit reached) is answered at once, as the Cloud API
    // does; the transport would refuse the message anyway.
    let throttled = s
        .sim
        .as_ref()
        .zip(s.numbers.get(number.as_str()))
        .is_some_and(|(sim, display)| sim.net().refuses(display, to.expose_digits()));
    if throttled {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            131_048,
            "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
        ));
    }
    let pair = pair(&s, &state, &to).await?;
    s.limits
        .lock()
        .expect("limits lock is never poisoned")
        .admit(number.as_str(), &pair, state.throughput, s.app.now())?;
    // With the simulated transport a device exists for every number the first time it is
    // addressed, as a real phone would already be registered.
    if let Some(sim) = &s.sim {
        sim.ensure_device(to.expose_digits()).await?;
    }
    let message = match s
        .app
        .messaging()
        .send_on(
            (&number, &state),
            &grant.principal,
            &to,
            &content,
            callback.as_deref(),
        )
        .await
    {
        Ok(m) => m,
        Err(e) => {
            s.limits
                .lock()
                .expect("limits lock is never poisoned")
                .refund(number.as_str(), &pair);
            return Err(e.into());
        }
    };
    crate::metrics::metrics().messages("accepted", 1);
    let contact = if by_user {
        SentContact {
            input: to_raw.clone(),
            wa_id: None,
            user_id: Some(to_raw),
        }
    } else {
        SentContact {
            input: to_raw,
            wa_id: Some(to.expose_digits().to_owned()),
            user_id: None,
        }
    };
    Ok(Json(Sent::Message(SentMessage {
        messaging_product: "whatsapp",
        contacts: vec![contact],
        messages: vec![SentId {
            id: message.as_str().to_owned(),
        }],
    })))
}

/// `POST`/`PUT /{id}/messages` without a version: the same as with the default one.
#[utoipa::path(
    method(post, put),
    path = "/{id}/messages",
    tag = "messages",
    params(super::openapi::PhoneNumberPath),
    request_body = SendBody,
    responses((status = 200, description = "Sent or marked read", body = Sent)),
    security(("bearer" = [])),
)]
pub(super) async fn send_unversioned(
    state: State<Shared>,
    admitted: Admitted,
    number: OwnedNumber<Messaging>,
    body: JsonBody,
) -> Result<Json<Sent>, ApiError> {
    send(state, admitted, number, body).await
}

/// The answer of a send or of a mark-as-read.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum Sent {
    /// A message was accepted.
    Message(SentMessage),
    /// A message was marked read.
    Read(Success),
}

/// A message accepted: whom it goes to and its id.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SentMessage {
    /// Always `whatsapp`.
    messaging_product: &'static str,
    /// The addressee, as named and as resolved.
    contacts: Vec<SentContact>,
    /// The message's id (`wamid.…`).
    messages: Vec<SentId>,
}

/// The addressee of a send.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SentContact {
    /// What the request named (`to` or `recipient`).
    input: String,
    /// The consumer's WhatsApp id (addressed by number).
    #[serde(skip_serializing_if = "Option::is_none")]
    wa_id: Option<String>,
    /// The business-scoped user id (addressed by `recipient`).
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

/// A message's id.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SentId {
    /// `wamid.…`
    id: String,
}

/// The body of `…/messages`: a send, or a mark-as-read (told apart by `status`, which a
/// send lacks). Its schema is `anyOf`: a mark-as-read is also a well-formed send of the
/// default type, as JSON Schema sees it.
#[derive(Debug)]
pub(super) struct SendBody;

super::bodies::any_of!(
    SendBody,
    "A send, or (with `status`) a mark-as-read",
    MarkRead,
    SendRequest,
);

/// A send: the addressee and the message in the Cloud API's shape (its `type` and the object
/// under the member of that name). The handler reads it member by member with the API's own
/// error codes ([`parse_send`]), then the message as [`MessageContent`].
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read through `Params` for the API's error codes; this is its schema.
pub(super) struct SendRequest {
    /// Always `whatsapp`.
    messaging_product: String,
    /// `individual`, the only kind.
    recipient_type: Option<String>,
    /// The consumer's number (digits, `+` optional).
    to: Option<String>,
    /// Instead of `to`: the consumer's business-scoped user id.
    recipient: Option<String>,
    /// At most 512 characters, echoed in the message's status webhooks.
    biz_opaque_callback_data: Option<String>,
    /// The message (`type` defaults to `text`).
    #[serde(flatten)]
    message: MessageContent,
}

/// A mark-as-read, optionally showing a typing indicator.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read through `Params` for the API's error codes; this is its schema.
pub(super) struct MarkRead {
    /// Always `whatsapp`.
    messaging_product: String,
    /// Always `read`.
    status: String,
    /// The inbound message's id.
    message_id: String,
    /// `{"type": "text"}`.
    typing_indicator: Option<TypingIndicator>,
}

/// The typing indicator shown while the business answers.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read through `Params`; this is its schema.
pub(super) struct TypingIndicator {
    /// Always `text`.
    #[serde(rename = "type")]
    kind: String,
}

/// A template send names an APPROVED template of the business (else 132001/404).
async fn require_approved(
    s: &Shared,
    grant: &Grant,
    name: &str,
    language: &str,
) -> Result<(), ApiError> {
    let business = grant
        .principal
        .business
        .clone()
        .ok_or_else(ApiError::denied)?;
    let library = templates::library(s, &business).await?;
    if library.approved(name, language, s.app.now()).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            132_001,
            "Template name does not exist in the translation.",
        ));
    }
    Ok(())
}

/// The consumer: what the client named, their number, and whether it was a user id.
/// Addressed by number (`to`) or by business-scoped user id (`recipient`), which lets a
/// business answer a user without ever holding the number.
async fn recipient(
    s: &Shared,
    grant: &Grant,
    number: &PhoneNumberId,
    body: &Value,
) -> Result<(String, E164, bool), ApiError> {
    let top = body
        .as_object()
        .map(Params::root)
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    Ok(match (top.string("to")?, top.string("recipient")?) {
        (Some(t), _) => (
            t.to_owned(),
            E164::parse(t).map_err(|_| ApiError::not_valid("to"))?,
            false,
        ),
        (None, Some(r)) => {
            let phone = s
                .app
                .subjects()
                .subject_by_user_id(&grant.principal, number, r)
                .await
                .map_err(|e| match e {
                    AppError::Domain(_) => ApiError::not_valid("recipient"),
                    other => ApiError::from(other),
                })?;
            (r.to_owned(), phone, true)
        }
        (None, None) => return Err(ApiError::missing("to")),
    })
}

/// The pair limit's key of the consumer: the blind index of their number, never the number.
async fn pair(s: &Shared, state: &PhoneNumber, to: &E164) -> Result<super::Pair, ApiError> {
    let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
    let region = state
        .storage_region()
        .unwrap_or(sealpost_domain::Region::Eu);
    Ok(s.app
        .store()
        .vault()
        .blind_index(business.as_str(), region, to, s.app.now())
        .await
        .map_err(AppError::from)?)
}

/// Marks an inbound message read (POST or PUT, optionally with a typing indicator).
async fn mark_read(
    s: &Shared,
    business: &sealpost_domain::BusinessId,
    number: &PhoneNumberId,
    body: &Value,
) -> Result<(), ApiError> {
    let top = body
        .as_object()
        .map(Params::root)
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    match top.string("messaging_product")? {
        None => return Err(ApiError::missing("messaging_product")),
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
    }
    if top.string("status")? != Some("read") {
        return Err(ApiError::not_valid("status"));
    }
    if let Some(t) = top.object("typing_indicator")? {
        if t.string("type")? != Some("text") {
            return Err(ApiError::not_valid("typing_indicator.type"));
        }
    }
    let raw = top
        .string("message_id")?
        .ok_or_else(|| ApiError::missing("message_id"))?;
    let id =
        sealpost_domain::MessageId::parse(raw).map_err(|_| ApiError::not_valid("message_id"))?;
    let unknown =
        || ApiError::invalid("The message does not exist or belongs to another phone number.");
    let message = s
        .app
        .messaging()
        .message(business, &id)
        .await
        .map_err(|e| {
            if e.is_unavailable() {
                ApiError::from(e)
            } else {
                unknown()
            }
        })?;
    if message.phone_number_id.as_ref() != Some(number)
        || message.direction != Some(sealpost_domain::Direction::Inbound)
    {
        return Err(unknown());
    }
    s.app
        .messaging()
        .record(
            business,
            &id,
            sealpost_domain::MessageCommand::MarkReadByBusiness,
        )
        .await?;
    Ok(())
}

// The send body. Everything below reads the JSON of a send and nothing else; it is one
// function, `parse_send`, so that typed domain content can replace it in one place.

/// Whether a media `link` is an absolute `https://` or `http://` URL with a host.
fn web_link(link: &str) -> bool {
    let lower = link.get(..8).unwrap_or(link).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &link[8..]
    } else if lower.starts_with("http://") {
        &link[7..]
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !link.chars().any(char::is_whitespace)
}

/// Validates a send request; returns its typed content and the callback data. Each member is
/// checked with the API's own error (100 naming the parameter, 131008 missing, 131009 not
/// valid); the object is then read into the domain's `MessageContent` once.
fn parse_send(body: &Value) -> Result<(MessageContent, Option<String>), ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    let top = Params::root(obj);
    match top.string("messaging_product")? {
        None => return Err(ApiError::missing("messaging_product")),
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
    }
    if let Some(r) = top.string("recipient_type")? {
        if r != "individual" {
            return Err(ApiError::not_valid("recipient_type"));
        }
    }
    // Only a known type names a member to read (and appears in an error).
    let kind_name = match top.string("type")? {
        None => "text",
        Some(t) => [
            "text",
            "template",
            "interactive",
            "reaction",
            "location",
            "contacts",
        ]
        .into_iter()
        .chain(MEDIA)
        .find(|k| *k == t)
        .ok_or_else(|| ApiError::not_valid("type"))?,
    };
    if kind_name == "contacts" {
        let cards = top
            .array("contacts")?
            .ok_or_else(|| ApiError::missing("contacts"))?;
        if cards.is_empty() {
            return Err(ApiError::not_valid("contacts"));
        }
    } else {
        check_payload(&top.required_object(kind_name)?, kind_name)?;
    }
    let callback = match top.string("biz_opaque_callback_data")? {
        None => None,
        Some(c) if c.len() <= 512 => Some(c.to_owned()),
        Some(_) => return Err(ApiError::not_valid("biz_opaque_callback_data")),
    };
    let context = top.object("context")?;
    if let Some(ctx) = &context {
        ctx.required_string("message_id")?;
    }
    let mut content = json!({ "type": kind_name });
    content[kind_name] = obj[kind_name].clone();
    if let Some(ctx) = context {
        content["context"] = Value::Object(ctx.obj.clone());
    }
    // Checked above member by member; what the typed reading still refuses (a button without
    // its title, a coordinate that is not a number) is the type's object not being valid.
    let content = serde_json::from_value::<MessageContent>(content)
        .map_err(|_| ApiError::not_valid(kind_name))?;
    Ok((content, callback))
}

/// Checks an `interactive` object by its type: the members each type needs, the action's
/// `name` it must carry, and a call to action's URL.
fn check_interactive(p: &Params<'_>) -> Result<(), ApiError> {
    use sealpost_domain::content::InteractiveKind;
    let kind: InteractiveKind = match p.string("type")? {
        None => return Err(ApiError::missing("interactive.type")),
        Some(t) => serde_json::from_value(json!(t))
            .ok()
            .filter(|k: &InteractiveKind| k.is_outbound())
            .ok_or_else(|| ApiError::not_valid("interactive.type"))?,
    };
    for part in ["header", "body", "footer"] {
        p.object(part)?;
    }
    if matches!(
        kind,
        InteractiveKind::CtaUrl | InteractiveKind::LocationRequestMessage | InteractiveKind::Flow
    ) {
        p.required_object("body")?.required_string("text")?;
    }
    let action = p.required_object("action")?;
    let named = |name: &str| match action.string("name")? {
        Some(n) if n == name => Ok(()),
        Some(_) => Err(ApiError::not_valid("interactive.action.name")),
        None => Err(ApiError::missing("interactive.action.name")),
    };
    match kind {
        InteractiveKind::CtaUrl => {
            named("cta_url")?;
            let parameters = action.required_object("parameters")?;
            parameters.required_string("display_text")?;
            if !web_link(parameters.required_string("url")?) {
                return Err(ApiError::not_valid("interactive.action.parameters.url"));
            }
        }
        InteractiveKind::LocationRequestMessage => named("send_location")?,
        InteractiveKind::Flow => {
            named("flow")?;
            let parameters = action.required_object("parameters")?;
            parameters.required_string("flow_message_version")?;
            parameters.required_string("flow_cta")?;
            let id = parameters.string("flow_id")?;
            if id.is_none() && parameters.string("flow_name")?.is_none() {
                return Err(ApiError::missing(
                    "interactive.action.parameters.flow_id or flow_name",
                ));
            }
            parameters.string("flow_token")?;
            match parameters.string("flow_action")? {
                None | Some("navigate" | "data_exchange") => {}
                Some(_) => {
                    return Err(ApiError::not_valid(
                        "interactive.action.parameters.flow_action",
                    ))
                }
            }
            if let Some(payload) = parameters.object("flow_action_payload")? {
                payload.required_string("screen")?;
                payload.object("data")?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks the object of a send's type, member by member.
fn check_payload(p: &Params<'_>, kind_name: &str) -> Result<(), ApiError> {
    match kind_name {
        "text" => {
            let text = p.required_string("body")?;
            if text.chars().count() > MAX_TEXT {
                return Err(ApiError::not_valid("text.body"));
            }
            p.boolean("preview_url")?;
        }
        m if MEDIA.contains(&m) => {
            let id = p.string("id")?.filter(|v| !v.is_empty());
            let link = p.string("link")?.filter(|v| !v.is_empty());
            if id.is_none() && link.is_none() {
                return Err(ApiError::missing(&format!("{m}.id or {m}.link")));
            }
            if link.is_some_and(|l| !web_link(l)) {
                return Err(ApiError::not_valid(&format!("{m}.link")));
            }
            p.string("caption")?;
            p.string("filename")?;
        }
        "template" => {
            p.required_string("name")?;
            let language = p.required_object("language")?;
            language.required_string("code")?;
            language.string("policy")?;
            p.array("components")?;
        }
        "interactive" => check_interactive(p)?,
        "location" => {
            for coordinate in ["latitude", "longitude"] {
                if p.get(coordinate).is_none() {
                    return Err(ApiError::missing(&p.name(coordinate)));
                }
            }
            p.string("name")?;
            p.string("address")?;
        }
        _ => {
            p.required_string("message_id")?;
            p.string("emoji")?
                .ok_or_else(|| ApiError::missing("reaction.emoji"))?;
        }
    }
    Ok(())
}
