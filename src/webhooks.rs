//! Webhooks: every subscribed app gets signed Cloud API notifications of its business's
//! inbound messages and message statuses.
//!
//! Each app has its own worker and its own durable checkpoint (`webhook:<app id>`), so a slow or
//! dead endpoint of one business never delays another's. A worker posts one notification at a
//! time and moves its checkpoint past an event only once the endpoint answered 200: delivery is
//! at-least-once and survives a restart (re-sent notifications carry the same
//! `X-Sealpost-Notification-Id`, and the Cloud API ids inside let the business de-duplicate).
//! A non-200 answer is retried with exponential backoff and jitter for up to 7 days, never
//! beyond the message's retention; an exhausted delivery is recorded.

use crate::app::{fields, AppError, Sealpost};
use rand::Rng as _;
use sealpost_adapters::crypto;
use sealpost_adapters::ledger::{OpenedEvent, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_adapters::webhook::Poster;
use sealpost_audit::FieldRef;
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::apps::{AppEvent, APP_STREAM_TYPE};
use sealpost_domain::time::DAY_MS;
use sealpost_domain::MessageContent;
use sealpost_domain::{
    BusinessId, FieldScope, MessageEvent, MessageId, Opened, PhoneNumberId, Principal, Purpose,
    Region, SubjectId, Timestamp, E164,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a notification is retried: 7 days.
pub const RETRY_WINDOW_MS: i64 = 7 * DAY_MS;
/// First retry delay; doubled per attempt up to [`RETRY_MAX`].
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(3_600);
/// The principal webhooks read content and numbers as.
pub const WEBHOOK_PRINCIPAL: &str = "webhooks";

/// One app's subscription.
#[derive(Clone)]
pub struct Hook {
    /// The app.
    pub app_id: String,
    /// Its business.
    pub business: BusinessId,
    /// The WABA id that goes in `entry[].id`.
    pub waba_id: String,
    /// Where the business's data lives.
    pub region: Region,
    /// The verified callback URL.
    pub callback_url: String,
    /// The app secret (signs the body).
    pub secret: String,
    /// Business numbers: phone number id → display number.
    pub numbers: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

fn principal() -> Principal {
    Principal::processor(WEBHOOK_PRINCIPAL)
}

/// Records an app event.
pub async fn record(
    app: &Sealpost,
    app_id: &str,
    business: &BusinessId,
    region: Region,
    event: AppEvent,
) -> Result<(), AppError> {
    let metadata = sealpost_adapters::exec::CommandMeta::new(
        business.as_str(),
        region,
        &Principal::processor("business-manager"),
    )
    .to_map();
    let ctx = sealpost_adapters::ledger::EventContext {
        business_id: business.as_str().to_owned(),
        region,
        epoch: None,
    };
    let stream = StreamId::new(APP_STREAM_TYPE, app_id);
    app.store()
        .append_at_end(&stream, &ctx, vec![PlainEvent::of(&event, metadata)?])
        .await?;
    Ok(())
}

struct Built {
    /// The consumer it tells of: one consumer's notifications are posted in log order.
    lane: SubjectId,
    id: String,
    body: Vec<u8>,
    expires: Timestamp,
    /// When the event it tells of was recorded: the 7-day retry window runs from here, so a
    /// restart does not open a new one.
    since: Timestamp,
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
) -> Result<Option<(String, String)>, AppError> {
    let Opened::Plain(phone) = app
        .subjects()
        .read_phone(&principal(), Purpose::Delivery, subject)
        .await?
    else {
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
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": hook.waba_id, "changes": [{ "field": "messages", "value": value }] }] })
}

/// The notification for one event, if it makes one (and its content still exists).
async fn build(app: &Sealpost, hook: &Hook, e: &OpenedEvent) -> Result<Option<Built>, AppError> {
    if e.header.stream.kind != "message" || e.header.business_id != hook.business.as_str() {
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
    let history = app
        .store()
        .read_stream(&StreamId::new("message", id.as_str()), 0)
        .await?;
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
            lane: subject.clone(),
            id: notification_id,
            body,
            expires: expires_for(epoch),
            since: at,
        }))
    };
    match status {
        None => {
            let (mut header, mut content, mut kind, mut profile) = (None, None, None, None);
            for h in &history {
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
            let Some((wa_id, user_id)) = contact(app, hook, region, &header.subject_id).await?
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
            let Some(MessageEvent::OutboundMessageAccepted {
                header,
                callback_data,
                ..
            }) = history.iter().find_map(|h| {
                h.decode::<MessageEvent>()
                    .ok()
                    .filter(|m| matches!(m, MessageEvent::OutboundMessageAccepted { .. }))
            })
            else {
                return Ok(None);
            };
            let Some((wa_id, user_id)) = contact(app, hook, region, &header.subject_id).await?
            else {
                return Ok(None);
            };
            let category = match header.category {
                PricingCategory::Marketing => "marketing",
                PricingCategory::Utility => "utility",
                PricingCategory::Authentication => "authentication",
                PricingCategory::Service => "service",
            };
            let mut s = json!({
                "id": id.as_str(),
                "status": status,
                "timestamp": at.unix_seconds().to_string(),
                "recipient_id": wa_id,
                "pricing": { "billable": true, "pricing_model": "PMP", "category": category, "type": "regular" },
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

/// Posts one notification until the endpoint answers 200, the retry window closes or the
/// worker is stopped. Returns whether it was delivered (`None`: stopped).
async fn deliver(
    app: &Sealpost,
    hook: &Hook,
    client: &Poster,
    n: &Built,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<bool>, AppError> {
    let first = n.since;
    let signature = format!(
        "sha256={}",
        crypto::hmac_hex(hook.secret.as_bytes(), &n.body)
    );
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let traceparent = sealpost_adapters::exec::CommandMeta::new(
            hook.business.as_str(),
            hook.region,
            &principal(),
        )
        .to_map()
        .get("traceparent")
        .cloned();
        let mut headers = vec![
            ("x-hub-signature-256", signature.clone()),
            ("x-sealpost-notification-id", n.id.clone()),
        ];
        if let Some(tp) = traceparent {
            headers.push(("traceparent", tp));
        }
        match client
            .post(&hook.callback_url, n.body.clone(), &headers)
            .await
        {
            Ok(200) => return Ok(Some(true)),
            Ok(status) => {
                tracing::warn!(attempt, status, app_id = %hook.app_id, "webhook not accepted; retrying")
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, app_id = %hook.app_id, "webhook not delivered; retrying")
            }
        }
        let now = app.now();
        if now.millis() - first.millis() >= RETRY_WINDOW_MS || now >= n.expires {
            record(
                app,
                &hook.app_id,
                &hook.business,
                hook.region,
                AppEvent::WebhookDeliveryExhausted {
                    notification_id: n.id.clone(),
                    attempts: attempt,
                    at: now,
                },
            )
            .await?;
            return Ok(Some(false));
        }
        let backoff = RETRY_BASE
            .saturating_mul(1u32 << attempt.min(20))
            .min(RETRY_MAX);
        let jitter =
            Duration::from_millis(rand::rng().random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::select! {
            _ = stop.changed() => return Ok(None),
            () = tokio::time::sleep(backoff / 2 + jitter) => {}
        }
    }
}

/// The durable checkpoint of an app's webhook worker.
pub fn checkpoint_name(app_id: &str) -> String {
    format!("webhook:{app_id}")
}

/// Waits a second before trying again; whether the worker was told to stop meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(Duration::from_secs(1)) => false,
    }
}

/// The events a webhook tells of; the rest of the log is passed over unopened.
fn notifiable(h: &sealpost_adapters::store::RowHeader) -> bool {
    h.stream.kind == "message"
        && matches!(
            h.event_type.as_str(),
            "InboundMessageForwarded"
                | "MessageSent"
                | "MessageDelivered"
                | "MessageRead"
                | "MessageFailed"
        )
}

/// Notifications of one app built at once.
pub const BUILDS_IN_FLIGHT: usize = 16;
/// Notifications of one app posted at once (each consumer's one at a time, in log order).
pub const POSTS_IN_FLIGHT: usize = 16;

/// Builds a notification, trying again while the store or the gate is in trouble (the
/// checkpoint must not pass it). `None`: told to stop.
async fn build_retrying(
    app: &Sealpost,
    hook: &Hook,
    e: &OpenedEvent,
    mut stop: watch::Receiver<bool>,
) -> Option<Option<Built>> {
    loop {
        match build(app, hook, e).await {
            Ok(b) => return Some(b),
            Err(err) => {
                tracing::error!(error = %err, "webhook notification could not be built; trying again");
                if pause(&mut stop).await {
                    return None;
                }
            }
        }
    }
}

/// Posts one consumer's notifications in order, each until delivered or given up on and
/// recorded. `false`: told to stop.
async fn post_lane(
    app: &Sealpost,
    hook: &Hook,
    client: &Poster,
    lane: Vec<Built>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    for n in lane {
        loop {
            match deliver(app, hook, client, &n, &mut stop).await {
                Ok(Some(_)) => break,
                Ok(None) => return false,
                Err(err) => {
                    tracing::error!(error = %err, "webhook outcome not recorded; trying again");
                    if pause(&mut stop).await {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Runs one app's webhook worker until `stop` turns true. A batch of the log is built
/// ([`BUILDS_IN_FLIGHT`] at once) and posted ([`POSTS_IN_FLIGHT`] consumers at once, each
/// consumer's notifications in order); the checkpoint moves past the batch once every one of
/// them was delivered or given up on and recorded. A stop mid-batch leaves the checkpoint
/// before it: its notifications are posted again on the next start (at least once, with the
/// same notification ids).
pub async fn run(app: Sealpost, hook: Hook, mut stop: watch::Receiver<bool>) {
    use futures::StreamExt as _;
    let hook = Arc::new(hook);
    let checkpoint = checkpoint_name(&hook.app_id);
    let client = Poster::new();
    let mut sub = match app.store().subscribe_durable(&checkpoint).await {
        Ok(s) => s.only(notifiable),
        Err(e) => {
            tracing::error!(error = %e, "webhook worker could not start");
            return;
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match sub.try_next_batch().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "webhook worker could not read the log");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
            continue;
        }
        let builds = batch.into_iter().map(|e| {
            let (app, hook, stop) = (app.clone(), hook.clone(), stop.clone());
            async move { build_retrying(&app, &hook, &e, stop).await }
        });
        let built: Vec<Option<Option<Built>>> = futures::stream::iter(builds)
            .buffered(BUILDS_IN_FLIGHT)
            .collect()
            .await;
        let Some(built) = built.into_iter().collect::<Option<Vec<_>>>() else {
            return;
        };
        let lanes =
            crate::pipeline::grouped(built.into_iter().flatten().map(|n| (n.lane.clone(), n)));
        let posts = lanes.into_iter().map(|(_, lane)| {
            let (app, hook, client, stop) =
                (app.clone(), hook.clone(), client.clone(), stop.clone());
            async move { post_lane(&app, &hook, &client, lane, stop).await }
        });
        let posted: Vec<bool> = futures::stream::iter(posts)
            .buffer_unordered(POSTS_IN_FLIGHT)
            .collect()
            .await;
        if posted.contains(&false) {
            return;
        }
        while let Err(err) = app
            .store()
            .log()
            .save_checkpoint(&checkpoint, sub.position())
            .await
        {
            tracing::error!(error = %err, "webhook checkpoint not saved; trying again");
            if pause(&mut stop).await {
                return;
            }
        }
    }
}
