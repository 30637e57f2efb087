//! Time as a value. The domain never reads a clock; callers pass `now`.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// One second, in milliseconds.
pub const SECOND_MS: i64 = 1_000;
/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600 * SECOND_MS;
/// One day, in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

impl Timestamp {
    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (the Cloud API's `timestamp` fields).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(SECOND_MS)
    }

    /// This timestamp moved by `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// A retention epoch: one slot of `epoch_len_ms` (one UTC hour by default) counted from the
/// Unix epoch. Every message belongs to the epoch of the moment it was accepted or received,
/// and the epoch's key is destroyed when `start + retention` has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochId(i64);

impl EpochId {
    /// The epoch with this index.
    pub const fn new(index: i64) -> Self {
        Self(index)
    }

    /// The epoch's index (hours since the Unix epoch with the default length).
    pub const fn index(self) -> i64 {
        self.0
    }
}

/// How long messages live and how finely they are grouped under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// How long a message may live, in milliseconds (default 30 days).
    pub retention_ms: i64,
    /// Length of one retention epoch, in milliseconds (default one hour).
    pub epoch_len_ms: i64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            retention_ms: 30 * DAY_MS,
            epoch_len_ms: HOUR_MS,
        }
    }
}

impl RetentionPolicy {
    /// The epoch a moment falls in.
    pub fn epoch_of(&self, at: Timestamp) -> EpochId {
        EpochId(at.millis().div_euclid(self.epoch_len_ms))
    }

    /// The first millisecond of an epoch.
    pub fn epoch_start(&self, epoch: EpochId) -> Timestamp {
        Timestamp(epoch.0.saturating_mul(self.epoch_len_ms))
    }

    /// The moment at which an epoch's key must be destroyed: epoch start + retention.
    /// Every message of the epoch is at most `retention_ms` old at that moment.
    pub fn expiry_of(&self, epoch: EpochId) -> Timestamp {
        self.epoch_start(epoch).plus_millis(self.retention_ms)
    }

    /// Whether an epoch's key is due for destruction at `now`.
    pub fn is_expired(&self, epoch: EpochId, now: Timestamp) -> bool {
        now >= self.expiry_of(epoch)
    }

    /// The newest epoch that is expired at `now`, if any epoch is.
    pub fn last_expired_epoch(&self, now: Timestamp) -> EpochId {
        // expiry_of(e) <= now  <=>  e * len <= now - retention
        EpochId(
            now.millis()
                .saturating_sub(self.retention_ms)
                .div_euclid(self.epoch_len_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_policy_is_thirty_days_in_hourly_epochs() {
        let p = RetentionPolicy::default();
        assert_eq!(p.retention_ms, 30 * DAY_MS);
        assert_eq!(p.epoch_len_ms, HOUR_MS);
        assert_eq!(
            p.epoch_of(Timestamp::from_millis(HOUR_MS * 5 + 1)),
            EpochId::new(5)
        );
    }

    proptest! {
        #[test]
        fn last_expired_epoch_agrees_with_is_expired(now in 0i64..10_000_000_000_000) {
            let p = RetentionPolicy::default();
            let now = Timestamp::from_millis(now);
            let last = p.last_expired_epoch(now);
            prop_assert!(p.is_expired(last, now));
            prop_assert!(!p.is_expired(EpochId::new(last.index() + 1), now));
        }

        #[test]
        fn no_message_outlives_retention(at in 0i64..10_000_000_000_000) {
            let p = RetentionPolicy::default();
            let at = Timestamp::from_millis(at);
            let expiry = p.expiry_of(p.epoch_of(at));
            prop_assert!(expiry.millis() - at.millis() <= p.retention_ms);
            prop_assert!(expiry > at);
        }
    }
}
