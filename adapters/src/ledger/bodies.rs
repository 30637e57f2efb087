//! The sealed bodies of a Local Storage region's events, kept in that region's own log
//! (ADR 0020). The home log keeps every event's plaintext header in the one global order its
//! subscribers follow; for a region's event its payload there is a [`Reference`] (the region
//! log's position of the body and the SHA-256 of its bytes), so the home store holds none of
//! the content, and the home tamper-evident log still commits to it. The body is sealed under
//! the region's ledger key with the home row's header as associated data: it opens only as the
//! event that references it.
//!
//! A body is written (through the region's own group committer) before the home row that
//! references it; a crash or a conflict between the two leaves a body nothing references,
//! sealed under a key that retention destroys with the rest of its epoch.

use super::committer::run_committer;
use super::{submit_to, EventStore, Job, LedgerError, MAX_GROUP};
use crate::crypto;
use crate::store::{
    AppendCommand, EventLog, NewRow, RegionStores, RowHeader, StoreError, StoredRow, StreamId,
};
use sealpost_domain::Region;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The stream type of bodies in a region's log: one stream per command, a random id.
pub const BODY_STREAM_TYPE: &str = "body";

/// The first four bytes of a reference payload: never a ledger-key version.
const MARK: [u8; 4] = u32::MAX.to_be_bytes();
/// A reference's length: mark, position, SHA-256.
const LEN: usize = 4 + 8 + 32;

/// Where a home row's body is: its position in the region's log and the SHA-256 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// Position in the region's log.
    pub position: u64,
    /// SHA-256 of the body's bytes (ledger-key version ‖ sealed payload).
    pub hash: [u8; 32],
}

impl Reference {
    /// The payload a home row carries.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(&MARK);
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out
    }

    /// Whether a payload carries the reference mark (a well-formed reference or a damaged one).
    pub fn is_marked(payload: &[u8]) -> bool {
        payload.get(..4) == Some(&MARK[..])
    }

    /// The reference a payload is, if it is one.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() != LEN || payload[..4] != MARK {
            return None;
        }
        let position = u64::from_be_bytes(payload[4..12].try_into().ok()?);
        if position == 0 || position > i64::MAX as u64 {
            return None;
        }
        Some(Self {
            position,
            hash: payload[12..].try_into().ok()?,
        })
    }
}

/// The regions' logs as the event store writes to them: one group committer per region,
/// started on the region's first write.
#[derive(Debug)]
pub(super) struct RegionBodies {
    stores: Arc<RegionStores>,
    committers: std::sync::Mutex<BTreeMap<Region, mpsc::Sender<Job>>>,
}

