//! The tamper-evident log: an RFC 6962 Merkle tree over every stored event row, built by a
//! sequencer off the write path, with Ed25519-signed checkpoints.
//!
//! * A leaf commits to a row as stored: its plaintext header (stream, sequence, type, version,
//!   business, region, epoch, time) and the SHA-256 of its sealed payload ([`row_leaf`]).
//!   Never plaintext: shredding a key changes no byte of a row, so every proof stays valid.
//!   Key destructions are events too (`EpochKeyShredded`, `SubjectErased`, `SubjectExpired`),
//!   so they are leaves like any other row.
//! * The appenders record each row's leaf in the row's own transaction (a leaf depends on its
//!   row alone) and never touch the tree: [`AuditLog::sequence`] follows the leaves in position
//!   order, extends an in-memory [`Frontier`] and stores the subtree roots of `tiles`. One lock
//!   per append on a chain row would cost 4–10× the append throughput on this machine (ADR
//!   0009); rows of a store written before appenders recorded leaves are hashed here (ADR 0013).
//! * [`AuditLog::checkpoint`] signs `origin, size, root, time` ([`Checkpoint::body`], a C2SP
//!   `tlog-checkpoint` body; the checkpoint carries it as a C2SP signed note, ADR 0022) with the
//!   log's Ed25519 key, whose seed is wrapped under a region root key like every other key. Each
//!   checkpoint is stored beside the rows *and* appended to a witness file outside the database,
//!   so restoring an old database (or an old checkpoint table) is caught by `audit verify`.

pub use crate::error::AuditError;
use crate::merkle::{self, Frontier, Hash};
use crate::note;
use crate::tiles::{self, Subtree, SubtreeReader};
use ed25519_dalek::{Signer, VerifyingKey};
use sealpost_adapters::store::{AuditLeaf, CheckpointRow, EventLog, StoreError, StoredRow};
use sealpost_adapters::vault::Vault;
use sealpost_domain::{Region, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The region whose root key wraps the log's signing seed.
pub const SIGNING_KEY_REGION: Region = Region::Eu;

/// How many rows the sequencer reads per batch.
const BATCH: u32 = 2_000;

/// The bytes a row's leaf commits to (kept beside the store, whose appenders record each row's
/// leaf in the row's own transaction: ADR 0013).
pub use sealpost_adapters::store::leaf::leaf_data;

mod checkpoint;
use checkpoint::decode_hash;
pub use checkpoint::{parse_public_key, Checkpoint, CheckpointError};

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// The leaf hash of a stored row: RFC 6962's `leaf_hash` of [`leaf_data`], as the appender
/// recorded it.
pub fn row_leaf(row: &StoredRow) -> Hash {
    sealpost_adapters::store::leaf::row_leaf(&row.header, &row.payload)
}

/// Proof that the leaf at `position` is in the tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The event's position (leaf index + 1).
    pub position: u64,
    /// Its leaf hash.
    pub leaf: String,
    /// The tree size the proof is for.
    pub size: u64,
    /// The audit path, leaf to root.
    pub path: Vec<String>,
}

impl InclusionProof {
    /// Whether the proof leads from its leaf to `root`.
    pub fn verify(&self, root: &Hash) -> bool {
        let (Some(leaf), Some(path)) = (decode_hash(&self.leaf), decode_all(&self.path)) else {
            return false;
        };
        self.position >= 1
            && merkle::verify_inclusion(&leaf, self.position - 1, self.size, &path, root)
    }
}

/// Proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// The proof nodes.
    pub path: Vec<String>,
}

impl ConsistencyProof {
    /// Whether the proof links `old_root` to `new_root`.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> bool {
        let Some(path) = decode_all(&self.path) else {
            return false;
        };
        merkle::verify_consistency(self.old_size, self.new_size, old_root, new_root, &path)
    }
}

fn decode_all(hexes: &[String]) -> Option<Vec<Hash>> {
    hexes.iter().map(|h| decode_hash(h)).collect()
}

fn encode_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// Reads the witness file: one checkpoint per line. A missing file is an empty witness.
pub fn read_witness(path: &Path) -> Result<Vec<Checkpoint>, AuditError> {
    sealpost_adapters::jsonl::read_lines(path)
        .map_err(|e| AuditError::Witness(e.kind().to_string()))?
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|_| AuditError::Witness(format!("line {} is not a checkpoint", i + 1)))
        })
        .collect()
}

fn append_witness(path: &Path, checkpoint: &Checkpoint) -> Result<(), AuditError> {
    let line = serde_json::to_string(checkpoint).expect("a checkpoint serialises");
    sealpost_adapters::jsonl::append_line(path, &line)
        .map_err(|e| AuditError::Witness(e.kind().to_string()))
}

/// The default witness file of a data directory.
pub fn witness_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit").join("witness.jsonl")
}

