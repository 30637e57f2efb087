//! The fold of one page of the log: each access decision, message, status, subject and epoch
//! shredding of the log's outer layer, summed per group into one [`EvidenceWrite`] for one
//! store's rows ([`Part`]).

use super::day;
use sealpost_adapters::ledger::{EventStore, LedgerError, OpenedEvent};
use sealpost_adapters::store::{
    AccessEntry, BillingKey, DayKeys, ErasureFact, EvidenceRows, EvidenceWrite, MessageFacts,
    OfBusiness, Shred, StatKey, StoredRow, SubjectTag,
};
use sealpost_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM_TYPE};
use sealpost_domain::{
    Decision, MessageEvent, MessageKind, Region, RetentionEvent, SubjectEvent, SubjectId, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The message events the projections count.
const MESSAGE_EVENTS: &[&str] = &[
    "OutboundMessageAccepted",
    "InboundMessageReceived",
    "MessageSent",
    "MessageDelivered",
    "MessageRead",
    "MessageFailed",
    "InboundMessageDecrypted",
    "InboundDecryptionFailed",
];

/// Which store's evidence rows a fold fills (ADR 0021).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The home store's: every event; when the deployment keeps Local Storage regions in
    /// stores of their own (`regional`), their consumers without their tag.
    Home {
        /// Whether the Local Storage regions have stores of their own.
        regional: bool,
    },
    /// A Local Storage region's own store's: that region's messages with their consumers'
    /// tags, the distinct consumers of their statistics groups and their shredding.
    Region(Region),
}

impl Part {
    /// Whether this part's rows tag the consumers of events stored in `region` (a code).
    fn tags(self, region: &str) -> bool {
        match self {
            Part::Home { regional } => !(regional && Region::code_is_local_storage(region)),
            Part::Region(r) => r.code() == region,
        }
    }
}

/// The rows of `page` that `part` folds (only those are opened). At home every wanted row, and
/// each Local Storage region they name gets its store (its part folds them). In a region's
/// part the rows stored in the region, and the statuses of its messages recorded under another
/// region (the one their number moved to).
async fn select(
    store: &EventStore,
    (part, rows): (Part, &dyn EvidenceRows),
    page: Vec<StoredRow>,
) -> Result<Vec<StoredRow>, LedgerError> {
    let of = |row: &StoredRow| OfBusiness::new(&row.header.stream.business, &row.header.stream.id);
    let tagged = |row: &StoredRow| row.header.stream.kind != ACCESS_STREAM_TYPE;
    let page: Vec<StoredRow> = page.into_iter().filter(wanted).collect();
    let region = match part {
        Part::Region(r) => r,
        Part::Home { regional } => {
            if let (true, Some(stores)) = (regional, store.region_stores()) {
                let named: BTreeSet<Region> = page
                    .iter()
                    .filter(|row| tagged(row))
                    .filter_map(|row| row.header.region.parse::<Region>().ok())
                    .filter(|r| r.is_local_storage())
                    .collect();
                for r in named {
                    stores.evidence_for_write(r).await?;
                }
            }
            return Ok(page);
        }
    };
    let message = |row: &StoredRow| row.header.stream.kind == "message";
    let created = |row: &StoredRow| CREATED.contains(&row.header.event_type.as_str());
    let own = |row: &StoredRow| row.header.region == region.code() && tagged(row);
    let elsewhere = |row: &StoredRow| !own(row) && message(row) && !created(row);
    // The messages stored in the region: recorded in this page, or before it.
    let mut here: BTreeSet<OfBusiness> = page
        .iter()
        .filter(|row| own(row) && message(row) && created(row))
        .map(of)
        .collect();
    let asked: BTreeSet<OfBusiness> = page
        .iter()
        .filter(|row| elsewhere(row))
        .map(of)
        .filter(|id| !here.contains(id))
        .collect();
    if !asked.is_empty() {
        let asked: Vec<OfBusiness> = asked.into_iter().collect();
        for m in rows.evidence_messages(&asked).await? {
            here.insert(OfBusiness::new(m.business_id, m.message_id));
        }
    }
    Ok(page
        .into_iter()
        .filter(|row| own(row) || (elsewhere(row) && here.contains(&of(row))))
        .collect())
}

