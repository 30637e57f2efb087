//! The evidence projections: access (every gate decision, for auditor queries), statistics
//! (non-identifiable counts), billing (billable messages per business and category) and the
//! retention facts behind the DPO's retention report.
//!
//! One catch-up fold over the log's outer layer: no inner (personal) field is ever opened, so
//! every figure here survives shredding and none of it can identify a consumer. Subject ids are
//! kept in memory only to count distinct consumers per statistics group (groups with fewer than
//! the minimum are suppressed); no output carries them except the DPO's erasure list, where the
//! random subject id is the object of the erasure. Rebuildable from position 0 at any time.

use crate::report::{
    DayRow, ErasureRow, ErasureSummary, MessageCounts, ResidualRisk, RetentionReport,
};
use sealpost_adapters::ledger::{EventStore, LedgerError, OpenedEvent};
use sealpost_adapters::store::{KeyStore, StoreError};
use sealpost_adapters::vault::subject_key_id;
use sealpost_domain::access::{AccessEvent, ACCESS_STREAM_TYPE};
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::{
    access::DenyReason, BusinessId, Category, Decision, MessageEvent, MessageKind, PrincipalKind,
    Purpose, Region, RetentionEvent, RetentionPolicy, SubjectEvent, SubjectId, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The default minimum group size below which a statistic is suppressed.
pub const DEFAULT_MIN_GROUP: u32 = 5;

/// The pricing model every billing line is under (Cloud API per-message pricing).
pub const PRICING_MODEL: &str = "PMP";

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

    /// Folds one event.
    pub fn observe(&mut self, e: &OpenedEvent) {
        self.position = self.position.max(e.position);
        let at = e.header.recorded_at;
        match e.header.stream.kind.as_str() {
            ACCESS_STREAM_TYPE => {
                if let Ok(event) = e.decode::<AccessEvent>() {
                    self.observe_access(e.position, event);
                }
            }
            "message" => {
                if let Ok(event) = e.decode::<MessageEvent>() {
                    self.observe_message(&e.header.stream.id, &e.header.region, at, event);
                }
            }
            "subject" => {
                let (Ok(event), Ok(id)) = (
                    e.decode::<SubjectEvent>(),
                    SubjectId::parse(&e.header.stream.id),
                ) else {
                    return;
                };
                self.observe_subject(id, &e.header.region, at, event);
            }
            "retention" => {
                if let Ok(RetentionEvent::EpochKeyShredded {
                    business_id,
                    region,
                    epoch,
                    ..
                }) = e.decode::<RetentionEvent>()
                {
                    self.days.entry(day(at)).or_default().epoch_keys += 1;
                    let key = (
                        business_id.as_str().to_owned(),
                        region.code().to_owned(),
                        epoch.index(),
                    );
                    let ids = self.by_epoch.remove(&key).unwrap_or_default();
                    self.shred(&ids, at);
                }
            }
            _ => {}
        }
    }

    fn observe_access(&mut self, position: u64, event: AccessEvent) {
        match event {
            AccessEvent::AccessDecided {
                principal,
                category,
                purpose,
                object,
                owner,
                decision,
                at,
            } => {
                let (decision, reason) = match decision {
                    Decision::Allowed => ("allowed", None),
                    Decision::Denied(r) => ("denied", Some(r)),
                };
                self.access.push(AccessEntry {
                    position,
                    at: at.millis(),
                    principal_kind: principal.kind,
                    principal: principal.id,
                    business_id: owner.map(|b| b.as_str().to_owned()),
                    category,
                    purpose,
                    decision: decision.to_owned(),
                    reason,
                    object: Some(object),
                    count: 1,
                });
            }
            AccessEvent::AccessCounted {
                principal,
                category,
                purpose,
                owner,
                minute,
                allowed,
                denied,
            } => {
                for (decision, count) in [("allowed", allowed), ("denied", denied)] {
                    if count == 0 {
                        continue;
                    }
                    self.access.push(AccessEntry {
                        position,
                        at: minute.millis(),
                        principal_kind: principal.kind,
                        principal: principal.id.clone(),
                        business_id: owner.as_ref().map(|b| b.as_str().to_owned()),
                        category,
                        purpose,
                        decision: decision.to_owned(),
                        reason: (decision == "denied").then_some(DenyReason::Matrix),
                        object: None,
                        count,
                    });
                }
            }
        }
    }

    /// Records a new message: its retention fact (indexed by epoch key and by subject) and
    /// what its later status events are counted under.
    fn add_message(&mut self, id: &str, region: &str, at: i64, m: NewMessage) {
        let fact = self.facts.len();
        self.by_epoch
            .entry((m.business.as_str().to_owned(), region.to_owned(), m.epoch))
            .or_default()
            .push(fact);
        self.by_subject
            .entry(m.subject.clone())
            .or_default()
            .push(fact);
        self.facts.push(MessageFact {
            business: m.business,
            subject: m.subject,
            created_at: at,
            shredded_at: None,
        });
        self.messages.insert(
            id.to_owned(),
            MessageMeta {
                fact,
                phone: m.phone,
                kind: m.kind,
                category: m.category,
            },
        );
    }

    fn observe_message(&mut self, id: &str, region: &str, at: i64, event: MessageEvent) {
        match event {
            MessageEvent::OutboundMessageAccepted { header, .. } => {
                let message = NewMessage {
                    business: header.business_id,
                    phone: header.phone_number_id.as_str().to_owned(),
                    subject: header.subject_id,
                    epoch: header.epoch.index(),
                    kind: header.kind,
                    category: Some(header.category),
                };
                self.add_message(id, region, at, message);
            }
            MessageEvent::InboundMessageReceived { header, .. } => {
                let message = NewMessage {
                    business: header.business_id,
                    phone: header.phone_number_id.as_str().to_owned(),
                    subject: header.subject_id,
                    epoch: header.epoch.index(),
                    kind: MessageKind::Unknown,
                    category: None,
                };
                self.add_message(id, region, at, message);
            }
            MessageEvent::MessageSent { .. } => self.count(id, at, "sent", None),
            MessageEvent::MessageDelivered { .. } => {
                self.count(id, at, "delivered", None);
                self.bill(id, at);
            }
            MessageEvent::MessageRead { .. } => self.count(id, at, "read", None),
            MessageEvent::MessageFailed { .. } => self.count(id, at, "failed", None),
            MessageEvent::InboundMessageDecrypted { kind, .. } => {
                self.count(id, at, "inbound", Some(kind))
            }
            MessageEvent::InboundDecryptionFailed { .. } => {
                self.count(id, at, "undecryptable", None)
            }
            _ => {}
        }
    }

    fn count(&mut self, id: &str, at: i64, metric: &'static str, kind: Option<MessageKind>) {
        let Some(meta) = self.messages.get_mut(id) else {
            return;
        };
        if let Some(k) = kind {
            meta.kind = k;
        }
        let Some(fact) = self.facts.get(meta.fact) else {
            return;
        };
        let key = StatKey {
            business: fact.business.as_str().to_owned(),
            phone: meta.phone.clone(),
            day: day(at),
            kind: meta.kind,
            metric: metric.to_owned(),
        };
        let group = self.stats.entry(key).or_default();
        group.count += 1;
        group.subjects.insert(fact.subject.clone());
    }

    fn bill(&mut self, id: &str, at: i64) {
        let Some(meta) = self.messages.get(id) else {
            return;
        };
        let (Some(category), Some(fact)) = (meta.category, self.facts.get(meta.fact)) else {
            return;
        };
        let month = day(at).chars().take(7).collect::<String>();
        let line = self
            .billing
            .entry((fact.business.as_str().to_owned(), month, category))
            .or_default();
        if category == PricingCategory::Service {
            line.1 += 1;
        } else {
            line.0 += 1;
        }
    }

    fn observe_subject(&mut self, id: SubjectId, region: &str, at: i64, event: SubjectEvent) {
        match event {
            SubjectEvent::SubjectCreated { business_id, .. } => {
                if let Ok(region) = region.parse::<Region>() {
                    self.subjects.insert(id, (business_id, region));
                }
            }
            SubjectEvent::SubjectErased { .. } => {
                let d = self.days.entry(day(at)).or_default();
                d.subject_keys += 1;
                d.erasures += 1;
                if let Some((business, region)) = self.subjects.get(&id) {
                    self.erasures.push(Erasure {
                        business: business.clone(),
                        region: *region,
                        subject: id.clone(),
                        requested_at: at,
                    });
                }
                let ids = self.by_subject.remove(&id).unwrap_or_default();
                self.shred(&ids, at);
            }
            SubjectEvent::SubjectExpired { .. } => {
                self.days.entry(day(at)).or_default().subject_keys += 1;
                let ids = self.by_subject.remove(&id).unwrap_or_default();
                self.shred(&ids, at);
            }
            SubjectEvent::ServiceWindowOpened { .. }
            | SubjectEvent::ConsumerIdentityChanged { .. } => {}
        }
    }

    fn shred(&mut self, ids: &[usize], at: i64) {
        for i in ids {
            if let Some(f) = self.facts.get_mut(*i) {
                f.shredded_at.get_or_insert(at);
            }
        }
    }

    /// Access entries matching `q`, one page.
    pub fn access(&self, q: &AccessQuery) -> AccessPage {
        let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
        let after = q.after.unwrap_or(0);
        let start = self.access.partition_point(|e| e.position <= after);
        let mut entries: Vec<AccessEntry> = Vec::new();
        let mut next = None;
        for e in &self.access[start..] {
            let keep = q.principal.as_ref().is_none_or(|p| *p == e.principal)
                && q.principal_kind.is_none_or(|k| k == e.principal_kind)
                && q.category.is_none_or(|c| c == e.category)
                && q.purpose.is_none_or(|p| p == e.purpose)
                && q.decision.as_ref().is_none_or(|d| *d == e.decision)
                && q.object
                    .as_ref()
                    .is_none_or(|o| e.object.as_ref() == Some(o))
                && q.business_id
                    .as_ref()
                    .is_none_or(|b| e.business_id.as_ref() == Some(b))
                && q.from.is_none_or(|f| e.at >= f)
                && q.to.is_none_or(|t| e.at < t);
            if !keep {
                continue;
            }
            // A page ends only between log positions: the allowed and denied entries of one
            // pipeline count share a position, and the cursor is a position.
            if let Some(last) = entries.last().filter(|_| entries.len() >= limit) {
                if last.position != e.position {
                    next = Some(last.position);
                    break;
                }
            }
            entries.push(e.clone());
        }
        AccessPage { entries, next }
    }

    /// Statistics groups (of one business, when given); groups with fewer than `min_group`
    /// distinct consumers have their count suppressed.
    pub fn statistics(&self, business: Option<&BusinessId>, min_group: u32) -> Vec<StatRow> {
        self.stats
            .iter()
            .filter(|(k, _)| business.is_none_or(|b| b.as_str() == k.business))
            .map(|(k, g)| StatRow {
                business_id: k.business.clone(),
                phone_number_id: k.phone.clone(),
                day: k.day.clone(),
                kind: k.kind,
                metric: k.metric.clone(),
                count: (g.subjects.len() as u64 >= u64::from(min_group)).then_some(g.count),
            })
            .collect()
    }

    /// Billing lines (of one business, when given).
    pub fn billing(&self, business: Option<&BusinessId>) -> Vec<BillingRow> {
        self.billing
            .iter()
            .filter(|((b, _, _), _)| business.is_none_or(|x| x.as_str() == b))
            .map(|((b, month, category), (billable, free))| BillingRow {
                business_id: b.clone(),
                month: month.clone(),
                category: *category,
                pricing_model: PRICING_MODEL.to_owned(),
                billable: *billable,
                free: *free,
            })
            .collect()
    }

    /// The retention report's figures at `now` (of one business, when given). Overdue keys and
    /// erasure completion times come from the key store; the caller adds the checkpoint.
    pub async fn retention_report(
        &self,
        keys: &dyn KeyStore,
        policy: RetentionPolicy,
        now: Timestamp,
        store: &str,
        business: Option<&BusinessId>,
    ) -> Result<RetentionReport, StoreError> {
        let mine = |b: &BusinessId| business.is_none_or(|x| x == b);
        let mut counts = MessageCounts {
            created: 0,
            live: 0,
            shredded: 0,
        };
        let mut oldest: Option<i64> = None;
        let mut days: BTreeMap<String, DayFacts> = BTreeMap::new();
        for f in self.facts.iter().filter(|f| mine(&f.business)) {
            counts.created += 1;
            days.entry(day(f.created_at)).or_default().created += 1;
            match f.shredded_at {
                Some(at) => {
                    counts.shredded += 1;
                    days.entry(day(at)).or_default().shredded += 1;
                }
                None => {
                    counts.live += 1;
                    oldest = Some(oldest.map_or(f.created_at, |o| o.min(f.created_at)));
                }
            }
        }
        if business.is_none() {
            // Key destructions are per business too, but counted from the whole log only.
            for (d, facts) in &self.days {
                let row = days.entry(d.clone()).or_default();
                row.epoch_keys = facts.epoch_keys;
                row.subject_keys = facts.subject_keys;
                row.erasures = facts.erasures;
            }
        }
        let up_to = policy.last_expired_epoch(now).index();
        let overdue = keys
            .expired_epochs(up_to, 10_000)
            .await?
            .into_iter()
            .filter(|k| business.is_none_or(|b| b.as_str() == k.business_id))
            .count() as u64;
        let mut erasure_list = Vec::new();
        for e in self.erasures.iter().filter(|e| mine(&e.business)) {
            let key = subject_key_id(e.business.as_str(), e.region, &e.subject);
            let completed_at = keys.destroyed_at(&key).await?;
            erasure_list.push(ErasureRow {
                subject_id: e.subject.as_str().to_owned(),
                business_id: e.business.as_str().to_owned(),
                requested_at: e.requested_at,
                completed_at,
                latency_ms: completed_at.map(|c| (c - e.requested_at).max(0)),
            });
        }
        let mut latencies: Vec<i64> = erasure_list.iter().filter_map(|e| e.latency_ms).collect();
        latencies.sort_unstable();
        let erasures = ErasureSummary {
            requests: erasure_list.len() as u64,
            completed: latencies.len() as u64,
            latency_ms_p50: latencies
                .get(latencies.len().saturating_sub(1) / 2)
                .copied(),
            latency_ms_max: latencies.last().copied(),
        };
        Ok(RetentionReport {
            generated_at: now.millis(),
            retention_days: (policy.retention_ms / sealpost_domain::time::DAY_MS) as u32,
            store: store.to_owned(),
            scope: business.map_or_else(
                || "all businesses".to_owned(),
                |b| format!("business {}", b.as_str()),
            ),
            messages: counts,
            oldest_live_message_age_ms: oldest.map(|o| (now.millis() - o).max(0)),
            overdue_keys: overdue,
            days: days
                .into_iter()
                .map(|(day, f)| DayRow {
                    day,
                    messages_created: f.created,
                    messages_shredded: f.shredded,
                    epoch_keys_destroyed: f.epoch_keys,
                    subject_keys_destroyed: f.subject_keys,
                    erasures: f.erasures,
                })
                .collect(),
            erasures,
            erasure_list,
            residual_risks: residual_risks(store),
            checkpoint: None,
        })
    }
}

