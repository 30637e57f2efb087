//! The home log's references to the bodies in Local Storage regions' logs (ADR 0020): each
//! names a position there and the SHA-256 of the body; `audit verify` checks every one, so a
//! body replaced in a region's store is found even where its own log was rewritten to match,
//! and a reference to a region with no store is found too.

use super::READ_BATCH;
use crate::error::AuditError;
use crate::log::sha256;
use sealpost_adapters::ledger::Reference;
use sealpost_adapters::store::{EventLog, StoredRow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the check of one region's references found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct References {
    /// References in the home log to this region's log.
    pub checked: u64,
    /// Home positions whose reference names no body, or a body with another hash.
    pub broken: Vec<u64>,
}

/// The home log's references, by region code: (home position, reference).
pub type HomeReferences = BTreeMap<String, Vec<(u64, Reference)>>;

/// Notes `row`'s reference, if its payload is one (a damaged one names no body: broken).
pub fn note_reference(out: &mut HomeReferences, row: &StoredRow) {
    let r = match Reference::decode(&row.payload) {
        Some(r) => r,
        // Marked but damaged: names no body (no log has a position 0), so it is broken.
        None if Reference::is_marked(&row.payload) => Reference {
            position: 0,
            hash: [0; 32],
        },
        None => return,
    };
    out.entry(row.header.region.clone())
        .or_default()
        .push((row.position, r));
}

/// Checks `references` (of one region) against its log; with no log, every one is broken.
pub async fn verify_references(
    references: &[(u64, Reference)],
    regional: Option<&dyn EventLog>,
) -> Result<References, AuditError> {
    let mut found = References {
        checked: references.len() as u64,
        broken: Vec::new(),
    };
    let Some(regional) = regional else {
        found.broken = references.iter().map(|(home, _)| *home).collect();
        return Ok(found);
    };
    // Two home rows may name one body: each is checked.
    let mut wanted: BTreeMap<u64, Vec<(u64, [u8; 32])>> = BTreeMap::new();
    for (home, r) in references {
        wanted.entry(r.position).or_default().push((*home, r.hash));
    }
    let mut after = 0;
    loop {
        let batch = regional.read_all(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for body in batch {
            for (home, hash) in wanted.remove(&body.position).unwrap_or_default() {
                if sha256(&body.payload) != hash {
                    found.broken.push(home);
                }
            }
        }
    }
    found
        .broken
        .extend(wanted.into_values().flatten().map(|(home, _)| home));
    found.broken.sort_unstable();
    Ok(found)
}
