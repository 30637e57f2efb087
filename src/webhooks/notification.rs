//! What a notification says: the Cloud API body of an inbound message or a message status,
//! its content and the consumer read through the gate as the webhook pipeline.

mod business;

use super::{principal, Hook};
use crate::app::{fields, AppError, Origin, Sealpost};
use business::{quality_update, template_status, throughput_update};
use sealpost_adapters::ledger::OpenedEvent;
use sealpost_adapters::store::StreamId;
use sealpost_audit::FieldRef;
use sealpost_domain::integrity::INTEGRITY_STREAM_TYPE;
use sealpost_domain::MessageContent;
use sealpost_domain::{
    BusinessId, FieldScope, MessageEvent, MessageId, Opened, PhoneNumberId, Purpose, Region,
    SubjectId, Timestamp, E164,
};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// What a batch of notifications reads of the log, read once for the whole batch: each
/// message's events and each consumer's origin (where the sealed number is). A notification
/// whose message or consumer is not here reads its own.
#[derive(Default)]
pub(super) struct Known {
    histories: HashMap<String, Vec<OpenedEvent>>,
    origins: HashMap<SubjectId, Origin>,
}

impl Known {
    /// Reads what the notifications of `batch` for `business` need, in two reads of the log.
    pub(super) async fn read(
        app: &Sealpost,
        business: &BusinessId,
        batch: &[OpenedEvent],
    ) -> Result<Self, AppError> {
        let ids: BTreeSet<&str> = batch
            .iter()
            .filter(|e| {
                e.header.stream.kind == "message" && e.header.business_id == business.as_str()
            })
            .map(|e| e.header.stream.id.as_str())
            .collect();
        let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        let histories = app
            .store()
            .read_streams(business.as_str(), "message", &ids)
            .await?;
        // A message stream starts with the event that names its consumer.
        let subjects: BTreeSet<SubjectId> = histories
            .values()
            .filter_map(|h| match h.first()?.decode::<MessageEvent>().ok()? {
                MessageEvent::OutboundMessageAccepted { header, .. } => Some(header.subject_id),
                MessageEvent::InboundMessageReceived { header, .. } => Some(header.subject_id),
                _ => None,
            })
            .collect();
        let subjects: Vec<SubjectId> = subjects.into_iter().collect();
        let origins = app.subjects().origins(business, &subjects).await?;
        Ok(Self { histories, origins })
    }
}

/// The stream type of phone numbers (their aggregate's).
const PHONE_NUMBER_STREAM: &str = "phone_number";

/// The events a webhook tells of; the rest of the log is passed over unopened.
pub(super) fn notifiable(h: &sealpost_adapters::store::RowHeader) -> bool {
    (h.stream.kind == "templates" && h.event_type == "TemplateReviewed")
        || (h.stream.kind == PHONE_NUMBER_STREAM && h.event_type == "ThroughputChanged")
        || (h.stream.kind == INTEGRITY_STREAM_TYPE
            && matches!(
                h.event_type.as_str(),
                "QualityRatingChanged" | "MessagingTierLowered"
            ))
        || h.stream.kind == "message"
            && matches!(
                h.event_type.as_str(),
                "InboundMessageForwarded"
                    | "MessageSent"
                    | "MessageDelivered"
                    | "MessageRead"
                    | "MessageFailed"
            )
}

/// One notification, ready to post.
pub(super) struct Built {
    /// The consumer it tells of (or `templates`): one consumer's notifications are posted in
    /// log order.
    pub(super) lane: String,
    pub(super) id: String,
    /// The body; empty for a Local Storage region's notification, whose body is built again
    /// for each attempt from [`Built::source`] and dropped after it.
    pub(super) body: Vec<u8>,
    pub(super) expires: Timestamp,
    /// When the event it tells of was recorded: the 7-day retry window runs from here, so a
    /// restart does not open a new one.
    pub(super) since: Timestamp,
    /// The event (inner fields still sealed) a Local Storage region's notification is built
    /// from at each attempt: its content is never held by this node between attempts (issue
    /// 14: data in use outside its region at most 60 minutes).
    pub(super) source: Option<OpenedEvent>,
    /// The trace context of the event it tells of: its post is a span of that trace, and the
    /// request carries it as `traceparent`.
    pub(super) trace: Option<String>,
}

impl Built {
    /// Drops the body of a Local Storage region's notification, keeping what builds it again.
    pub(super) fn held_only_while_posted(mut self, e: &OpenedEvent) -> Self {
        if sealpost_domain::Region::code_is_local_storage(&e.header.region) {
            zeroize::Zeroize::zeroize(&mut self.body);
            self.source = Some(e.clone());
        }
        self
    }
}

/// Opens a sealed field of a message through the gate, as the webhook pipeline.
async fn open(
    app: &Sealpost,
    hook: &Hook,
    region: Region,
    object: &str,
    scope: FieldScope,
    field: &str,
    sealed: &sealpost_domain::Sealed,
) -> Result<Opened<String>, AppError> {
    let field = FieldRef {
        scope,
        field,
        sealed,
    };
    Ok(
        match crate::app::open_content(
            app.gate(),
            &principal(),
            Purpose::Delivery,
            &hook.business,
            region,
            object,
            field,
        )
        .await?
        {
            Opened::Shredded => Opened::Shredded,
            Opened::Plain(b) => Opened::Plain(String::from_utf8_lossy(&b).into_owned()),
        },
    )
}