/// Where a destroyed key may still linger on this backend, and what the operator must do.
pub fn residual_risks(store: &str) -> Vec<ResidualRisk> {
    let r = |location: &str, statement: &str, action: &str| ResidualRisk {
        location: location.to_owned(),
        statement: statement.to_owned(),
        operator_action: action.to_owned(),
    };
    let mut risks = if store.starts_with("postgres") {
        vec![
            r("Postgres WAL and WAL archives", "A destroyed key's wrapped bytes stay in WAL segments until they are recycled, and in any WAL archive.", "Keep WAL archives no longer than the retention period (30 days) or encrypt them under a key you rotate and destroy."),
            r("Postgres replicas", "Streaming replicas replay the deletion and their own VACUUM; a lagging or detached replica keeps the key.", "Monitor replica lag; rebuild or destroy detached replicas."),
            r("Database backups", "A base backup taken before a destruction holds the key until the backup is deleted.", "Expire backups within 30 days, or keep the root key of each backup period separately and destroy it."),
        ]
    } else {
        vec![
            r("SQLite keys.db", "secure_delete overwrites deleted key rows and the WAL is checkpointed (TRUNCATE) after every destruction.", "None while the data directory is on an ordinary file system; on copy-on-write or journaling storage old blocks may survive: use full-disk encryption."),
            r("Copies of the data directory", "A copy or snapshot of keys.db taken before a destruction holds the key.", "Expire backups and snapshots within 30 days."),
        ]
    };
    risks.push(r("Root key", "Wrapped keys are useless without the region root key; a root key copied elsewhere with an old key table copy re-opens it.", "Keep root keys in a KMS or off the data host; never back them up beside the data."));
    risks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: u64, decision: &str) -> AccessEntry {
        AccessEntry {
            position,
            at: 0,
            principal_kind: PrincipalKind::Processor,
            principal: "delivery".into(),
            business_id: None,
            category: Category::MessageContent,
            purpose: Purpose::Delivery,
            decision: decision.into(),
            reason: None,
            object: None,
            count: 1,
        }
    }

    #[test]
    fn the_view_survives_its_persisted_form() {
        let mut view = EvidenceView::new();
        view.position = 42;
        view.access = vec![entry(3, "allowed"), entry(5, "denied")];
        let subject = SubjectId::from_random([7; 16]);
        view.stats.insert(
            StatKey {
                business: "b1".into(),
                phone: "p1".into(),
                day: "2026-12-01".into(),
                kind: MessageKind::Text,
                metric: "sent".into(),
            },
            Group {
                count: 7,
                subjects: [subject.clone()].into_iter().collect(),
            },
        );
        view.billing.insert(
            ("b1".into(), "2026-12".into(), PricingCategory::Service),
            (0, 7),
        );
        view.by_epoch
            .insert(("b1".into(), "EU".into(), 3), vec![0, 1]);
        view.subjects
            .insert(subject, (BusinessId::from_random(1), Region::Eu));
        // The persisted form is postcard (`sealpost_adapters::projection::save_state`).
        let bytes = postcard::to_allocvec(&view).expect("serializes");
        let back: EvidenceView = postcard::from_bytes(&bytes).expect("deserializes");
        assert_eq!(back.position(), 42);
        assert_eq!(postcard::to_allocvec(&back).expect("again"), bytes);
        assert_eq!(
            back.access(&AccessQuery::default()),
            view.access(&AccessQuery::default())
        );
        assert_eq!(back.statistics(None, 1), view.statistics(None, 1));
        assert_eq!(back.billing(None), view.billing(None));
    }

    #[test]
    fn paging_never_splits_one_pipeline_count_and_loses_nothing() {
        let mut view = EvidenceView::new();
        view.access = vec![
            entry(3, "allowed"),
            entry(5, "allowed"),
            entry(5, "denied"),
            entry(8, "allowed"),
        ];
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = view.access(&AccessQuery {
                after,
                limit: Some(1),
                ..Default::default()
            });
            seen.extend(
                page.entries
                    .iter()
                    .map(|e| (e.position, e.decision.clone())),
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[1..3], [(5, "allowed".into()), (5, "denied".into())]);
    }
}
