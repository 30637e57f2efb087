//! Notifications of changes of the WABA's business itself, not of a message: template
//! reviews, quality ratings and messaging-limit tiers, throughput upgrades. Business
//! information, kept for the whole retry window and posted in the order of their stream.

use super::{change, Built, Hook};
use crate::app::{AppError, Sealpost};
use sealpost_adapters::ledger::OpenedEvent;
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::aggregates::phone_number::{PhoneNumberEvent, ThroughputTier};
use sealpost_domain::aggregates::templates::TemplateEvent;
use sealpost_domain::integrity::{IntegrityEvent, QualityRating};
use sealpost_domain::{PhoneNumberId, Region, Timestamp};
use serde_json::{json, Value};

/// The `phone_number_quality_update` of a quality-rating change (`FLAGGED` when it falls from
/// green, `UNFLAGGED` when it is green again) or a lowered messaging-limit tier (`DOWNGRADE`),
/// if the app takes that field. The rating is an integrity signal: read through the gate as
/// the business's own (the matrix's `own` cell), and recorded.
pub(super) async fn quality_update(
    app: &Sealpost,
    hook: &Hook,
    e: &OpenedEvent,
) -> Result<Option<Built>, AppError> {
    const FIELD: &str = "phone_number_quality_update";
    if e.header.business_id != hook.business.as_str() || !hook.delivers(FIELD, e.position) {
        return Ok(None);
    }
    let number =
        PhoneNumberId::parse(&e.header.stream.id).map_err(|_| AppError::Corrupt("number id"))?;
    let region: Region = e
        .header
        .region
        .parse()
        .map_err(|_| AppError::Corrupt("event region"))?;
    let principal = sealpost_domain::Principal::business(
        hook.business.clone(),
        &format!("{}:{}", crate::webhooks::WEBHOOK_PRINCIPAL, hook.app_id),
    );
    let req = sealpost_audit::AccessRequest {
        principal: &principal,
        category: sealpost_domain::Category::IntegritySignals,
        purpose: sealpost_domain::Purpose::BusinessApi,
        object: number.as_str(),
        owner: Some(&hook.business),
        region,
    };
    app.gate().authorize(&req).await?;
    let current = |lowered: Option<MessagingLimitTier>| async move {
        let tier = match lowered {
            Some(t) => Some(t),
            None => app.catalog().business(&hook.business).await?.tier,
        };
        Ok::<_, AppError>(tier.unwrap_or(MessagingLimitTier::Tier250).name())
    };
    let (event, at, limit) = match e.decode::<IntegrityEvent>()? {
        IntegrityEvent::QualityRatingChanged { from, to, at } => {
            let event = match (from, to) {
                (_, QualityRating::Green) => "UNFLAGGED",
                (QualityRating::Green, _) => "FLAGGED",
                _ => return Ok(None),
            };
            // The tier as it stood at this event, not as later events left it.
            let view = app
                .catalog()
                .integrity_at(&hook.business, &number, e.header.sequence)
                .await?;
            (event, at, current(view.lowered_tier).await?)
        }
        IntegrityEvent::MessagingTierLowered { to, at } => ("DOWNGRADE", at, to.name()),
        _ => return Ok(None),
    };
    let display = hook
        .numbers
        .get(number.as_str())
        .cloned()
        .unwrap_or_default();
    let value = json!({ "display_phone_number": display, "event": event, "current_limit": limit });
    business_change(hook, e, FIELD, value, at)
}

/// The `phone_number_quality_update` of a number raised to higher throughput
/// (`THROUGHPUT_UPGRADE`, `current_limit` `TIER_UNLIMITED`, as the Cloud API tells it), if the
/// app takes that field. A return to the standard tier has no Cloud API event: none is posted.
pub(super) fn throughput_update(hook: &Hook, e: &OpenedEvent) -> Result<Option<Built>, AppError> {
    const FIELD: &str = "phone_number_quality_update";
    if e.header.business_id != hook.business.as_str() || !hook.delivers(FIELD, e.position) {
        return Ok(None);
    }
    let PhoneNumberEvent::ThroughputChanged {
        tier: ThroughputTier::High,
        at,
    } = e.decode::<PhoneNumberEvent>()?
    else {
        return Ok(None);
    };
    let display = hook
        .numbers
        .get(e.header.stream.id.as_str())
        .cloned()
        .unwrap_or_default();
    let value = json!({ "display_phone_number": display, "event": "THROUGHPUT_UPGRADE",
                        "current_limit": "TIER_UNLIMITED" });
    business_change(hook, e, FIELD, value, at)
}

/// The notification of `e`, a change of `field` of the WABA's business itself (not of a
/// message): business information, kept for the whole retry window and posted in the order of
/// its stream.
fn business_change(
    hook: &Hook,
    e: &OpenedEvent,
    field: &str,
    value: Value,
    at: Timestamp,
) -> Result<Option<Built>, AppError> {
    let body =
        serde_json::to_vec(&change(hook, field, value)).map_err(|_| AppError::Encode("json"))?;
    let stream = format!("{}-{}", e.header.stream.kind, e.header.stream.id);
    Ok(Some(Built {
        id: format!("ntf-{stream}-{}", e.header.sequence),
        lane: stream,
        body,
        expires: Timestamp::from_millis(at.millis() + crate::webhooks::RETRY_WINDOW_MS),
        since: at,
        source: None,
        trace: None,
    }))
}

/// The `message_template_status_update` of a template's review, if the app takes that field.
pub(super) fn template_status(hook: &Hook, e: &OpenedEvent) -> Result<Option<Built>, AppError> {
    const FIELD: &str = "message_template_status_update";
    if e.header.business_id != hook.business.as_str() || !hook.delivers(FIELD, e.position) {
        return Ok(None);
    }
    let TemplateEvent::TemplateReviewed {
        id,
        name,
        language,
        status,
        at,
    } = e.decode::<TemplateEvent>()?
    else {
        return Ok(None);
    };
    let value = json!({
        "event": status,
        "message_template_id": id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)),
        "message_template_name": name,
        "message_template_language": language,
        "reason": "NONE",
    });
    business_change(hook, e, FIELD, value, at)
}