/// The message events that record a message (in its number's region then).
const CREATED: &[&str] = &["OutboundMessageAccepted", "InboundMessageReceived"];

/// Whether the fold needs the event in this row.
fn wanted(row: &StoredRow) -> bool {
    match row.header.stream.kind.as_str() {
        ACCESS_STREAM_TYPE => true,
        "retention" => row.header.event_type == "EpochKeyShredded",
        "subject" => matches!(
            row.header.event_type.as_str(),
            "SubjectErased" | "SubjectExpired"
        ),
        "message" => MESSAGE_EVENTS.contains(&row.header.event_type.as_str()),
        _ => false,
    }
}

/// A status of a message, counted under the message's group.
struct Status {
    business: String,
    id: String,
    at: i64,
    metric: &'static str,
    kind: Option<MessageKind>,
    bill: bool,
}

/// What one event adds, with the subject tags already computed.
enum Fact {
    Access(Vec<AccessEntry>),
    Message(MessageFacts),
    Status(Status),
    Epoch(Shred, i64),
    SubjectGone {
        business: String,
        /// `None` where the part keeps no tag of the subject's region.
        tag: Option<SubjectTag>,
        at: i64,
        erasure: Option<ErasureFact>,
    },
}

/// Folds the rows after position `from` up to `to` into one write of `part`'s `rows`.
pub(super) async fn page(
    store: &EventStore,
    (part, rows): (Part, &dyn EvidenceRows),
    from: u64,
    to: u64,
    page: Vec<StoredRow>,
) -> Result<EvidenceWrite, LedgerError> {
    let mut facts = Vec::new();
    let opened = store
        .open_rows(select(store, (part, rows), page).await?)
        .await?;
    for e in opened {
        if let Some(fact) = fact(store, part, &e).await? {
            facts.push(fact);
        }
    }
    // Statuses of messages recorded before this page: their groups, in one read.
    let new: HashSet<&str> = facts
        .iter()
        .filter_map(|f| match f {
            Fact::Message(m) => Some(m.message_id.as_str()),
            _ => None,
        })
        .collect();
    let mut earlier: Vec<OfBusiness> = facts
        .iter()
        .filter_map(|f| match f {
            Fact::Status(s) if !new.contains(s.id.as_str()) => {
                Some(OfBusiness::new(&s.business, &s.id))
            }
            _ => None,
        })
        .collect();
    earlier.sort_unstable();
    earlier.dedup();
    let known = rows.evidence_messages(&earlier).await?;
    let mut fold = PageFold {
        known: known
            .into_iter()
            .map(|m| (m.message_id.clone(), m))
            .collect(),
        ..PageFold::default()
    };
    for f in facts {
        fold.apply(f);
    }
    let mut write = fold.into_write(from, to);
    if let Part::Region(_) = part {
        // What the home store keeps for every region (ADR 0021).
        write.billing.clear();
        write.days.clear();
        write.erasures.clear();
    }
    Ok(write)
}