/// Reads every leaf hash recorded by the sequencer, in order, checking they are contiguous.
pub async fn read_leaves(events: &dyn EventLog, up_to: u64) -> Result<Vec<Hash>, AuditError> {
    let mut out = Vec::new();
    let mut after = 0;
    while after < up_to {
        let batch = events
            .audit_leaves(after, BATCH.min((up_to - after) as u32))
            .await?;
        if batch.is_empty() {
            break;
        }
        for leaf in batch {
            if leaf.position != after + 1 {
                return Err(AuditError::Gap(after + 1));
            }
            out.push(leaf.hash);
            after = leaf.position;
        }
    }
    Ok(out)
}

mod signing;

/// The log: sequencer, signer and prover.
#[derive(Debug)]
pub struct AuditLog {
    events: Arc<dyn EventLog>,
    vault: Arc<Vault>,
    region: Region,
    signing: std::sync::Mutex<signing::Signing>,
    origin: String,
    witness: Option<PathBuf>,
    state: tokio::sync::Mutex<Sequencer>,
}

/// What the sequencer holds between runs: the tree's right edge and the newest checkpoint
/// (so deciding whether to sign reads no table).
#[derive(Debug)]
pub(super) struct Sequencer {
    frontier: Frontier,
    latest: Option<Checkpoint>,
}

impl AuditLog {
    /// Opens the log over `events`: loads (or makes) the signing key and reads the tree's right
    /// edge from its tiles. Checkpoints are also appended to `witness` when given.
    pub async fn open(
        events: Arc<dyn EventLog>,
        vault: &Arc<Vault>,
        origin: &str,
        witness: Option<PathBuf>,
        now: Timestamp,
    ) -> Result<Arc<Self>, AuditError> {
        Self::open_in(events, vault, SIGNING_KEY_REGION, origin, witness, now).await
    }

    /// Opens the log of a store whose signing key is `region`'s: wrapped by that region's root
    /// key and kept in its key store (a Local Storage region's own log, ADR 0020).
    pub async fn open_in(
        events: Arc<dyn EventLog>,
        vault: &Arc<Vault>,
        region: Region,
        origin: &str,
        witness: Option<PathBuf>,
        now: Timestamp,
    ) -> Result<Arc<Self>, AuditError> {
        if !note::is_key_name(origin) {
            // The origin names the note key: no space, no `+` (ADR 0022).
            return Err(StoreError::Invalid("the audit log's origin has a space or a '+'").into());
        }
        let latest = stored_checkpoints(events.as_ref()).await?.pop();
        let signing = signing::Signing::newest(vault, region, now, latest.as_ref()).await?;
        // The right edge from the stored tiles: a few queries, not every leaf (ADR 0013).
        let size = events.audit_size().await?;
        let filled = tiles::fill_in(events.as_ref(), size).await?;
        if filled > 0 {
            tracing::info!(nodes = filled, "audit tree: stored subtree roots filled in");
        }
        let frontier = tiles::frontier(events.as_ref(), size).await?;
        Ok(Arc::new(Self {
            events,
            vault: vault.clone(),
            region,
            signing: std::sync::Mutex::new(signing),
            origin: origin.to_owned(),
            witness,
            state: tokio::sync::Mutex::new(Sequencer { frontier, latest }),
        }))
    }

    /// The log's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The public key checkpoints verify under.
    pub fn public_key(&self) -> VerifyingKey {
        self.signer().verifying_key()
    }