impl RegionBodies {
    pub(super) fn new(stores: Arc<RegionStores>) -> Self {
        Self {
            stores,
            committers: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The stores of the regions.
    pub(super) fn stores(&self) -> &Arc<RegionStores> {
        &self.stores
    }

    /// The committer of `region`'s log, started (and the store opened) on first use.
    async fn committer(&self, region: Region) -> Result<mpsc::Sender<Job>, StoreError> {
        if let Some(jobs) = self.lock().get(&region).filter(|j| !j.is_closed()) {
            return Ok(jobs.clone());
        }
        let log = self.stores.events_for_write(region).await?;
        let mut committers = self.lock();
        // A committer that stopped (its task ended) is replaced.
        committers.retain(|_, j| !j.is_closed());
        let jobs = committers.entry(region).or_insert_with(|| {
            let (jobs, rx) = mpsc::channel(8 * MAX_GROUP);
            // The region's head is not followed: subscribers follow the home log.
            let (head, _) = watch::channel(0);
            tokio::spawn(run_committer(log, rx, head));
            jobs
        });
        Ok(jobs.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Region, mpsc::Sender<Job>>> {
        self.committers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `command`'s payloads to `region`'s log and gives the command back with a
    /// reference in each row instead.
    pub(super) async fn place(
        &self,
        region: Region,
        mut command: AppendCommand,
    ) -> Result<AppendCommand, LedgerError> {
        let Some(first) = command.rows.first() else {
            return Ok(command);
        };
        let stream = StreamId::new(
            first.header.business_id.clone(),
            BODY_STREAM_TYPE,
            uuid::Uuid::new_v4().simple().to_string(),
        );
        // The bodies move to the region's rows (never copied); each home row keeps its hash.
        let mut hashes = Vec::with_capacity(command.rows.len());
        let rows = command
            .rows
            .iter_mut()
            .enumerate()
            .map(|(i, row)| {
                let payload = std::mem::take(&mut row.payload);
                hashes.push(crypto::sha256(&payload));
                NewRow {
                    header: RowHeader {
                        stream: stream.clone(),
                        sequence: i as u64 + 1,
                        ..row.header.clone()
                    },
                    payload,
                }
            })
            .collect();
        let bodies = AppendCommand {
            stream,
            expected: 0,
            rows,
        };
        let positions = submit_to(&self.committer(region).await?, bodies).await?;
        if positions.len() != command.rows.len() {
            return Err(
                StoreError::Corrupt("a region's log stored another number of bodies").into(),
            );
        }
        for ((row, position), hash) in command.rows.iter_mut().zip(positions).zip(hashes) {
            row.payload = Reference { position, hash }.encode();
        }
        Ok(command)
    }

    /// Puts each referenced body in place of its reference (one read per region and page of
    /// positions), checking its hash.
    pub(super) async fn resolve(&self, rows: &mut [StoredRow]) -> Result<(), LedgerError> {
        let mut wanted: BTreeMap<Region, BTreeSet<u64>> = BTreeMap::new();
        for row in rows.iter() {
            if let Some(r) = Reference::decode(&row.payload) {
                wanted
                    .entry(region_of(&row.header)?)
                    .or_default()
                    .insert(r.position);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut found: HashMap<(Region, u64), Vec<u8>> = HashMap::new();
        for (region, positions) in wanted {
            let log = self
                .stores
                .events_for_read(region)
                .await?
                .ok_or(StoreError::Corrupt("an event's region has no store"))?;
            for (position, body) in fetch(log.as_ref(), positions).await? {
                found.insert((region, position), body);
            }
        }
        for row in rows.iter_mut() {
            if let Some(r) = Reference::decode(&row.payload) {
                let body = found.remove(&(region_of(&row.header)?, r.position)).ok_or(
                    StoreError::Corrupt("an event's body is missing from its region"),
                )?;
                if crypto::sha256(&body) != r.hash {
                    return Err(StoreError::Corrupt(
                        "an event's body in its region does not match its reference",
                    )
                    .into());
                }
                row.payload = body;
            }
        }
        Ok(())
    }
}

fn region_of(header: &RowHeader) -> Result<Region, StoreError> {
    header
        .region
        .parse()
        .map_err(|_| StoreError::Corrupt("unknown region"))
}

/// Positions read from a region's log at a time.
const PAGE: usize = 500;

/// The bodies at `positions` of `log`, a page of positions per read.
async fn fetch(
    log: &dyn EventLog,
    positions: BTreeSet<u64>,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let positions: Vec<u64> = positions.into_iter().collect();
    let mut out = Vec::with_capacity(positions.len());
    for page in positions.chunks(PAGE) {
        out.extend(
            log.read_positions(page)
                .await?
                .into_iter()
                .map(|r| (r.position, r.payload)),
        );
    }
    Ok(out)
}

impl EventStore {
    /// Puts the bodies of Local Storage regions' rows in place of their references.
    pub(super) async fn resolved(
        &self,
        mut rows: Vec<StoredRow>,
    ) -> Result<Vec<StoredRow>, LedgerError> {
        if let Some(bodies) = &self.bodies {
            bodies.resolve(&mut rows).await?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_never_a_sealed_payload() {
        let r = Reference {
            position: 42,
            hash: [7; 32],
        };
        assert_eq!(Reference::decode(&r.encode()), Some(r));
        // A sealed payload starts with its ledger-key version (1, 2, …).
        let mut sealed = 1u32.to_be_bytes().to_vec();
        sealed.extend_from_slice(&[0; LEN - 4]);
        assert_eq!(Reference::decode(&sealed), None);
        assert_eq!(Reference::decode(&r.encode()[..LEN - 1]), None);
        // A damaged reference decodes as none but still carries the mark (verify counts it).
        let zero = Reference {
            position: 0,
            hash: [7; 32],
        }
        .encode();
        assert_eq!(Reference::decode(&zero), None);
        assert!(Reference::is_marked(&zero) && Reference::is_marked(&r.encode()));
        assert!(!Reference::is_marked(&sealed));
    }
}
