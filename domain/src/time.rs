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

    /// The UTC calendar date, `YYYY-MM-DD`, in the proleptic Gregorian calendar. Correct for
    /// times before 1970 too (years before 1 are written astronomically, e.g. `-0001`).
    pub fn utc_date(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(DAY_MS));
        format!("{}-{m:02}-{d:02}", format_year(y))
    }

    /// The start (00:00 UTC) of a `YYYY-MM-DD` date as [`Timestamp::utc_date`] writes it
    /// (years 0 to 9999); `None` for anything else, or a date that does not exist.
    pub fn from_utc_date(date: &str) -> Option<Self> {
        let mut parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (Some(Some(y)), Some(Some(m)), Some(Some(d))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if !((0..=9999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)) {
            return None;
        }
        let at = Self(days_from_civil(y, m, d).checked_mul(DAY_MS)?);
        (at.utc_date() == date).then_some(at)
    }

    /// The UTC date and time to the second, RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` (milliseconds
    /// are truncated towards the past, so `-1` ms is `1969-12-31T23:59:59Z`).
    pub fn utc_rfc3339(self) -> String {
        let secs_of_day = self.0.rem_euclid(DAY_MS) / SECOND_MS;
        let (hh, mm, ss) = (
            secs_of_day / 3_600,
            secs_of_day % 3_600 / 60,
            secs_of_day % 60,
        );
        format!("{}T{hh:02}:{mm:02}:{ss:02}Z", self.utc_date())
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a proleptic Gregorian
/// (year, month, day). <http://howardhinnant.github.io/date_algorithms.html#civil_from_days>
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
/// <http://howardhinnant.github.io/date_algorithms.html#days_from_civil>
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// A year as at least four digits, with a leading `-` before year 0.
fn format_year(y: i64) -> String {
    if y < 0 {
        format!("-{:04}", y.unsigned_abs())
    } else {
        format!("{y:04}")
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
    fn a_utc_date_reads_back_to_its_midnight() {
        for date in [
            "1970-01-01",
            "2000-02-29",
            "2026-12-04",
            "0000-03-01",
            "9999-12-31",
        ] {
            let at = Timestamp::from_utc_date(date).expect(date);
            assert_eq!(at.utc_date(), date);
            assert_eq!(at.millis().rem_euclid(DAY_MS), 0);
        }
        assert_eq!(
            Timestamp::from_utc_date("2026-12-04").map(Timestamp::millis),
            Some(20_791 * DAY_MS)
        );
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "9223372036854775807-01-01",
            "2026-01-9223372036854775807",
            "yesterday",
            "2026-12-04T00",
        ] {
            assert_eq!(Timestamp::from_utc_date(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_day_reads_back(days in -719_000i64..2_900_000) {
            let at = Timestamp::from_millis(days * DAY_MS);
            prop_assert_eq!(Timestamp::from_utc_date(&at.utc_date()), Some(at));
        }
    }

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

    #[test]
    fn utc_formatting_matches_known_dates() {
        let at = |ms: i64| Timestamp::from_millis(ms);
        assert_eq!(at(0).utc_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(at(0).utc_date(), "1970-01-01");
        assert_eq!(at(951_782_400_000).utc_date(), "2000-02-29");
        assert_eq!(at(1_800_000_000_000).utc_rfc3339(), "2027-01-15T08:00:00Z");
        assert_eq!(at(-1).utc_rfc3339(), "1969-12-31T23:59:59Z");
        assert_eq!(at(-31_536_000_001).utc_rfc3339(), "1968-12-31T23:59:59Z");
        assert_eq!(
            at(253_402_300_799_000).utc_rfc3339(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(at(-62_135_596_800_000).utc_date(), "0001-01-01");
        assert_eq!(at(-62_135_596_800_001).utc_date(), "0000-12-31");
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
