//! What a business offers and how it is set up: its template library, its own record, and
//! the commands an owner runs on its phone numbers. Handlers and the pipeline reach these
//! streams through here, never through the executor.

use super::*;
use sealpost_adapters::ledger::OpenedEvent;
use sealpost_adapters::projection::{Fold, Persisted};
use sealpost_domain::aggregates::templates::{TemplateCommand, TemplateLibrary};
use sealpost_domain::apps::{AppEvent, APP_STREAM_TYPE};
use std::collections::BTreeMap;

service! {
    /// Templates, numbers and businesses, over the executor and the clock.
    Catalog<'a> {
        exec: &'a Executor,
        store: &'a Arc<EventStore>,
        clock: &'a dyn Clock,
    }
}

impl Catalog<'_> {
    /// A business's template library.
    pub async fn templates(&self, business: &BusinessId) -> Result<TemplateLibrary, AppError> {
        Ok(self
            .exec
            .load::<TemplateLibrary>(business.as_str(), business.as_str())
            .await?
            .0)
    }

    /// Runs a command of a business's template library as `actor`.
    pub async fn template_command(
        &self,
        actor: &Principal,
        business: &BusinessId,
        region: Region,
        command: TemplateCommand,
    ) -> Result<(), AppError> {
        let meta = CommandMeta::new(business.as_str(), region, actor);
        self.exec
            .execute::<TemplateLibrary>(business.as_str(), command, &meta, self.now())
            .await?;
        Ok(())
    }

    /// A business's record (name, messaging-limit tier).
    pub async fn business(&self, id: &BusinessId) -> Result<Business, AppError> {
        let (state, _) = self.exec.load::<Business>(id.as_str(), id.as_str()).await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// Runs an owner's command on a phone number of `business` (settings, registration).
    pub async fn number_command(
        &self,
        actor: &Principal,
        number: &PhoneNumberId,
        home: (&BusinessId, Region),
        command: PhoneNumberCommand,
    ) -> Result<(), AppError> {
        let meta = CommandMeta::new(home.0.as_str(), home.1, actor);
        self.exec
            .execute::<PhoneNumber>(number.as_str(), command, &meta, self.now())
            .await?;
        Ok(())
    }
}

/// Everything recorded about apps: app id → (business, waba, callback url if subscribed); the
/// persisted `apps` projection, caught up with the log.
pub async fn apps(store: &EventStore) -> Result<BTreeMap<String, AppRow>, AppError> {
    Ok(Persisted::<Apps>::refresh(store).await?.state.0)
}

/// An app: its business, WABA id and region, its webhook subscription once made, and whether
/// it is subscribed to its WABA.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppRow {
    /// The business.
    pub business: BusinessId,
    /// The WhatsApp Business Account it serves.
    pub waba_id: String,
    /// Where the business's data lives.
    pub region: Region,
    /// The newest verified webhook subscription.
    pub subscription: Option<Subscription>,
    /// The log positions between which it was unsubscribed (`DELETE …/subscribed_apps` to
    /// the next `POST`; open while it still is): what happened then is never posted, however
    /// late the worker gets to it.
    pub muted: Vec<(u64, Option<u64>)>,
}

impl AppRow {
    /// Subscribed to the WABA's webhooks (`subscribed_apps`) now: from registration until
    /// unsubscribed, that is unless its last unsubscription is still open.
    pub fn waba_subscribed(&self) -> bool {
        !unsubscribed(&self.muted)
    }
}

/// Whether the last interval of `muted` is still open.
fn unsubscribed(muted: &[(u64, Option<u64>)]) -> bool {
    muted.last().is_some_and(|(_, end)| end.is_none())
}

/// An app's webhook subscription: where and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subscription {
    /// The verified callback URL.
    pub callback_url: String,
    /// The fields subscribed (`messages`, `message_template_status_update`, …).
    pub fields: Vec<String>,
}

/// Apps by id (business information, nothing personal).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Apps(pub BTreeMap<String, AppRow>);

/// Notes in `muted` (the log positions between which an app was unsubscribed from its WABA)
/// a subscription (`on`) or an unsubscription recorded at `position`.
pub fn mute(muted: &mut Vec<(u64, Option<u64>)>, on: bool, position: u64) {
    match (on, unsubscribed(muted)) {
        (true, true) => {
            if let Some((_, end)) = muted.last_mut() {
                *end = Some(position);
            }
        }
        (false, false) => muted.push((position, None)),
        _ => {}
    }
}

impl Apps {
    fn waba_subscribed(&mut self, app_id: &str, on: bool, position: u64) {
        if let Some(a) = self.0.get_mut(app_id) {
            mute(&mut a.muted, on, position);
        }
    }
}

impl Fold for Apps {
    const NAME: &'static str = "apps";
    const VERSION: u64 = 2;

    fn wants(header: &sealpost_adapters::store::RowHeader) -> bool {
        header.stream.kind == APP_STREAM_TYPE
    }

    fn apply(&mut self, e: &OpenedEvent) -> Result<(), sealpost_adapters::store::StoreError> {
        let region: Region = e
            .header
            .region
            .parse()
            .map_err(|_| sealpost_adapters::store::StoreError::Corrupt("region"))?;
        match e.decode::<AppEvent>()? {
            AppEvent::AppRegistered {
                app_id,
                business_id,
                waba_id,
                ..
            } => {
                let row = AppRow {
                    business: business_id,
                    waba_id,
                    region,
                    subscription: None,
                    muted: Vec::new(),
                };
                self.0.insert(app_id, row);
            }
            AppEvent::WebhookSubscribed {
                callback_url,
                fields,
                ..
            } => {
                if let Some(a) = self.0.get_mut(&e.header.stream.id) {
                    a.subscription = Some(Subscription {
                        callback_url,
                        fields,
                    });
                }
            }
            AppEvent::WabaSubscribed { .. } => {
                self.waba_subscribed(&e.header.stream.id, true, e.position);
            }
            AppEvent::WabaUnsubscribed { .. } => {
                self.waba_subscribed(&e.header.stream.id, false, e.position);
            }
            AppEvent::WebhookDeliveryExhausted { .. } => {}
        }
        Ok(())
    }
}
