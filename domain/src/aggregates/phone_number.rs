//! A business phone number: registration, storage region, throughput tier.

use super::profile::BusinessProfile;
use crate::error::DomainError;
use crate::ids::{BusinessId, PhoneNumberId};
use crate::region::Region;
use crate::shim::{cqrs_aggregate, domain_event, Decider};
use crate::time::{Timestamp, HOUR_MS};
use serde::{Deserialize, Serialize};

/// Register/deregister calls allowed per number in [`REGISTRATION_WINDOW_MS`].
pub const REGISTRATION_LIMIT: usize = 10;
/// The window of the register/deregister rate limit: 72 hours.
pub const REGISTRATION_WINDOW_MS: i64 = 72 * HOUR_MS;

/// Messages per second a number may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThroughputTier {
    /// 80 messages per second (default).
    Standard,
    /// 1,000 messages per second (upgraded).
    High,
}

/// Phone number state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// The number's id, once added.
    pub id: Option<PhoneNumberId>,
    /// The owning business.
    pub business_id: Option<BusinessId>,
    /// The business's own number (business information, shown to consumers).
    pub display_number: String,
    /// The region data lives in without an election (NA or EU).
    pub home_region: Option<Region>,
    /// The Local Storage region elected, if any.
    pub elected_region: Option<Region>,
    /// Whether the number is registered for messaging.
    pub registered: bool,
    /// Current throughput tier.
    pub throughput: Option<ThroughputTier>,
    /// Register/deregister calls in the last 72 hours (for the 133016 limit).
    pub registration_calls: Vec<Timestamp>,
    /// The business profile consumers see.
    pub profile: BusinessProfile,
    /// When the throughput tier last changed (an upgrade puts the number in maintenance for
    /// [`MAINTENANCE_MS`]).
    pub throughput_changed_at: Option<Timestamp>,
}

/// How long a number is in maintenance after its throughput is upgraded: sends are refused
/// with 131057 meanwhile, as the Cloud API does while an upgrade is under way.
pub const MAINTENANCE_MS: i64 = 60 * crate::time::SECOND_MS;

impl PhoneNumber {
    /// Until when the number is in maintenance (an upgrade of its throughput under way), if it
    /// is at `now`.
    pub fn maintenance_until(&self, now: Timestamp) -> Option<Timestamp> {
        let upgraded = self.throughput == Some(ThroughputTier::High);
        self.throughput_changed_at
            .map(|at| at.millis() + MAINTENANCE_MS)
            .filter(|until| upgraded && now.millis() < *until)
            .map(Timestamp::from_millis)
    }

    /// Where this number's data is stored: the elected region, or the home region.
    pub fn storage_region(&self) -> Option<Region> {
        self.elected_region.or(self.home_region)
    }
}

/// What a phone number can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneNumberCommand {
    /// Add a number to a business.
    Add {
        /// Its id.
        phone_number_id: PhoneNumberId,
        /// The owner.
        business_id: BusinessId,
        /// The business's number, digits only.
        display_number: String,
        /// NA or EU.
        home_region: Region,
    },
    /// Elect (Some) or leave (None) Local Storage; only while unregistered.
    ConfigureStorage {
        /// The in-country region, or none.
        region: Option<Region>,
    },
    /// Register the number for messaging.
    Register,
    /// Deregister the number.
    Deregister,
    /// Change the fields of the business profile the update names (checked).
    UpdateProfile {
        /// The fields to change.
        update: BusinessProfile,
    },
    /// Change the throughput tier.
    ChangeThroughput {
        /// The new tier.
        tier: ThroughputTier,
    },
}

/// What happened to a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhoneNumberEvent {
    /// A number was added to a business.
    PhoneNumberAdded {
        /// The number's id.
        phone_number_id: PhoneNumberId,
        /// The owner.
        business_id: BusinessId,
        /// The business's number.
        display_number: String,
        /// NA or EU.
        home_region: Region,
        /// When.
        at: Timestamp,
    },
    /// Local Storage was elected (Some) or turned off (None).
    StorageConfigured {
        /// The region.
        region: Option<Region>,
        /// When.
        at: Timestamp,
    },
    /// The number was registered.
    PhoneNumberRegistered {
        /// When.
        at: Timestamp,
    },
    /// The number was deregistered.
    PhoneNumberDeregistered {
        /// When.
        at: Timestamp,
    },
    /// Fields of the business profile changed.
    ProfileUpdated {
        /// The fields changed, with their new values.
        update: BusinessProfile,
        /// When.
        at: Timestamp,
    },
    /// The throughput tier changed.
    ThroughputChanged {
        /// The new tier.
        tier: ThroughputTier,
        /// When.
        at: Timestamp,
    },
}

