//! Integrity signals: the transport's own view of each business (the WhatsApp role). They are
//! classified `integrity signals`: available to the transport, to the business for its own
//! rating, and to nobody else. They hold counts and ratings, never a consumer's number.

use crate::aggregates::business::MessagingLimitTier;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The stream type of integrity events (one stream per business number).
pub const INTEGRITY_STREAM_TYPE: &str = "integrity";

/// Quality rating of a business number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QualityRating {
    /// Few or no reports.
    Green,
    /// Some reports: the business should act.
    Yellow,
    /// Many reports: the messaging-limit tier is lowered.
    Red,
}

/// What the transport observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntegrityEvent {
    /// The business reached more unique users outside a service window in a moving 24 hours
    /// than its tier allows.
    MessagingLimitReached {
        /// The tier.
        tier: MessagingLimitTier,
        /// Unique users reached in the last 24 hours.
        unique_users: u64,
        /// When.
        at: Timestamp,
    },
    /// Further sends outside a service window are refused (131048).
    ThrottleApplied {
        /// When.
        at: Timestamp,
    },
    /// The throttle was lifted (the moving window fell below the limit).
    ThrottleLifted {
        /// When.
        at: Timestamp,
    },
    /// A consumer reported the business as spam.
    SpamReported {
        /// When.
        at: Timestamp,
    },
    /// A consumer blocked the business.
    BusinessBlocked {
        /// When.
        at: Timestamp,
    },
    /// The quality rating moved.
    QualityRatingChanged {
        /// Before.
        from: QualityRating,
        /// After.
        to: QualityRating,
        /// When.
        at: Timestamp,
    },
    /// The messaging-limit tier was lowered because of the quality rating.
    MessagingTierLowered {
        /// The new tier.
        to: MessagingLimitTier,
        /// When.
        at: Timestamp,
    },
}

crate::shim::domain_event!(IntegrityEvent {
    MessagingLimitReached => "1",
    ThrottleApplied => "1",
    ThrottleLifted => "1",
    SpamReported => "1",
    BusinessBlocked => "1",
    QualityRatingChanged => "1",
    MessagingTierLowered => "1",
});

/// Sealpost's view of one business number's integrity signals, folded from the number's
/// integrity stream (so it is the same after a restart, and on any node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrityView {
    /// The quality rating the transport last reported.
    pub rating: QualityRating,
    /// The tier the transport lowered the number to, if it did.
    pub lowered_tier: Option<MessagingLimitTier>,
    /// Whether sends outside a service window are refused (131048).
    pub throttled: bool,
}

impl Default for IntegrityView {
    fn default() -> Self {
        Self {
            rating: QualityRating::Green,
            lowered_tier: None,
            throttled: false,
        }
    }
}

impl IntegrityView {
    /// Folds one event.
    pub fn apply(&mut self, event: &IntegrityEvent) {
        match event {
            IntegrityEvent::QualityRatingChanged { to, .. } => self.rating = *to,
            IntegrityEvent::MessagingTierLowered { to, .. } => self.lowered_tier = Some(*to),
            IntegrityEvent::ThrottleApplied { .. } => self.throttled = true,
            IntegrityEvent::ThrottleLifted { .. } => self.throttled = false,
            IntegrityEvent::MessagingLimitReached { .. }
            | IntegrityEvent::SpamReported { .. }
            | IntegrityEvent::BusinessBlocked { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_follows_the_last_rating_tier_and_throttle() {
        let at = Timestamp::from_millis(1);
        let mut v = IntegrityView::default();
        for e in [
            IntegrityEvent::SpamReported { at },
            IntegrityEvent::QualityRatingChanged {
                from: QualityRating::Green,
                to: QualityRating::Red,
                at,
            },
            IntegrityEvent::MessagingTierLowered {
                to: MessagingLimitTier::Tier2K,
                at,
            },
            IntegrityEvent::ThrottleApplied { at },
        ] {
            v.apply(&e);
        }
        assert_eq!(v.rating, QualityRating::Red);
        assert_eq!(v.lowered_tier, Some(MessagingLimitTier::Tier2K));
        assert!(v.throttled);
        v.apply(&IntegrityEvent::ThrottleLifted { at });
        v.apply(&IntegrityEvent::QualityRatingChanged {
            from: QualityRating::Red,
            to: QualityRating::Yellow,
            at,
        });
        assert!(!v.throttled);
        assert_eq!(v.rating, QualityRating::Yellow);
    }
}
