//! The evidence projections' rows (access log, statistics, billing, retention facts): the port
//! [`EvidenceRows`] and the data it writes and reads. The fold that fills them lives in
//! `sealpost-projections`; both SQL backends keep them in the event store's database, so a
//! month of traffic lives on disk, not in the server's memory (ADR 0015).

use super::StoreError;
use async_trait::async_trait;
use sealpost_domain::access::DenyReason;
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::{Category, MessageKind, PrincipalKind, Purpose};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The name of the evidence fold's position in `sealpost_checkpoints`.
pub const EVIDENCE_POSITION: &str = "evidence";

/// A consumer as the evidence rows know it: a keyed tag of the subject id (never the id), so
/// the rows alone do not link messages to a subject stream.
pub type SubjectTag = [u8; 16];

/// One recorded access decision (or, for Sealpost's own pipelines, one per-minute count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A message as the statistics and retention facts need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    /// The message id.
    pub message_id: String,
    /// Its business.
    pub business_id: String,
    /// Its region code.
    pub region: String,
    /// Its epoch index.
    pub epoch: i64,
    /// Its consumer, while its messages are not shredded.
    pub subject: Option<SubjectTag>,
    /// The business number.
    pub phone_number_id: String,
    /// Its type (`unknown` for an inbound message until decrypted).
    pub kind: MessageKind,
    /// Its pricing category (outbound only).
    pub category: Option<PricingCategory>,
    /// Recorded at (ms).
    pub created_at: i64,
}

/// One statistics group's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatKey {
    /// Business.
    pub business_id: String,
    /// Business number.
    pub phone_number_id: String,
    /// UTC day.
    pub day: String,
    /// Message type.
    pub kind: MessageKind,
    /// `sent`, `delivered`, `read`, `failed`, `inbound` or `undecryptable`.
    pub metric: String,
}

/// Distinct consumers are counted per statistics group up to this many (a page may pass it by
/// what it adds): enough to tell any minimum group size up to it, and a group's memberships
/// stay few however busy the group is.
pub const DISTINCT_CAP: u64 = 100;

/// A statistics group: its count and how many distinct consumers it counted (up to about
/// [`DISTINCT_CAP`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatCount {
    /// Messages.
    pub count: u64,
    /// Distinct consumers.
    pub subjects: u64,
}

/// One billing line's key: business, `YYYY-MM`, category.
pub type BillingKey = (String, String, PricingCategory);

/// Key destructions of one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayKeys {
    /// Epoch keys destroyed.
    pub epoch_keys: u64,
    /// Subject keys destroyed (erasure or expiry).
    pub subject_keys: u64,
    /// Erasures.
    pub erasures: u64,
}

/// Messages whose keys were destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shred {
    /// Every live message of one epoch of a business in a region.
    Epoch {
        /// Business.
        business_id: String,
        /// Region code.
        region: String,
        /// Epoch index.
        epoch: i64,
        /// When (ms).
        at: i64,
    },
    /// Every message of one consumer.
    Subject {
        /// The consumer's business.
        business_id: String,
        /// The consumer's tag.
        tag: SubjectTag,
        /// When (ms).
        at: i64,
    },
}

/// An erasure request as the retention report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureFact {
    /// Log position of the erasure.
    pub position: u64,
    /// Business.
    pub business_id: String,
    /// Region code.
    pub region: String,
    /// The erased subject's random id (the object of the erasure).
    pub subject_id: String,
    /// Requested at (ms).
    pub requested_at: i64,
}

/// What folding one page of the log adds, written in one transaction with the new position.
#[derive(Debug, Clone, Default)]
pub struct EvidenceWrite {
    /// The position the fold started from: the write is refused if the rows are elsewhere
    /// (another node folded meanwhile).
    pub from: u64,
    /// The position folded up to.
    pub to: u64,
    /// New access entries.
    pub access: Vec<AccessEntry>,
    /// New messages.
    pub messages: Vec<MessageFacts>,
    /// Type of stored messages (each named with its business), learnt on decryption.
    pub kinds: Vec<(super::OfBusiness, MessageKind)>,
    /// Statistics to add.
    pub stats: Vec<(StatKey, u64)>,
    /// Consumers counted per group (a group's distinct count grows by the new pairs).
    pub stat_subjects: Vec<(StatKey, SubjectTag)>,
    /// Billing to add: (billable, free).
    pub billing: Vec<(BillingKey, (u64, u64))>,
    /// Key destructions to add.
    pub days: Vec<(String, DayKeys)>,
    /// Shreddings, in log order (after this write's new messages).
    pub shreds: Vec<Shred>,
    /// Erasures.
    pub erasures: Vec<ErasureFact>,
}

/// The retention figures of the messages (of one business, or all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageTotals {
    /// Messages recorded.
    pub created: u64,
    /// Of them shredded.
    pub shredded: u64,
    /// The oldest live message (ms).
    pub oldest_live: Option<i64>,
    /// Created per UTC day number (ms / 86,400,000).
    pub created_per_day: Vec<(i64, u64)>,
    /// Shredded per UTC day number.
    pub shredded_per_day: Vec<(i64, u64)>,
}

/// The evidence rows of one deployment.
#[async_trait]
pub trait EvidenceRows: Send + Sync + std::fmt::Debug {
    /// The position the rows are folded up to.
    async fn evidence_position(&self) -> Result<u64, StoreError>;
    /// Stored messages among `ids`, each named with its business.
    async fn evidence_messages(
        &self,
        ids: &[super::OfBusiness],
    ) -> Result<Vec<MessageFacts>, StoreError>;
    /// Writes one folded page; `false` (nothing written) if the rows are not at `write.from`.
    async fn evidence_write(&self, write: &EvidenceWrite) -> Result<bool, StoreError>;
    /// Empties every evidence row (position 0), for a rebuild.
    async fn evidence_reset(&self) -> Result<(), StoreError>;
    /// Access entries matching `q` after its cursor, in log order, at most `limit`.
    async fn evidence_access(
        &self,
        q: &AccessQuery,
        limit: usize,
    ) -> Result<Vec<AccessEntry>, StoreError>;
    /// Statistics groups (of one business).
    async fn evidence_stats(
        &self,
        business: Option<&str>,
    ) -> Result<Vec<(StatKey, StatCount)>, StoreError>;
    /// Billing lines (of one business).
    async fn evidence_billing(
        &self,
        business: Option<&str>,
    ) -> Result<Vec<(BillingKey, (u64, u64))>, StoreError>;
    /// Message totals (of one business), leaving out the messages of the regions `without`
    /// names (codes).
    async fn evidence_totals(
        &self,
        business: Option<&str>,
        without: &[&str],
    ) -> Result<MessageTotals, StoreError>;
    /// Key destructions per UTC day (the whole log).
    async fn evidence_days(&self) -> Result<Vec<(String, DayKeys)>, StoreError>;
    /// Erasures (of one business), in log order.
    async fn evidence_erasures(
        &self,
        business: Option<&str>,
    ) -> Result<Vec<ErasureFact>, StoreError>;
}

/// The text a column holds for an enum: its serde name.
pub(crate) fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => other.map(|v| v.to_string()).unwrap_or_default(),
    }
}

/// The enum a column's text names.
pub(crate) fn unlabel<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Invalid("an evidence row names an unknown value"))
}
