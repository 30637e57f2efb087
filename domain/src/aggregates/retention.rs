//! The retention ledger of one business in one region: every retention-epoch key destruction,
//! in order, and every rotation of its ledger key (ADR 0024). The deployment's own ledger of a
//! region (business `0`) also records that region's root-key rotations, rewraps and the
//! destruction of old root-key generations (ADR 0025).

use crate::error::DomainError;
use crate::ids::BusinessId;
use crate::region::Region;
use crate::shim::{cqrs_aggregate, domain_event, Decider};
use crate::time::{EpochId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The newest shredded epoch per region of one business. Epochs are shredded in order, so this
/// is all the state idempotency needs, however long the business lives.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionLedger {
    /// The business.
    pub business_id: Option<BusinessId>,
    /// Newest shredded epoch per region.
    pub last_shredded: BTreeMap<Region, EpochId>,
    /// Newest ledger-key version recorded per region (absent in snapshots taken before
    /// rotations were recorded: none then).
    #[serde(default)]
    pub ledger_versions: BTreeMap<Region, u32>,
    /// Newest root-key generation recorded per region (the deployment's ledger only).
    #[serde(default)]
    pub root_generations: BTreeMap<Region, u32>,
    /// Root-key generations recorded as destroyed, per region.
    #[serde(default)]
    pub roots_destroyed: BTreeMap<Region, std::collections::BTreeSet<u32>>,
    /// Newest audit signing key generation recorded (the deployment's ledger only).
    #[serde(default)]
    pub audit_generation: u32,
}

impl RetentionLedger {
    /// Whether an epoch of a region is already recorded as shredded.
    pub fn is_shredded(&self, region: Region, epoch: EpochId) -> bool {
        self.last_shredded
            .get(&region)
            .is_some_and(|last| epoch <= *last)
    }
}

/// What the retention ledger can be asked to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionCommand {
    /// An epoch key is due and is about to be destroyed.
    ShredEpoch {
        /// The business.
        business_id: BusinessId,
        /// The region of the key.
        region: Region,
        /// The epoch.
        epoch: EpochId,
        /// When the epoch expired (start + retention).
        expired_at: Timestamp,
    },
    /// A new ledger key version is about to be made; new events are sealed under it.
    RotateLedgerKey {
        /// The business.
        business_id: BusinessId,
        /// The region of the key.
        region: Region,
        /// The new version.
        version: u32,
        /// Why.
        reason: RotationReason,
    },
    /// A region's root key is about to get generation `generation`; keys are wrapped under it
    /// from now on.
    RotateRootKey {
        /// The region.
        region: Region,
        /// The new generation.
        generation: u32,
        /// Why.
        reason: RotationReason,
    },
    /// A rewrap moved `rows` keys and accounts of a region to root-key generation `generation`.
    RecordRewrap {
        /// The region.
        region: Region,
        /// The generation they are wrapped under now.
        generation: u32,
        /// How many.
        rows: u64,
    },
    /// The audit log's signing key is about to hand over to generation `generation`.
    RotateAuditKey {
        /// The region whose key store keeps the signing seed.
        region: Region,
        /// The new generation.
        generation: u32,
        /// Its verifier key (the note format), public.
        verifier_key: String,
        /// Why.
        reason: RotationReason,
    },
    /// Generation `generation` of a region's root key was destroyed.
    RecordRootKeyDestroyed {
        /// The region.
        region: Region,
        /// The generation destroyed.
        generation: u32,
    },
}

/// Why a key was rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationReason {
    /// Its period was over.
    Scheduled,
    /// An operator asked.
    OnDemand,
}

/// Key destructions and rotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionEvent {
    /// A retention-epoch key was destroyed: every message of that epoch is unreadable for good.
    EpochKeyShredded {
        /// The business.
        business_id: BusinessId,
        /// The region.
        region: Region,
        /// The epoch.
        epoch: EpochId,
        /// When the epoch expired.
        expired_at: Timestamp,
        /// When the key was destroyed.
        at: Timestamp,
    },
    /// A business's ledger key in a region was rotated: events from now on are sealed under
    /// `version`; earlier versions stay for reading.
    LedgerKeyRotated {
        /// The business.
        business_id: BusinessId,
        /// The region.
        region: Region,
        /// The new version.
        version: u32,
        /// Why.
        reason: RotationReason,
        /// When.
        at: Timestamp,
    },
    /// A region's root key got a new generation: keys are wrapped under it from now on, and
    /// what was wrapped under the older ones is rewrapped.
    RootKeyRotated {
        /// The region.
        region: Region,
        /// The new generation.
        generation: u32,
        /// Why.
        reason: RotationReason,
        /// When.
        at: Timestamp,
    },
    /// Keys and Signal accounts of a region were rewrapped under root-key generation
    /// `generation`.
    RootKeysRewrapped {
        /// The region.
        region: Region,
        /// The generation they are wrapped under now.
        generation: u32,
        /// How many rows were rewrapped.
        rows: u64,
        /// When.
        at: Timestamp,
    },
    /// The audit log's signing key was handed over to generation `generation`: checkpoints
    /// from its hand-over on are signed by it; the hand-over checkpoint is signed by both.
    AuditKeyRotated {
        /// The region whose key store keeps the signing seed.
        region: Region,
        /// The new generation.
        generation: u32,
        /// Its verifier key (the note format), public.
        verifier_key: String,
        /// Why.
        reason: RotationReason,
        /// When.
        at: Timestamp,
    },
    /// An old generation of a region's root key was destroyed: nothing wrapped under it
    /// opens again (nothing was left under it).
    RootKeyDestroyed {
        /// The region.
        region: Region,
        /// The generation destroyed.
        generation: u32,
        /// When.
        at: Timestamp,
    },
}

