//! `sealpost audit verify`: recomputes the tamper-evident log from the rows as they are now and
//! names the first position that was edited, deleted, reordered or truncated, or where an older
//! checkpoint was restored. Works on a live store or on an offline [`Bundle`].
//!
//! Three sources are compared:
//! 1. the rows, hashed again ([`row_leaf`]);
//! 2. the leaves the sequencer recorded when it first saw each row — they locate an edit;
//! 3. the signed checkpoints in the store and in the witness file kept outside it — they make
//!    the leaves themselves untouchable (a changed leaf changes the root) and catch a restored
//!    older database.

use crate::log::{
    parse_public_key, row_leaf, sha256, stored_checkpoints, AuditError, Checkpoint,
    ConsistencyProof, InclusionProof,
};
use crate::merkle::{self, Frontier, Hash};

mod keys;
mod references;
use ed25519_dalek::VerifyingKey;
use keys::KeyChain;
pub use references::{note_reference, verify_references, HomeReferences, References};
use sealpost_adapters::store::{EventLog, RowHeader, StoredRow, StreamId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Something `verify` found wrong. Positions are global event positions (leaf index + 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The row at `position` no longer hashes to its leaf.
    Edited {
        /// Where.
        position: u64,
    },
    /// The row at `position` is missing while later rows remain.
    Deleted {
        /// Where.
        position: u64,
    },
    /// The row at `position` is the row that was sequenced at `belongs_at`.
    Reordered {
        /// Where.
        position: u64,
        /// Where it was.
        belongs_at: u64,
    },
    /// Every row from `position` on is gone, though the log had them.
    Truncated {
        /// The first missing position.
        position: u64,
    },
    /// A checkpoint's root does not match the rows; the change lies in `from..=size`.
    RootMismatch {
        /// First position not proven by an earlier checkpoint.
        from: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// A checkpoint's signature does not verify (or was made by another key).
    BadCheckpoint {
        /// The checkpoint's size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// A checkpoint published in the witness is not in the store: an older store or checkpoint
    /// table was restored. Everything from `position` on is unproven.
    CheckpointRestored {
        /// The first position the store cannot prove.
        position: u64,
        /// The size of the published checkpoint that is missing.
        published_size: u64,
        /// The newest checkpoint the store still has (0 if none).
        store_size: u64,
    },
    /// The sequencer's own leaf record has a hole.
    LeafGap {
        /// Where.
        position: u64,
    },
}

impl Finding {
    /// The position this finding names.
    pub fn position(&self) -> u64 {
        match self {
            Finding::Edited { position }
            | Finding::Deleted { position }
            | Finding::Reordered { position, .. }
            | Finding::Truncated { position }
            | Finding::CheckpointRestored { position, .. }
            | Finding::LeafGap { position } => *position,
            Finding::RootMismatch { from, .. } => *from,
            Finding::BadCheckpoint { size, .. } => *size,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Edited { position } => write!(f, "position {position}: row edited"),
            Finding::Deleted { position } => write!(f, "position {position}: row deleted"),
            Finding::Reordered {
                position,
                belongs_at,
            } => write!(
                f,
                "position {position}: rows reordered (this row was sequenced at position {belongs_at})"
            ),
            Finding::Truncated { position } => {
                write!(f, "position {position}: log truncated from here on")
            }
            Finding::RootMismatch { from, size } => write!(
                f,
                "position {from}: the signed checkpoint of size {size} does not match the rows in {from}..={size}"
            ),
            Finding::BadCheckpoint { size, reason } => {
                write!(f, "checkpoint of size {size}: {reason}")
            }
            Finding::CheckpointRestored {
                position,
                published_size,
                store_size,
            } => write!(
                f,
                "position {position}: an older checkpoint was restored (published size {published_size}, store has {store_size})"
            ),
            Finding::LeafGap { position } => {
                write!(f, "position {position}: the sequencer's leaf record has a hole")
            }
        }
    }
}

/// What `verify` concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Rows read.
    pub rows: u64,
    /// Leaves the sequencer had recorded.
    pub leaves: u64,
    /// Checkpoints checked (store and witness).
    pub checkpoints: u64,
    /// The newest checkpoint that verified against the rows.
    pub latest_good: Option<Checkpoint>,
    /// Everything found wrong, by position.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Whether nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first position that was tampered with.
    pub fn first_bad_position(&self) -> Option<u64> {
        self.findings.first().map(Finding::position)
    }
}

/// Everything `verify` compares. `rows` are (position, recomputed leaf hash) in position order;
/// `leaves` are the sequencer's recorded leaves in position order.
#[derive(Debug)]
pub struct Evidence<'a> {
    /// Rows as they are now.
    pub rows: &'a [(u64, Hash)],
    /// The sequencer's record.
    pub leaves: &'a [(u64, Hash)],
    /// Checkpoints stored beside the rows.
    pub checkpoints: &'a [Checkpoint],
    /// Checkpoints published outside the store.
    pub witness: &'a [Checkpoint],
    /// The published key, when the caller has it.
    pub trusted_key: Option<&'a VerifyingKey>,
}

/// Compares rows, leaves and checkpoints (pure).
pub fn verify(e: &Evidence<'_>) -> Verdict {
    let mut findings = Vec::new();
    let rows: BTreeMap<u64, Hash> = e.rows.iter().copied().collect();
    let last_row = rows.keys().next_back().copied().unwrap_or(0);

    // The sequencer's record must be contiguous from 1.
    let mut leaves: Vec<Hash> = Vec::with_capacity(e.leaves.len());
    for (i, (position, hash)) in e.leaves.iter().enumerate() {
        if *position != i as u64 + 1 {
            findings.push(Finding::LeafGap {
                position: i as u64 + 1,
            });
            break;
        }
        leaves.push(*hash);
    }
    let leaf_at: HashMap<Hash, u64> = leaves
        .iter()
        .enumerate()
        .map(|(i, h)| (*h, i as u64 + 1))
        .collect();

    // Checkpoints: store ∪ witness, each signed by the trusted key (or the earliest
    // checkpoint's) or a key a verified hand-over links to it (ADR 0026).
    let signed: Vec<&Checkpoint> = e.checkpoints.iter().chain(e.witness).collect();
    let keys = KeyChain::of(&signed, e.trusted_key);
    let mut all: BTreeMap<u64, &Checkpoint> = BTreeMap::new();
    for c in signed {
        match keys.admits(c) {
            Ok(()) => {
                if let Some(other) = all.get(&c.size) {
                    if other.root != c.root {
                        findings.push(Finding::BadCheckpoint {
                            size: c.size,
                            reason: "two signed roots for one size (the log forked)".into(),
                        });
                    }
                } else {
                    all.insert(c.size, c);
                }
            }
            Err(err) => findings.push(Finding::BadCheckpoint {
                size: c.size,
                reason: err.to_string(),
            }),
        }
    }
    let claimed = all.keys().next_back().copied().unwrap_or(0);

    // Row by row against the leaves, up to everything any record claims.
    let end = (leaves.len() as u64).max(claimed);
    let mut precise: Vec<Finding> = Vec::new();
    for p in 1..=end {
        match (rows.get(&p), leaves.get((p - 1) as usize)) {
            (None, _) if p > last_row => {
                precise.push(Finding::Truncated { position: p });
                break;
            }
            (None, _) => precise.push(Finding::Deleted { position: p }),
            (Some(row), Some(leaf)) if row != leaf => match leaf_at.get(row) {
                Some(q) if *q != p => precise.push(Finding::Reordered {
                    position: p,
                    belongs_at: *q,
                }),
                _ => precise.push(Finding::Edited { position: p }),
            },
            _ => {}
        }
    }
    let first_precise = precise.first().map(Finding::position);

    // Roots of the rows as they are now, at every checkpoint size.
    let mut frontier = Frontier::new();
    let mut latest_good: Option<Checkpoint> = None;
    let mut proven = 0u64;
    for (size, c) in &all {
        while frontier.size() < *size {
            let p = frontier.size() + 1;
            frontier.push(rows.get(&p).copied().unwrap_or([0; 32]));
        }
        let matches = c.root_hash().is_ok_and(|r| r == frontier.root());
        if matches {
            latest_good = Some((*c).clone());
            proven = *size;
        } else if first_precise.is_none_or(|p| p > *size) {
            findings.push(Finding::RootMismatch {
                from: proven + 1,
                size: *size,
            });
            break;
        } else {
            break;
        }
    }

    // A published checkpoint the store no longer has: an older store was restored.
    let store_size = e.checkpoints.iter().map(|c| c.size).max().unwrap_or(0);
    if let Some(published) = e
        .witness
        .iter()
        .filter(|w| w.size > store_size && !e.checkpoints.iter().any(|c| c.size == w.size))
        .max_by_key(|w| w.size)
    {
        findings.push(Finding::CheckpointRestored {
            position: (store_size + 1).min(first_precise.unwrap_or(u64::MAX)),
            published_size: published.size,
            store_size,
        });
    }

    findings.extend(precise);
    findings.sort_by_key(Finding::position);
    Verdict {
        rows: rows.len() as u64,
        leaves: leaves.len() as u64,
        checkpoints: all.len() as u64,
        latest_good,
        findings,
    }
}

const READ_BATCH: u32 = 5_000;

/// Reads every row and leaf of a store and verifies them against its checkpoints and the
/// `witness`. `progress` is called with the number of rows read so far.
pub async fn verify_store(
    events: &dyn EventLog,
    witness: &[Checkpoint],
    trusted_key: Option<&VerifyingKey>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Verdict, AuditError> {
    verify_store_seeing(events, witness, trusted_key, progress, &mut |_| {}).await
}

/// [`verify_store`], showing `each_row` every row as it is read: what else the caller checks
/// of the rows (the home log's references to the regions' bodies) takes no second read.
pub async fn verify_store_seeing(
    events: &dyn EventLog,
    witness: &[Checkpoint],
    trusted_key: Option<&VerifyingKey>,
    progress: &mut (dyn FnMut(u64) + Send),
    each_row: &mut (dyn FnMut(&StoredRow) + Send),
) -> Result<Verdict, AuditError> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let batch = events.read_all(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for r in &batch {
            each_row(r);
            rows.push((r.position, row_leaf(r)));
        }
        progress(rows.len() as u64);
    }
    let mut leaves = Vec::new();
    let mut after = 0;
    loop {
        let batch = events.audit_leaves(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        leaves.extend(batch.iter().map(|l| (l.position, l.hash)));
    }
    let checkpoints = stored_checkpoints(events).await?;
    Ok(verify(&Evidence {
        rows: &rows,
        leaves: &leaves,
        checkpoints: &checkpoints,
        witness,
        trusted_key,
    }))
}

/// One row of a bundle: its header, the hash of its sealed payload and the leaf the sequencer
/// recorded. No payload, nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BundleRow {
    /// Global position.
    pub position: u64,
    /// Stream type.
    pub stream_type: String,
    /// Stream id (random).
    pub stream_id: String,
    /// Sequence in the stream.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
    /// Event version.
    pub event_version: u32,
    /// Business id.
    pub business_id: String,
    /// Region code.
    pub region: String,
    /// Retention epoch.
    pub epoch: Option<i64>,
    /// When recorded (ms).
    pub recorded_at: i64,
    /// SHA-256 of the sealed payload, hex.
    pub payload_sha256: String,
    /// The sequencer's leaf, hex (absent if not yet sequenced).
    pub leaf: Option<String>,
}

impl BundleRow {
    /// The bundle form of a stored row.
    pub fn of(r: &sealpost_adapters::store::StoredRow, leaf: Option<&Hash>) -> Self {
        Self {
            position: r.position,
            stream_type: r.header.stream.kind.clone(),
            stream_id: r.header.stream.id.clone(),
            sequence: r.header.sequence,
            event_type: r.header.event_type.clone(),
            event_version: r.header.event_version,
            business_id: r.header.business_id.clone(),
            region: r.header.region.clone(),
            epoch: r.header.epoch,
            recorded_at: r.header.recorded_at,
            payload_sha256: hex::encode(sha256(&r.payload)),
            leaf: leaf.map(hex::encode),
        }
    }

    fn header(&self) -> RowHeader {
        RowHeader {
            stream: StreamId::new(&self.business_id, &self.stream_type, &self.stream_id),
            sequence: self.sequence,
            event_type: self.event_type.clone(),
            event_version: self.event_version,
            business_id: self.business_id.clone(),
            region: self.region.clone(),
            epoch: self.epoch,
            recorded_at: self.recorded_at,
        }
    }

    /// The leaf this row hashes to now (all zero if its payload hash is malformed).
    pub fn recomputed_leaf(&self) -> Hash {
        let payload: Hash = hex::decode(&self.payload_sha256)
            .ok()
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 32]);
        merkle::leaf_hash(&crate::log::leaf_data(&self.header(), &payload))
    }
}

