//! The fold itself: each access decision, message, subject and epoch shredding of the log's
//! outer layer, counted into access entries, statistics groups, billing and retention facts.

use super::{
    day, AccessEntry, Erasure, EvidenceView, MessageFact, MessageMeta, NewMessage, StatKey,
};
use sealpost_adapters::ledger::OpenedEvent;
use sealpost_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM_TYPE};
use sealpost_domain::aggregates::message::PricingCategory;
use sealpost_domain::{
    Decision, MessageEvent, MessageKind, Region, RetentionEvent, SubjectEvent, SubjectId,
};

impl EvidenceView {
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
}
