//! The evidence projections: access (every gate decision, for auditor queries), statistics
//! (non-identifiable counts), billing (billable messages per business and category) and the
//! retention facts behind the DPO's retention report.
//!
//! One catch-up fold over the log's outer layer: no inner (personal) field is ever opened, so
//! every figure here survives shredding and none of it can identify a consumer. Subject ids are
//! kept in memory only to count distinct consumers per statistics group (groups with fewer than
//! the minimum are suppressed); no output carries them except the DPO's erasure list, where the
//! random subject id is the object of the erasure. Rebuildable from position 0 at any time.

mod fold;
mod queries;
mod rows;

pub use queries::residual_risks;
pub use rows::{AccessEntry, AccessPage, AccessQuery, BillingRow, StatRow};

use sealpost_adapters::ledger::{EventStore, LedgerError};
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::{BusinessId, MessageKind, Region, SubjectId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The default minimum group size below which a statistic is suppressed.
pub const DEFAULT_MIN_GROUP: u32 = 5;

/// The pricing model every billing line is under (Cloud API per-message pricing).
pub const PRICING_MODEL: &str = "PMP";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageFact {
    business: BusinessId,
    subject: SubjectId,
    created_at: i64,
    shredded_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageMeta {
    fact: usize,
    phone: String,
    kind: MessageKind,
    category: Option<PricingCategory>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct StatKey {
    business: String,
    phone: String,
    day: String,
    kind: MessageKind,
    metric: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Group {
    count: u64,
    subjects: HashSet<SubjectId>,
}

/// The facts of a new message, outbound or inbound.
#[derive(Debug)]
struct NewMessage {
    business: BusinessId,
    phone: String,
    subject: SubjectId,
    epoch: i64,
    kind: MessageKind,
    category: Option<PricingCategory>,
}

/// Per UTC day. The fold keeps only the key destructions here; the report counts messages
/// created and shredded per day from the message facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DayFacts {
    created: u64,
    shredded: u64,
    epoch_keys: u64,
    subject_keys: u64,
    erasures: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Erasure {
    business: BusinessId,
    region: Region,
    subject: SubjectId,
    requested_at: i64,
}

/// The fold. Serializable, so that it is persisted with its position (maps with composite
/// keys as lists of pairs) and a start folds only what came after.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EvidenceView {
    position: u64,
    access: Vec<AccessEntry>,
    #[serde(with = "pairs")]
    stats: BTreeMap<StatKey, Group>,
    #[serde(with = "pairs")]
    billing: BTreeMap<(String, String, PricingCategory), (u64, u64)>,
    facts: Vec<MessageFact>,
    messages: HashMap<String, MessageMeta>,
    #[serde(with = "pairs")]
    by_epoch: HashMap<(String, String, i64), Vec<usize>>,
    #[serde(with = "pairs")]
    by_subject: HashMap<SubjectId, Vec<usize>>,
    #[serde(with = "pairs")]
    subjects: HashMap<SubjectId, (BusinessId, Region)>,
    days: BTreeMap<String, DayFacts>,
    erasures: Vec<Erasure>,
}

/// A map as a list of `(key, value)` pairs, for keys JSON cannot take as object keys.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<'a, M, K, V, S>(map: &'a M, s: S) -> Result<S::Ok, S::Error>
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
        S: Serializer,
    {
        s.collect_seq(map)
    }

    pub fn deserialize<'de, M, K, V, D>(d: D) -> Result<M, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

fn day(ms: i64) -> String {
    Timestamp::from_millis(ms).utc_date()
}

impl EvidenceView {
    /// An empty view (at position 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The last position folded in.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Folds events up to and including `up_to` (e.g. a checkpoint's size), so that an answer
    /// is exactly consistent with that checkpoint.
    pub async fn catch_up(&mut self, store: &EventStore, up_to: u64) -> Result<(), LedgerError> {
        while self.position < up_to {
            let limit = (up_to - self.position).min(1_000) as u32;
            let batch = store.read_all(self.position, limit).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for e in &batch {
                if e.position > up_to {
                    return Ok(());
                }
                self.observe(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