/// An offline evidence bundle: everything `audit verify --bundle` needs, no database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Format marker.
    pub format: String,
    /// The log's name.
    pub origin: String,
    /// The published public key, hex.
    pub public_key: String,
    /// When it was exported (ms).
    pub exported_at: i64,
    /// Every row, in position order.
    pub rows: Vec<BundleRow>,
    /// Every signed checkpoint, smallest first.
    pub checkpoints: Vec<Checkpoint>,
    /// Consistency proofs between consecutive checkpoints.
    pub consistency: Vec<ConsistencyProof>,
    /// Inclusion proofs of every key destruction (epoch shreds, erasures, expiries) in the
    /// newest checkpoint.
    pub destructions: Vec<InclusionProof>,
}

/// The bundle format marker.
pub const BUNDLE_FORMAT: &str = "sealpost-audit-bundle/1";

/// Event types that record a key destruction.
pub const DESTRUCTION_EVENTS: [&str; 4] = [
    "EpochKeyShredded",
    "SubjectErased",
    "SubjectExpired",
    "RootKeyDestroyed",
];

/// Builds a bundle from a store (sequence and checkpoint first, so it covers every row).
pub async fn export(
    log: &crate::log::AuditLog,
    events: &dyn EventLog,
    now: sealpost_domain::Timestamp,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Bundle, AuditError> {
    let latest = log.checkpoint(now).await?;
    let leaves = crate::log::read_leaves(events, u64::MAX).await?;
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let batch = events.read_all(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for r in &batch {
            rows.push(BundleRow::of(r, leaves.get((r.position - 1) as usize)));
        }
        progress(rows.len() as u64);
    }
    let checkpoints = log.checkpoints().await?;
    let mut consistency = Vec::new();
    for pair in checkpoints.windows(2) {
        consistency.push(log.consistency(pair[0].size, pair[1].size).await?);
    }
    let mut destructions = Vec::new();
    for r in rows.iter().filter(|r| {
        r.position <= latest.size && DESTRUCTION_EVENTS.contains(&r.event_type.as_str())
    }) {
        destructions.push(log.inclusion(r.position, latest.size).await?);
    }
    Ok(Bundle {
        format: BUNDLE_FORMAT.to_owned(),
        origin: log.origin().to_owned(),
        public_key: log.public_key_hex(),
        exported_at: now.millis(),
        rows,
        checkpoints,
        consistency,
        destructions,
    })
}

/// Verifies a bundle offline: rows against leaves and checkpoints as for a store, plus every
/// consistency and inclusion proof it carries.
pub fn verify_bundle(
    bundle: &Bundle,
    witness: &[Checkpoint],
    trusted_key: Option<&VerifyingKey>,
) -> Verdict {
    let rows: Vec<(u64, Hash)> = bundle
        .rows
        .iter()
        .map(|r| (r.position, r.recomputed_leaf()))
        .collect();
    let leaves: Vec<(u64, Hash)> = bundle
        .rows
        .iter()
        .filter_map(|r| {
            let leaf: Hash = hex::decode(r.leaf.as_ref()?).ok()?.try_into().ok()?;
            Some((r.position, leaf))
        })
        .collect();
    let bundle_key = parse_public_key(&bundle.public_key);
    let key = trusted_key.copied().or(bundle_key);
    let mut verdict = verify(&Evidence {
        rows: &rows,
        leaves: &leaves,
        checkpoints: &bundle.checkpoints,
        witness,
        trusted_key: key.as_ref(),
    });
    let roots: HashMap<u64, Hash> = bundle
        .checkpoints
        .iter()
        .filter_map(|c| Some((c.size, c.root_hash().ok()?)))
        .collect();
    for p in &bundle.consistency {
        let ok = match (roots.get(&p.old_size), roots.get(&p.new_size)) {
            (Some(old), Some(new)) => p.verify(old, new),
            _ => false,
        };
        if !ok {
            verdict.findings.push(Finding::BadCheckpoint {
                size: p.new_size,
                reason: format!(
                    "consistency proof {}→{} does not verify",
                    p.old_size, p.new_size
                ),
            });
        }
    }
    for p in &bundle.destructions {
        let ok = roots.get(&p.size).is_some_and(|root| p.verify(root))
            && rows
                .iter()
                .find(|(pos, _)| *pos == p.position)
                .is_some_and(|(_, leaf)| hex::encode(leaf) == p.leaf);
        if !ok {
            verdict.findings.push(Finding::Edited {
                position: p.position,
            });
        }
    }
    verdict.findings.sort_by_key(Finding::position);
    verdict
}