domain_event!(PhoneNumberEvent {
    PhoneNumberAdded => "1",
    StorageConfigured => "1",
    PhoneNumberRegistered => "1",
    PhoneNumberDeregistered => "1",
    ThroughputChanged => "1",
    ProfileUpdated => "1",
});

impl PhoneNumber {
    fn check_registration_rate(&self, now: Timestamp) -> Result<(), DomainError> {
        let recent = self
            .registration_calls
            .iter()
            .filter(|t| now.millis() - t.millis() < REGISTRATION_WINDOW_MS)
            .count();
        if recent >= REGISTRATION_LIMIT {
            return Err(DomainError::RegistrationRateLimited);
        }
        Ok(())
    }

    fn record_call(&mut self, at: Timestamp) {
        self.registration_calls
            .retain(|t| at.millis() - t.millis() < REGISTRATION_WINDOW_MS);
        self.registration_calls.push(at);
    }
}

impl Decider for PhoneNumber {
    type Command = PhoneNumberCommand;
    type Event = PhoneNumberEvent;

    fn decide(
        &self,
        command: PhoneNumberCommand,
        now: Timestamp,
    ) -> Result<Vec<PhoneNumberEvent>, DomainError> {
        if self.id.is_none() && !matches!(command, PhoneNumberCommand::Add { .. }) {
            return Err(DomainError::NotFound);
        }
        match command {
            PhoneNumberCommand::Add {
                phone_number_id,
                business_id,
                display_number,
                home_region,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                if home_region.is_local_storage() {
                    return Err(DomainError::InvalidParameter("home_region"));
                }
                if !(8..=15).contains(&display_number.len())
                    || !display_number.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(DomainError::InvalidParameter("display_phone_number"));
                }
                Ok(vec![PhoneNumberEvent::PhoneNumberAdded {
                    phone_number_id,
                    business_id,
                    display_number,
                    home_region,
                    at: now,
                }])
            }
            PhoneNumberCommand::ConfigureStorage { region } => {
                if self.registered {
                    return Err(DomainError::RegionLocked);
                }
                if region.is_some_and(|r| !r.is_local_storage()) {
                    return Err(DomainError::InvalidParameter("data_localization_region"));
                }
                if self.elected_region == region {
                    return Ok(vec![]);
                }
                Ok(vec![PhoneNumberEvent::StorageConfigured {
                    region,
                    at: now,
                }])
            }
            PhoneNumberCommand::Register => {
                self.check_registration_rate(now)?;
                Ok(vec![PhoneNumberEvent::PhoneNumberRegistered { at: now }])
            }
            PhoneNumberCommand::Deregister => {
                self.check_registration_rate(now)?;
                Ok(vec![PhoneNumberEvent::PhoneNumberDeregistered { at: now }])
            }
            PhoneNumberCommand::UpdateProfile { update } => {
                update.check()?;
                if self.profile.merged(&update) == self.profile {
                    return Ok(vec![]);
                }
                Ok(vec![PhoneNumberEvent::ProfileUpdated { update, at: now }])
            }
            PhoneNumberCommand::ChangeThroughput { tier } => {
                if self.throughput == Some(tier) {
                    return Ok(vec![]);
                }
                Ok(vec![PhoneNumberEvent::ThroughputChanged { tier, at: now }])
            }
        }
    }

    fn apply(&mut self, event: PhoneNumberEvent) {
        match event {
            PhoneNumberEvent::PhoneNumberAdded {
                phone_number_id,
                business_id,
                display_number,
                home_region,
                ..
            } => {
                self.id = Some(phone_number_id);
                self.business_id = Some(business_id);
                self.display_number = display_number;
                self.home_region = Some(home_region);
                self.throughput = Some(ThroughputTier::Standard);
            }
            PhoneNumberEvent::StorageConfigured { region, .. } => self.elected_region = region,
            PhoneNumberEvent::PhoneNumberRegistered { at } => {
                self.registered = true;
                self.record_call(at);
            }
            PhoneNumberEvent::PhoneNumberDeregistered { at } => {
                self.registered = false;
                self.record_call(at);
            }
            PhoneNumberEvent::ThroughputChanged { tier, at } => {
                self.throughput = Some(tier);
                self.throughput_changed_at = Some(at);
            }
            PhoneNumberEvent::ProfileUpdated { update, .. } => {
                self.profile = self.profile.merged(&update);
            }
        }
    }
}

cqrs_aggregate!(PhoneNumber, "phone_number");