async fn contact(
    app: &Sealpost,
    hook: &Hook,
    region: Region,
    subject: &SubjectId,
    known: &Known,
) -> Result<Option<(String, String)>, AppError> {
    let subjects = app.subjects();
    let phone = match known.origins.get(subject) {
        Some(origin) => {
            subjects
                .open_phone(&principal(), Purpose::Delivery, subject, origin)
                .await?
        }
        None => {
            subjects
                .read_phone(&principal(), Purpose::Delivery, &hook.business, subject)
                .await?
        }
    };
    let Opened::Plain(phone) = phone else {
        return Ok(None);
    };
    let e164 = E164::parse(&phone).map_err(|_| AppError::Corrupt("stored number"))?;
    let user_id = app
        .store()
        .vault()
        .user_id(hook.business.as_str(), region, &e164, app.now())
        .await?;
    Ok(Some((phone, user_id)))
}

/// A status's `conversation`: one per consumer, category and UTC day (a service conversation
/// lives inside the customer-service window), its id a hash of those (never the consumer's
/// number), `origin.type` the message's pricing category, and on `sent` when it expires.
fn conversation(
    hook: &Hook,
    header: &sealpost_domain::aggregates::message::OutboundHeader,
    accepted_at: i64,
    with_expiry: bool,
) -> Value {
    let day = accepted_at.div_euclid(sealpost_domain::time::DAY_MS);
    let id = sealpost_adapters::crypto::hmac_hex(
        b"sealpost/conversation/v1",
        format!(
            "{}\n{}\n{}\n{day}",
            hook.business.as_str(),
            header.subject_id.as_str(),
            header.category.name()
        )
        .as_bytes(),
    );
    let mut c = json!({
        "id": &id[..32],
        "origin": { "type": header.category.name() },
    });
    if with_expiry {
        let ends = (day + 1) * sealpost_domain::time::DAY_MS / 1_000;
        c["expiration_timestamp"] = json!(ends.to_string());
    }
    c
}

fn envelope(hook: &Hook, number: &PhoneNumberId, value: Value) -> Value {
    let display = hook
        .numbers
        .get(number.as_str())
        .cloned()
        .unwrap_or_default();
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({ "display_phone_number": display, "phone_number_id": number.as_str() });
    change(hook, "messages", value)
}

/// A notification of one change of `field` of the app's WABA.
pub(super) fn change(hook: &Hook, field: &str, value: Value) -> Value {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": hook.waba_id, "changes": [{ "field": field, "value": value }] }] })
}

/// The notification for one event, if it makes one (and its content still exists), in the
/// event's trace.
pub(super) async fn build(
    app: &Sealpost,
    hook: &Hook,
    e: &OpenedEvent,
    known: &Known,
) -> Result<Option<Built>, AppError> {
    let trace = e
        .metadata
        .get(sealpost_adapters::ledger::meta::TRACEPARENT)
        .cloned();
    Ok(build_untraced(app, hook, e, known)
        .await?
        .map(|b| Built { trace, ..b }))
}

