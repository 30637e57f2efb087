//! Apps of a business (Business Manager) and their webhook subscriptions.

use crate::ids::BusinessId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The stream type of app events (one stream per app id).
pub const APP_STREAM_TYPE: &str = "app";

/// What happened to an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppEvent {
    /// An app was registered for a business (its secret is a key in the key store).
    AppRegistered {
        /// The app id.
        app_id: String,
        /// The business.
        business_id: BusinessId,
        /// The WhatsApp Business Account it serves.
        waba_id: String,
        /// When.
        at: Timestamp,
    },
    /// A webhook callback was verified (`hub.challenge`) and subscribed.
    WebhookSubscribed {
        /// The `object` (always `whatsapp_business_account`).
        object: String,
        /// The callback URL (business information).
        callback_url: String,
        /// The subscribed fields (`messages`, …).
        fields: Vec<String>,
        /// When.
        at: Timestamp,
    },
    /// The app was subscribed to its WhatsApp Business Account's webhooks
    /// (`POST /{waba-id}/subscribed_apps`; an app is subscribed from its registration).
    WabaSubscribed {
        /// The WABA.
        waba_id: String,
        /// When.
        at: Timestamp,
    },
    /// The app was unsubscribed from its WABA's webhooks (`DELETE …/subscribed_apps`): it gets
    /// none of what happens until subscribed again.
    WabaUnsubscribed {
        /// The WABA.
        waba_id: String,
        /// When.
        at: Timestamp,
    },
    /// A notification could not be delivered within its retry window and was given up.
    WebhookDeliveryExhausted {
        /// The notification's stable id.
        notification_id: String,
        /// Attempts made.
        attempts: u32,
        /// When.
        at: Timestamp,
    },
}

crate::shim::domain_event!(AppEvent {
    AppRegistered => "1",
    WebhookSubscribed => "1",
    WebhookDeliveryExhausted => "1",
    WabaSubscribed => "1",
    WabaUnsubscribed => "1",
});
