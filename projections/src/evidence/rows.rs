//! What the evidence projections answer with besides access entries: pages of them,
//! statistics rows and billing lines.

use sealpost_adapters::store::AccessEntry;
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::MessageKind;
use serde::{Deserialize, Serialize};

/// One page of access entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessPage {
    /// The entries, in log order.
    pub entries: Vec<AccessEntry>,
    /// Cursor for the next page, if there is one.
    pub next: Option<u64>,
}

/// One statistics group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatRow {
    /// Business.
    pub business_id: String,
    /// Business phone number id.
    pub phone_number_id: String,
    /// UTC day.
    pub day: String,
    /// Message type.
    pub kind: MessageKind,
    /// `sent`, `delivered`, `read`, `failed` or `inbound`.
    pub metric: String,
    /// The count, or `None` when fewer consumers than the minimum group size are in it.
    pub count: Option<u64>,
}

/// One billing line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BillingRow {
    /// Business.
    pub business_id: String,
    /// UTC month, `YYYY-MM`.
    pub month: String,
    /// Pricing category.
    pub category: PricingCategory,
    /// Pricing model.
    pub pricing_model: String,
    /// Delivered messages charged.
    pub billable: u64,
    /// Delivered messages free of charge (service conversations).
    pub free: u64,
}
