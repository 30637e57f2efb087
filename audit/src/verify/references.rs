//! The home log's references to the bodies in a Local Storage region's log (ADR 0020): each
//! names a position there and the SHA-256 of the body; `audit verify` checks every one, so a
//! body replaced in the region's store is found even where its own log was rewritten to match.

use super::READ_BATCH;
use crate::error::AuditError;
use crate::log::sha256;
use sealpost_adapters::ledger::Reference;
use sealpost_adapters::store::EventLog;
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

/// Checks every reference of `home` to `region`'s log.
pub async fn verify_references(
    home: &dyn EventLog,
    region: &str,
    regional: &dyn EventLog,
) -> Result<References, AuditError> {
    let mut wanted: BTreeMap<u64, (u64, [u8; 32])> = BTreeMap::new();
    let mut after = 0;
    loop {
        let batch = home.read_all(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for row in batch.iter().filter(|r| r.header.region == region) {
            if let Some(r) = Reference::decode(&row.payload) {
                wanted.insert(r.position, (row.position, r.hash));
            }
        }
    }
    let mut found = References {
        checked: wanted.len() as u64,
        broken: Vec::new(),
    };
    let mut after = 0;
    loop {
        let batch = regional.read_all(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for body in batch {
            if let Some((home_position, hash)) = wanted.remove(&body.position) {
                if sha256(&body.payload) != hash {
                    found.broken.push(home_position);
                }
            }
        }
    }
    found
        .broken
        .extend(wanted.into_values().map(|(home_position, _)| home_position));
    found.broken.sort_unstable();
    Ok(found)
}
