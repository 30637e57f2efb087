//! The record's shape: the processor's part (activities, categories with recipients and
//! purposes, transfers, security measures) and one controller's part per tenant.

use sealpost_domain::access::{Category, PrincipalKind, Purpose};
use serde::{Deserialize, Serialize};

/// The record of processing activities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ropa {
    /// When it was generated, in milliseconds since the Unix epoch (UTC).
    pub generated_at: i64,
    /// The processor's record (GDPR Art. 30(2)).
    pub processor: ProcessorRecord,
    /// One controller part per tenant (GDPR Art. 30(1) shape), in input order.
    pub controllers: Vec<ControllerRecord>,
}

/// The processor's record (GDPR Art. 30(2)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorRecord {
    /// The processor (the operator running Sealpost).
    pub name: String,
    /// Its role: [`PROCESSOR_ROLE`](super::PROCESSOR_ROLE).
    pub role: String,
    /// The categories of processing carried out on behalf of each business: one per purpose of
    /// the processor's own pipelines.
    pub activities: Vec<ProcessingActivity>,
    /// One record per matrix row, in matrix order.
    pub categories: Vec<CategoryRecord>,
    /// Where data is stored, and what may leave a region.
    pub transfers: Transfers,
    /// General description of the technical and organisational security measures.
    pub security_measures: Vec<String>,
}

/// One purpose of processing and the categories of data it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessingActivity {
    /// The purpose.
    pub purpose: Purpose,
    /// The purpose in words.
    pub description: String,
    /// The categories of data that may be read for it (matrix `Yes`/`Own` of a principal kind
    /// acting for the purpose).
    pub categories: Vec<Category>,
}

/// The record of one category of data (one matrix row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryRecord {
    /// The category.
    pub category: Category,
    /// Its label (the matrix row label).
    pub label: String,
    /// Which system holds it (from the matrix).
    pub held_by: String,
    /// Whose data it is.
    pub data_subjects: String,
    /// Who may receive it: every principal kind whose cell is `Yes` or `Own`.
    pub recipients: Vec<Recipient>,
    /// The purposes it may be read for: the union of the recipients' purposes, in
    /// [`Purpose::ALL`] order.
    pub purposes: Vec<Purpose>,
    /// How long it is kept and how it goes.
    pub retention: String,
    /// Whether it survives crypto-shredding of content and phone numbers.
    pub survives_shredding: bool,
}

/// One recipient of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    /// The principal kind (matrix column).
    pub kind: PrincipalKind,
    /// Its label.
    pub label: String,
    /// Whether it receives only its own business's data (cell `Own`).
    pub own_only: bool,
    /// The purposes it may read this category for.
    pub purposes: Vec<Purpose>,
}

/// What kind of storage region a region code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    /// A default region (NA, EU): where data lives without a Local Storage election.
    Default,
    /// An in-country Local Storage region.
    LocalStorage,
    /// A code that names no known storage region (a configuration error, shown as such).
    Unrecognised,
}

impl RegionKind {
    /// The kind in words.
    pub const fn label(self) -> &'static str {
        match self {
            RegionKind::Default => "default region",
            RegionKind::LocalStorage => "in-country Local Storage",
            RegionKind::Unrecognised => "unrecognised region code",
        }
    }
}

/// One storage region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRecord {
    /// The region code (`"DE"`, `"EU"`, …), normalised to upper case.
    pub code: String,
    /// Default, Local Storage or unrecognised.
    pub kind: RegionKind,
}

/// One physical store of the deployment: the home store, or a Local Storage region's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// The region whose own store it is; `None` for the home store.
    pub region: Option<String>,
    /// Where it is: a directory, or a Postgres database (or schema) and host.
    pub location: String,
    /// What it holds.
    pub holds: String,
    /// The signed checkpoint of its tamper-evident log when the record was made (the home
    /// store's log, or a Local Storage region's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<crate::log::Checkpoint>,
}

/// Where data is stored and what may leave a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfers {
    /// Every region any tenant stores data in, defaults first, without repeats.
    pub regions: Vec<RegionRecord>,
    /// The physical stores, the home store first, as the deployment has them.
    pub stores: Vec<StoreRecord>,
    /// The statement on regions and data in use.
    pub statement: String,
}

/// One category a recipient of a tenant's data may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryGrant {
    /// The category.
    pub category: Category,
    /// Whether only the business's own data (cell `Own`).
    pub own_only: bool,
}

/// A recipient of one tenant's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecipient {
    /// The recipient in words.
    pub recipient: String,
    /// The principal kind (matrix column) it is.
    pub kind: PrincipalKind,
    /// The host, for one of the business's own webhook endpoints.
    pub webhook_host: Option<String>,
    /// What it may receive, per the matrix.
    pub categories: Vec<CategoryGrant>,
}

/// The part of the record for one controller (tenant), in the GDPR Art. 30(1) shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerRecord {
    /// The business id.
    pub business_id: String,
    /// The business's name (the controller).
    pub name: String,
    /// Its phone number ids.
    pub phone_number_ids: Vec<String>,
    /// The regions its data is stored in.
    pub regions: Vec<RegionRecord>,
    /// The purposes its data is processed for, each with the categories it applies to.
    pub purposes: Vec<ProcessingActivity>,
    /// The categories of its data (every matrix row; details in
    /// [`ProcessorRecord::categories`]).
    pub categories: Vec<Category>,
    /// Who receives its data: its own webhook endpoints (what Sealpost's pipelines hold and the
    /// business may receive), then the matrix's principal kinds.
    pub recipients: Vec<TenantRecipient>,
}