async fn build_untraced(
    app: &Sealpost,
    hook: &Hook,
    e: &OpenedEvent,
    known: &Known,
) -> Result<Option<Built>, AppError> {
    if e.header.stream.kind == "templates" {
        return template_status(hook, e);
    }
    if e.header.stream.kind == INTEGRITY_STREAM_TYPE {
        return quality_update(app, hook, e).await;
    }
    if e.header.stream.kind == PHONE_NUMBER_STREAM {
        return throughput_update(hook, e);
    }
    if e.header.stream.kind != "message"
        || e.header.business_id != hook.business.as_str()
        || !hook.delivers("messages", e.position)
    {
        return Ok(None);
    }
    let status = match e.header.event_type.as_str() {
        "InboundMessageForwarded" => None,
        "MessageSent" => Some("sent"),
        "MessageDelivered" => Some("delivered"),
        "MessageRead" => Some("read"),
        "MessageFailed" => Some("failed"),
        _ => return Ok(None),
    };
    let id = MessageId::parse(&e.header.stream.id).map_err(|_| AppError::Corrupt("message id"))?;
    // A Local Storage number's messages are sealed under its elected region's keys.
    let region: Region = e
        .header
        .region
        .parse()
        .map_err(|_| AppError::Corrupt("event region"))?;
    let read;
    let history = match known.histories.get(id.as_str()) {
        Some(h) => h,
        None => {
            read = app
                .store()
                .read_stream(
                    &StreamId::new(hook.business.as_str(), "message", id.as_str()),
                    0,
                )
                .await?;
            &read
        }
    };
    let at = Timestamp::from_millis(e.header.recorded_at);
    let notification_id = format!("ntf-{}-{}", id.as_str(), e.header.sequence);
    let expires_for = |epoch| app.policy().expiry_of(epoch);
    // The notification of `value` for the number's webhook, kept as long as the message's epoch.
    let built = move |number: &PhoneNumberId,
                      subject: &SubjectId,
                      epoch,
                      value|
          -> Result<Option<Built>, AppError> {
        let body = serde_json::to_vec(&envelope(hook, number, value))
            .map_err(|_| AppError::Encode("json"))?;
        Ok(Some(Built {
            lane: subject.as_str().to_owned(),
            id: notification_id,
            body,
            expires: expires_for(epoch),
            since: at,
            source: None,
            trace: None,
        }))
    };
    match status {
        None => {
            let (mut header, mut content, mut kind, mut profile) = (None, None, None, None);
            for h in history {
                match h.decode::<MessageEvent>()? {
                    MessageEvent::InboundMessageReceived { header: hd, .. } => header = Some(hd),
                    MessageEvent::InboundMessageDecrypted {
                        kind: k,
                        content: c,
                        profile_name,
                        ..
                    } => {
                        kind = Some(k);
                        content = Some(c);
                        profile = profile_name;
                    }
                    _ => {}
                }
            }
            let (Some(header), Some(content), Some(kind)) = (header, content, kind) else {
                return Ok(None);
            };
            let scope = FieldScope::Message {
                epoch: header.epoch,
                subject: header.subject_id.clone(),
                message: id.clone(),
            };
            let Opened::Plain(body) = open(
                app,
                hook,
                region,
                id.as_str(),
                scope.clone(),
                fields::CONTENT,
                &content,
            )
            .await?
            else {
                return Ok(None);
            };
            let name = match &profile {
                Some(p) => open(
                    app,
                    hook,
                    region,
                    id.as_str(),
                    scope,
                    fields::PROFILE_NAME,
                    p,
                )
                .await?
                .plain()
                .unwrap_or_default(),
                None => String::new(),
            };
            let Some((wa_id, user_id)) =
                contact(app, hook, region, &header.subject_id, known).await?
            else {
                return Ok(None);
            };
            let kind_name = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            let mut message = json!({ "from": wa_id, "id": id.as_str(), "timestamp": at.unix_seconds().to_string(), "type": kind_name });
            // The typed content as sealed; the notification carries its object under its type.
            let content = MessageContent::from_bytes(body.as_bytes());
            if content.payload.type_name() == kind_name {
                let wire =
                    serde_json::to_value(&content).map_err(|_| AppError::Encode("content"))?;
                message[&kind_name] = wire[&kind_name].clone();
                if let Some(ctx) = wire.get("context") {
                    message["context"] = ctx.clone();
                }
            } else {
                message["text"] = json!({ "body": body });
            }
            let value = json!({
                "contacts": [{ "profile": { "name": name }, "wa_id": wa_id, "user_id": user_id }],
                "messages": [message],
            });
            built(
                &header.phone_number_id,
                &header.subject_id,
                header.epoch,
                value,
            )
        }
        Some(status) => {
            let Some((
                MessageEvent::OutboundMessageAccepted {
                    header,
                    callback_data,
                    ..
                },
                accepted_at,
            )) = history.iter().find_map(|h| {
                h.decode::<MessageEvent>()
                    .ok()
                    .filter(|m| matches!(m, MessageEvent::OutboundMessageAccepted { .. }))
                    .map(|m| (m, h.header.recorded_at))
            })
            else {
                return Ok(None);
            };
            let Some((wa_id, user_id)) =
                contact(app, hook, region, &header.subject_id, known).await?
            else {
                return Ok(None);
            };
            let pricing = header.category.pricing();
            let conversation = conversation(hook, &header, accepted_at, status == "sent");
            let mut s = json!({
                "id": id.as_str(),
                "status": status,
                "timestamp": at.unix_seconds().to_string(),
                "recipient_id": wa_id,
                "conversation": conversation,
                "pricing": {
                    "billable": pricing.billable,
                    "pricing_model": "PMP",
                    "category": pricing.category.name(),
                    "type": pricing.kind,
                },
            });
            if let Some(cb) = &callback_data {
                let scope = FieldScope::Message {
                    epoch: header.epoch,
                    subject: header.subject_id.clone(),
                    message: id.clone(),
                };
                if let Opened::Plain(v) = open(
                    app,
                    hook,
                    region,
                    id.as_str(),
                    scope,
                    fields::CALLBACK_DATA,
                    cb,
                )
                .await?
                {
                    s["biz_opaque_callback_data"] = json!(v);
                }
            }
            if let Ok(MessageEvent::MessageFailed { code, .. }) = e.decode::<MessageEvent>() {
                let title = match code {
                    131_048 => "Spam rate limit hit",
                    131_000 => "Something went wrong",
                    _ => "Message undeliverable",
                };
                s["errors"] = json!([{ "code": code, "title": title, "message": title,
                    "error_data": { "details": "The message could not be delivered." } }]);
            }
            let value =
                json!({ "contacts": [{ "wa_id": wa_id, "user_id": user_id }], "statuses": [s] });
            built(
                &header.phone_number_id,
                &header.subject_id,
                header.epoch,
                value,
            )
        }
    }
}
