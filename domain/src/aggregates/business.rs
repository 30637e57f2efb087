//! A business (tenant) in Business Manager.

use crate::error::DomainError;
use crate::ids::BusinessId;
use crate::shim::{cqrs_aggregate, domain_event, Decider};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Unique users a business may reach outside a service window in a moving 24 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessagingLimitTier {
    /// 250 users.
    Tier250,
    /// 2,000 users.
    Tier2K,
    /// 10,000 users.
    Tier10K,
    /// 100,000 users.
    Tier100K,
    /// No limit.
    Unlimited,
}

impl MessagingLimitTier {
    /// The number of unique users, `None` for unlimited.
    pub const fn limit(self) -> Option<u64> {
        match self {
            MessagingLimitTier::Tier250 => Some(250),
            MessagingLimitTier::Tier2K => Some(2_000),
            MessagingLimitTier::Tier10K => Some(10_000),
            MessagingLimitTier::Tier100K => Some(100_000),
            MessagingLimitTier::Unlimited => None,
        }
    }

    /// The Cloud API's name (`TIER_2K`, …).
    pub const fn name(self) -> &'static str {
        match self {
            MessagingLimitTier::Tier250 => "TIER_250",
            MessagingLimitTier::Tier2K => "TIER_2K",
            MessagingLimitTier::Tier10K => "TIER_10K",
            MessagingLimitTier::Tier100K => "TIER_100K",
            MessagingLimitTier::Unlimited => "TIER_UNLIMITED",
        }
    }
}

/// Business state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Business {
    /// The business, once registered.
    pub id: Option<BusinessId>,
    /// Its display name (business information, not personal data).
    pub name: String,
    /// Current messaging-limit tier.
    pub tier: Option<MessagingLimitTier>,
}

/// What a business can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusinessCommand {
    /// Register a new business.
    Register {
        /// Its id (random, made by the caller).
        business_id: BusinessId,
        /// Display name, 1 to 128 characters.
        name: String,
    },
    /// Move the business to another messaging-limit tier.
    ChangeMessagingLimitTier {
        /// The new tier.
        tier: MessagingLimitTier,
    },
}

/// What happened to a business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BusinessEvent {
    /// A business was registered; it starts in the 250-user tier.
    BusinessRegistered {
        /// The business.
        business_id: BusinessId,
        /// Display name.
        name: String,
        /// When.
        at: Timestamp,
    },
    /// The messaging-limit tier changed.
    MessagingLimitTierChanged {
        /// The new tier.
        tier: MessagingLimitTier,
        /// When.
        at: Timestamp,
    },
}

domain_event!(BusinessEvent {
    BusinessRegistered => "1",
    MessagingLimitTierChanged => "1",
});

impl Decider for Business {
    type Command = BusinessCommand;
    type Event = BusinessEvent;

    fn decide(
        &self,
        command: BusinessCommand,
        now: Timestamp,
    ) -> Result<Vec<BusinessEvent>, DomainError> {
        match command {
            BusinessCommand::Register { business_id, name } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                let len = name.chars().count();
                if len == 0 || len > 128 {
                    return Err(DomainError::InvalidParameter("name"));
                }
                Ok(vec![BusinessEvent::BusinessRegistered {
                    business_id,
                    name,
                    at: now,
                }])
            }
            BusinessCommand::ChangeMessagingLimitTier { tier } => {
                if self.id.is_none() {
                    return Err(DomainError::NotFound);
                }
                if self.tier == Some(tier) {
                    return Ok(vec![]);
                }
                Ok(vec![BusinessEvent::MessagingLimitTierChanged {
                    tier,
                    at: now,
                }])
            }
        }
    }

    fn apply(&mut self, event: BusinessEvent) {
        match event {
            BusinessEvent::BusinessRegistered {
                business_id, name, ..
            } => {
                self.id = Some(business_id);
                self.name = name;
                self.tier = Some(MessagingLimitTier::Tier250);
            }
            BusinessEvent::MessagingLimitTierChanged { tier, .. } => self.tier = Some(tier),
        }
    }
}

cqrs_aggregate!(Business, "business");
