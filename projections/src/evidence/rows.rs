//! What the evidence fold answers with: access entries and pages (and the auditor's query),
//! statistics rows and billing lines.

use sealpost_domain::access::DenyReason;
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::{Category, MessageKind, PrincipalKind, Purpose};
use serde::{Deserialize, Serialize};

/// One recorded access decision (or, for Sealpost's own pipelines, one per-minute count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Log position of the record.
    pub position: u64,
    /// When (ms; the minute for pipeline counts).
    pub at: i64,
    /// Principal kind (matrix column).
    pub principal_kind: PrincipalKind,
    /// Principal id (token id or pipeline name).
    pub principal: String,
    /// The business the data belongs to.
    pub business_id: Option<String>,
    /// Category of data.
    pub category: Category,
    /// Purpose.
    pub purpose: Purpose,
    /// `allowed` or `denied`.
    pub decision: String,
    /// Why it was denied.
    pub reason: Option<DenyReason>,
    /// The object (a random id), absent for pipeline counts.
    pub object: Option<String>,
    /// How many accesses this entry stands for (1, or the minute's count).
    pub count: u64,
}

/// Filters of an access query. Every field narrows; `after` is the paging cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessQuery {
    /// Principal id.
    pub principal: Option<String>,
    /// Principal kind.
    pub principal_kind: Option<PrincipalKind>,
    /// Category.
    pub category: Option<Category>,
    /// Purpose.
    pub purpose: Option<Purpose>,
    /// `allowed` or `denied`.
    pub decision: Option<String>,
    /// Object id.
    pub object: Option<String>,
    /// Business id.
    pub business_id: Option<String>,
    /// From (ms, inclusive).
    pub from: Option<i64>,
    /// To (ms, exclusive).
    pub to: Option<i64>,
    /// Only entries after this log position (the cursor of the previous page).
    pub after: Option<u64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One page of access entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPage {
    /// The entries, in log order.
    pub entries: Vec<AccessEntry>,
    /// Cursor for the next page, if there is one.
    pub next: Option<u64>,
}

/// One statistics group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