domain_event!(RetentionEvent {
    AuditKeyRotated => "1",
    EpochKeyShredded => "1",
    LedgerKeyRotated => "1",
    RootKeyRotated => "1",
    RootKeysRewrapped => "1",
    RootKeyDestroyed => "1",
});

impl Decider for RetentionLedger {
    type Command = RetentionCommand;
    type Event = RetentionEvent;

    fn decide(
        &self,
        command: RetentionCommand,
        now: Timestamp,
    ) -> Result<Vec<RetentionEvent>, DomainError> {
        match command {
            RetentionCommand::ShredEpoch {
                business_id,
                region,
                epoch,
                expired_at,
            } => {
                if self.business_id.as_ref().is_some_and(|b| *b != business_id) {
                    return Err(DomainError::InvalidParameter("business_id"));
                }
                if now < expired_at {
                    return Err(DomainError::InvalidTransition("epoch has not expired yet"));
                }
                if self.is_shredded(region, epoch) {
                    return Ok(vec![]);
                }
                Ok(vec![RetentionEvent::EpochKeyShredded {
                    business_id,
                    region,
                    epoch,
                    expired_at,
                    at: now,
                }])
            }
            RetentionCommand::RotateLedgerKey {
                business_id,
                region,
                version,
                reason,
            } => {
                if self.business_id.as_ref().is_some_and(|b| *b != business_id) {
                    return Err(DomainError::InvalidParameter("business_id"));
                }
                if version < 2 {
                    return Err(DomainError::InvalidParameter("version"));
                }
                // Recorded already (a pass that stopped before making the key, or a second
                // rotation asked at once): nothing more to record.
                if self
                    .ledger_versions
                    .get(&region)
                    .is_some_and(|v| *v >= version)
                {
                    return Ok(vec![]);
                }
                Ok(vec![RetentionEvent::LedgerKeyRotated {
                    business_id,
                    region,
                    version,
                    reason,
                    at: now,
                }])
            }
            RetentionCommand::RotateRootKey {
                region,
                generation,
                reason,
            } => {
                if generation < 2 {
                    return Err(DomainError::InvalidParameter("generation"));
                }
                if self
                    .root_generations
                    .get(&region)
                    .is_some_and(|g| *g >= generation)
                {
                    return Ok(vec![]);
                }
                Ok(vec![RetentionEvent::RootKeyRotated {
                    region,
                    generation,
                    reason,
                    at: now,
                }])
            }
            RetentionCommand::RecordRewrap {
                region,
                generation,
                rows,
            } => Ok(match rows {
                0 => vec![],
                rows => vec![RetentionEvent::RootKeysRewrapped {
                    region,
                    generation,
                    rows,
                    at: now,
                }],
            }),
            RetentionCommand::RotateAuditKey {
                region,
                generation,
                verifier_key,
                reason,
            } => {
                if generation < 2 {
                    return Err(DomainError::InvalidParameter("generation"));
                }
                if self.audit_generation >= generation {
                    return Ok(vec![]);
                }
                Ok(vec![RetentionEvent::AuditKeyRotated {
                    region,
                    generation,
                    verifier_key,
                    reason,
                    at: now,
                }])
            }
            RetentionCommand::RecordRootKeyDestroyed { region, generation } => {
                if self
                    .roots_destroyed
                    .get(&region)
                    .is_some_and(|d| d.contains(&generation))
                {
                    return Ok(vec![]);
                }
                Ok(vec![RetentionEvent::RootKeyDestroyed {
                    region,
                    generation,
                    at: now,
                }])
            }
        }
    }

    fn apply(&mut self, event: RetentionEvent) {
        match event {
            RetentionEvent::EpochKeyShredded {
                business_id,
                region,
                epoch,
                ..
            } => {
                self.business_id = Some(business_id);
                let last = self.last_shredded.entry(region).or_insert(epoch);
                *last = (*last).max(epoch);
            }
            RetentionEvent::LedgerKeyRotated {
                business_id,
                region,
                version,
                ..
            } => {
                self.business_id = Some(business_id);
                let last = self.ledger_versions.entry(region).or_insert(version);
                *last = (*last).max(version);
            }
            RetentionEvent::RootKeyRotated {
                region, generation, ..
            } => {
                let last = self.root_generations.entry(region).or_insert(generation);
                *last = (*last).max(generation);
            }
            RetentionEvent::RootKeysRewrapped { .. } => {}
            RetentionEvent::AuditKeyRotated { generation, .. } => {
                self.audit_generation = self.audit_generation.max(generation);
            }
            RetentionEvent::RootKeyDestroyed {
                region, generation, ..
            } => {
                self.roots_destroyed
                    .entry(region)
                    .or_default()
                    .insert(generation);
            }
        }
    }
}

cqrs_aggregate!(RetentionLedger, "retention");