/// The facts of one opened event, for `part`'s rows.
async fn fact(
    store: &EventStore,
    part: Part,
    e: &OpenedEvent,
) -> Result<Option<Fact>, LedgerError> {
    let at = e.header.recorded_at;
    let region = e.header.region.as_str();
    let tagged = part.tags(region);
    Ok(match e.header.stream.kind.as_str() {
        ACCESS_STREAM_TYPE => e
            .decode::<AccessEvent>()
            .ok()
            .map(|a| Fact::Access(access(e.position, a))),
        "message" => match e.decode::<MessageEvent>() {
            Ok(event) => {
                let stream = &e.header.stream;
                let of = (stream.business.as_str(), stream.id.as_str());
                message(store, of, (region, tagged), at, event).await?
            }
            Err(_) => None,
        },
        "subject" => {
            let (Ok(event), Ok(subject), Ok(r)) = (
                e.decode::<SubjectEvent>(),
                SubjectId::parse(&e.header.stream.id),
                region.parse::<Region>(),
            ) else {
                return Ok(None);
            };
            let business = e.header.business_id.as_str();
            let erasure = match event {
                SubjectEvent::SubjectErased { .. } => Some(ErasureFact {
                    position: e.position,
                    business_id: business.to_owned(),
                    region: region.to_owned(),
                    subject_id: subject.as_str().to_owned(),
                    requested_at: at,
                }),
                SubjectEvent::SubjectExpired { .. } => None,
                _ => return Ok(None),
            };
            let tag = match tagged {
                true => Some(tag(store, business, r, &subject, at).await?),
                false => None,
            };
            Some(Fact::SubjectGone {
                business: business.to_owned(),
                tag,
                at,
                erasure,
            })
        }
        "retention" => match e.decode::<RetentionEvent>() {
            Ok(RetentionEvent::EpochKeyShredded {
                business_id,
                region,
                epoch,
                ..
            }) => Some(Fact::Epoch(
                Shred::Epoch {
                    business_id: business_id.as_str().to_owned(),
                    region: region.code().to_owned(),
                    epoch: epoch.index(),
                    at,
                },
                at,
            )),
            Ok(
                RetentionEvent::LedgerKeyRotated { .. }
                | RetentionEvent::RootKeyRotated { .. }
                | RetentionEvent::RootKeysRewrapped { .. }
                | RetentionEvent::RootKeyDestroyed { .. }
                | RetentionEvent::AuditKeyRotated { .. },
            )
            | Err(_) => None,
        },
        _ => None,
    })
}

async fn tag(
    store: &EventStore,
    business: &str,
    region: Region,
    subject: &SubjectId,
    at: i64,
) -> Result<SubjectTag, LedgerError> {
    Ok(store
        .vault()
        .evidence_tag(business, region, subject, Timestamp::from_millis(at))
        .await?)
}

fn access(position: u64, event: AccessEvent) -> Vec<AccessEntry> {
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
            vec![AccessEntry {
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
            }]
        }
        AccessEvent::AccessCounted {
            principal,
            category,
            purpose,
            owner,
            minute,
            allowed,
            denied,
        } => [("allowed", allowed), ("denied", denied)]
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(decision, count)| AccessEntry {
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
            })
            .collect(),
    }
}

/// The facts of a message event; `tagged`: whether its consumer's tag is kept.
async fn message(
    store: &EventStore,
    (of_business, id): (&str, &str),
    (region, tagged): (&str, bool),
    at: i64,
    event: MessageEvent,
) -> Result<Option<Fact>, LedgerError> {
    let status = |metric, kind, bill| {
        Some(Fact::Status(Status {
            business: of_business.to_owned(),
            id: id.to_owned(),
            at,
            metric,
            kind,
            bill,
        }))
    };
    let (business, phone, subject, epoch, kind, category) = match event {
        MessageEvent::OutboundMessageAccepted { header, .. } => (
            header.business_id,
            header.phone_number_id,
            header.subject_id,
            header.epoch,
            header.kind,
            Some(header.category),
        ),
        MessageEvent::InboundMessageReceived { header, .. } => (
            header.business_id,
            header.phone_number_id,
            header.subject_id,
            header.epoch,
            MessageKind::Unknown,
            None,
        ),
        MessageEvent::MessageSent { .. } => return Ok(status("sent", None, false)),
        MessageEvent::MessageDelivered { .. } => return Ok(status("delivered", None, true)),
        MessageEvent::MessageRead { .. } => return Ok(status("read", None, false)),
        MessageEvent::MessageFailed { .. } => return Ok(status("failed", None, false)),
        MessageEvent::InboundMessageDecrypted { kind, .. } => {
            return Ok(status("inbound", Some(kind), false))
        }
        MessageEvent::InboundDecryptionFailed { .. } => {
            return Ok(status("undecryptable", None, false))
        }
        _ => return Ok(None),
    };
    let Ok(r) = region.parse::<Region>() else {
        return Ok(None);
    };
    let tag = match tagged {
        true => Some(tag(store, business.as_str(), r, &subject, at).await?),
        false => None,
    };
    Ok(Some(Fact::Message(MessageFacts {
        message_id: id.to_owned(),
        business_id: business.as_str().to_owned(),
        region: region.to_owned(),
        epoch: epoch.index(),
        subject: tag,
        phone_number_id: phone.as_str().to_owned(),
        kind,
        category,
        created_at: at,
    })))
}

