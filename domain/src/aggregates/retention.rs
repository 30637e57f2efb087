//! The retention ledger of one business in one region: every retention-epoch key destruction,
//! in order, and every rotation of its ledger key (ADR 0024).

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
}

domain_event!(RetentionEvent {
    EpochKeyShredded => "1",
    LedgerKeyRotated => "1",
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
        }
    }
}

cqrs_aggregate!(RetentionLedger, "retention");