    /// The public key, hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key().as_bytes())
    }

    /// The public key as a note verifier key (`<origin>+<key id>+<base64 key>`, ADR 0022).
    pub fn verifier_key(&self) -> String {
        note::verifier_key(&self.origin, &self.public_key())
    }

    /// Records a leaf for every row not yet in the tree; returns the tree size.
    pub async fn sequence(&self) -> Result<u64, AuditError> {
        let mut state = self.state.lock().await;
        self.sequence_locked(&mut state.frontier).await
    }

    async fn sequence_locked(&self, frontier: &mut Frontier) -> Result<u64, AuditError> {
        loop {
            let size = frontier.size();
            // The appenders recorded each row's leaf with the row (ADR 0013): read the hashes.
            let mut recorded = self.events.audit_leaves(size, BATCH).await?;
            let contiguous = recorded
                .iter()
                .zip(size + 1..)
                .take_while(|(leaf, expected)| leaf.position == *expected)
                .count();
            recorded.truncate(contiguous);
            let (leaves, from_rows) = if recorded.is_empty() {
                // Rows of a store written before the appenders recorded leaves: hash the rows.
                let rows = self.events.read_all(size, BATCH).await?;
                if rows.is_empty() {
                    return Ok(size);
                }
                let mut leaves = Vec::with_capacity(rows.len());
                for (row, expected) in rows.iter().zip(size + 1..) {
                    if row.position != expected {
                        return Err(AuditError::Gap(expected));
                    }
                    leaves.push(AuditLeaf {
                        position: row.position,
                        hash: row_leaf(row),
                    });
                }
                (leaves, true)
            } else {
                (recorded, false)
            };
            // The frontier moves only once the leaves and the nodes they finish are stored.
            let mut grown = frontier.clone();
            let mut nodes = Vec::new();
            for leaf in &leaves {
                tiles::push(&mut grown, leaf.hash, &mut nodes);
            }
            let new_leaves: &[AuditLeaf] = if from_rows { &leaves } else { &[] };
            if !new_leaves.is_empty() || !nodes.is_empty() {
                self.events.audit_append_leaves(new_leaves, &nodes).await?;
            }
            *frontier = grown;
        }
    }

    /// Sequences, then signs a checkpoint of the whole tree unless the newest one already
    /// covers it (then returns that one).
    pub async fn checkpoint(&self, now: Timestamp) -> Result<Checkpoint, AuditError> {
        let mut state = self.state.lock().await;
        self.checkpoint_locked(&mut state, now).await
    }

    /// [`AuditLog::checkpoint`] with the sequencer held.
    async fn checkpoint_locked(
        &self,
        state: &mut Sequencer,
        now: Timestamp,
    ) -> Result<Checkpoint, AuditError> {
        // A key rotated here or on another node: this checkpoint hands over to it (ADR 0026).
        self.follow_rotation().await?;
        let handing_over = self.handing_over();
        let size = self.sequence_locked(&mut state.frontier).await?;
        // One signed before notes is signed again as a note (ADR 0022).
        let current = |l: &&Checkpoint| l.size == size && !l.note.is_empty();
        if let Some(latest) = state.latest.as_ref().filter(current) {
            if handing_over.is_none() {
                return Ok(latest.clone());
            }
        }
        let root = state.frontier.root();
        let signer = self.signer();
        let mut body = Checkpoint::body(&self.origin, size, &root, now.millis());
        if let Some(old) = &handing_over {
            let (from, to) = (old.verifying_key(), signer.verifying_key());
            body.push_str(&note::handover_line(&self.origin, &from, &to));
        }
        let signature = signer.sign(body.as_bytes());
        let row = CheckpointRow {
            size,
            root: root.to_vec(),
            signed_at: now.millis(),
            origin: self.origin.clone(),
            public_key: signer.verifying_key().as_bytes().to_vec(),
            signature: signature.to_bytes().to_vec(),
            handover: handing_over.map(|old| {
                (
                    old.verifying_key().as_bytes().to_vec(),
                    old.sign(body.as_bytes()).to_bytes().to_vec(),
                )
            }),
        };
        let handover = row.handover.is_some();
        self.events.audit_put_checkpoint(&row).await?;
        if handover {
            self.handed_over();
        }
        let checkpoint = Checkpoint::from_row(row);
        if let Some(path) = &self.witness {
            // A synced file write: off the runtime's worker threads.
            let (path, line) = (path.clone(), checkpoint.clone());
            tokio::task::spawn_blocking(move || append_witness(&path, &line))
                .await
                .map_err(|e| AuditError::Witness(e.to_string()))??;
        }
        tracing::info!(size, "audit checkpoint signed");
        state.latest = Some(checkpoint.clone());
        Ok(checkpoint)
    }

    /// The newest checkpoint this log signed or found stored when it opened, without signing.
    pub async fn latest(&self) -> Option<Checkpoint> {
        self.state.lock().await.latest.clone()
    }

    /// Every stored checkpoint, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AuditError> {
        Ok(stored_checkpoints(self.events.as_ref()).await?)
    }

    /// Inclusion proof of the event at `position` in the tree of `size` leaves.
    pub async fn inclusion(&self, position: u64, size: u64) -> Result<InclusionProof, AuditError> {
        if position == 0 || position > size {
            return Err(AuditError::OutOfRange { position, size });
        }
        self.require_sequenced(size).await?;
        let ranges = merkle::inclusion_ranges(position - 1, size)
            .ok_or(AuditError::OutOfRange { position, size })?;
        let mut reader = SubtreeReader::new(self.events.as_ref());
        let leaf = reader
            .root(Subtree {
                level: 0,
                index: position - 1,
            })
            .await?;
        let path = reader.ranges(&ranges).await?;
        Ok(InclusionProof {
            position,
            leaf: hex::encode(leaf),
            size,
            path: encode_all(&path),
        })
    }

    /// A proof is only asked of a tree whose leaves are recorded.
    async fn require_sequenced(&self, size: u64) -> Result<(), AuditError> {
        let recorded = self.events.audit_size().await?;
        if size > recorded {
            return Err(AuditError::OutOfRange {
                position: size,
                size: recorded,
            });
        }
        Ok(())
    }

    /// Consistency proof between two tree sizes.
    pub async fn consistency(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, AuditError> {
        self.require_sequenced(new_size).await?;
        let ranges =
            merkle::consistency_ranges(old_size, new_size).ok_or(AuditError::OutOfRange {
                position: old_size,
                size: new_size,
            })?;
        let path = SubtreeReader::new(self.events.as_ref())
            .ranges(&ranges)
            .await?;
        Ok(ConsistencyProof {
            old_size,
            new_size,
            path: encode_all(&path),
        })
    }
}

/// Every checkpoint stored beside the rows, smallest first.
pub async fn stored_checkpoints(events: &dyn EventLog) -> Result<Vec<Checkpoint>, StoreError> {
    Ok(events
        .audit_checkpoints()
        .await?
        .into_iter()
        .map(Checkpoint::from_row)
        .collect())
}
