//! Tests of the evidence answers that need no store: access paging never splits one pipeline
//! count and loses nothing. (The fold and its rows are tested on both backends in
//! `tests/evidence_rows.rs`.)

use super::queries::page;
use super::AccessEntry;
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
fn paging_never_splits_one_pipeline_count_and_loses_nothing() {
    let all = [
        entry(3, "allowed"),
        entry(5, "allowed"),
        entry(5, "denied"),
        entry(8, "allowed"),
    ];
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        // What the store returns: the matching entries after the cursor, two more than a page.
        let rows: Vec<AccessEntry> = all
            .iter()
            .filter(|e| e.position > after)
            .take(3)
            .cloned()
            .collect();
        let p = page(rows, 1);
        seen.extend(p.entries.iter().map(|e| (e.position, e.decision.clone())));
        match p.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[1..3], [(5, "allowed".into()), (5, "denied".into())]);
}
