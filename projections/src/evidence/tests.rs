//! Tests of the evidence fold: its persisted form round-trips, and access paging never splits
//! one pipeline count.

use super::*;
use sealpost_domain::{Category, PrincipalKind, Purpose};

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