/// One page's sums.
#[derive(Default)]
struct PageFold {
    /// Every message this page may count under: those it records and those read before it.
    known: HashMap<String, MessageFacts>,
    /// Ids of the messages this page records, in order.
    new: Vec<String>,
    /// Stored messages whose type this page learnt.
    kinds: BTreeMap<String, MessageKind>,
    access: Vec<AccessEntry>,
    stats: HashMap<StatKey, u64>,
    stat_subjects: HashSet<(StatKey, SubjectTag)>,
    billing: HashMap<BillingKey, (u64, u64)>,
    days: BTreeMap<String, DayKeys>,
    shreds: Vec<Shred>,
    erasures: Vec<ErasureFact>,
}

impl PageFold {
    fn apply(&mut self, fact: Fact) {
        match fact {
            Fact::Access(entries) => self.access.extend(entries),
            Fact::Message(m) => {
                if !self.known.contains_key(&m.message_id) {
                    self.new.push(m.message_id.clone());
                    self.known.insert(m.message_id.clone(), m);
                }
            }
            Fact::Status(s) => self.status(s),
            Fact::Epoch(shred, at) => {
                self.days.entry(day(at)).or_default().epoch_keys += 1;
                self.shreds.push(shred);
            }
            Fact::SubjectGone {
                business,
                tag,
                at,
                erasure,
            } => {
                let d = self.days.entry(day(at)).or_default();
                d.subject_keys += 1;
                if let Some(e) = erasure {
                    d.erasures += 1;
                    self.erasures.push(e);
                }
                if let Some(tag) = tag {
                    self.shreds.push(Shred::Subject {
                        business_id: business,
                        tag,
                        at,
                    });
                }
            }
        }
    }

    fn status(&mut self, s: Status) {
        let Some(m) = self.known.get_mut(&s.id) else {
            return;
        };
        if let Some(k) = s.kind {
            m.kind = k;
            self.kinds.insert(s.id.clone(), k);
        }
        let key = StatKey {
            business_id: m.business_id.clone(),
            phone_number_id: m.phone_number_id.clone(),
            day: day(s.at),
            kind: m.kind,
            metric: s.metric.to_owned(),
        };
        if let Some(tag) = m.subject {
            self.stat_subjects.insert((key.clone(), tag));
        }
        *self.stats.entry(key).or_default() += 1;
        if let (true, Some(category)) = (s.bill, m.category) {
            let month = day(s.at).chars().take(7).collect::<String>();
            let line = self
                .billing
                .entry((m.business_id.clone(), month, category))
                .or_default();
            // (billable, free), by the one pricing rule the status webhooks say too.
            if category.pricing().billable {
                line.0 += 1;
            } else {
                line.1 += 1;
            }
        }
    }

    fn into_write(mut self, from: u64, to: u64) -> EvidenceWrite {
        let new: HashSet<String> = self.new.iter().cloned().collect();
        let messages = self
            .new
            .iter()
            .filter_map(|id| self.known.remove(id))
            .collect();
        EvidenceWrite {
            from,
            to,
            access: self.access,
            messages,
            kinds: self
                .kinds
                .into_iter()
                .filter(|(id, _)| !new.contains(id))
                .filter_map(|(id, kind)| {
                    let business = self.known.get(&id)?.business_id.clone();
                    Some((OfBusiness::new(business, id), kind))
                })
                .collect(),
            stats: self.stats.into_iter().collect(),
            stat_subjects: self.stat_subjects.into_iter().collect(),
            billing: self.billing.into_iter().collect(),
            days: self.days.into_iter().collect(),
            shreds: self.shreds,
            erasures: self.erasures,
        }
    }
}
