//! Data in use outside its region (issue 14): a Local Storage number's content or numbers may be
//! held by the home node while it works on them (a hand-over, a decryption, a webhook attempt, a
//! media transfer) for at most [`DATA_IN_USE_MAX_MS`]. The retention duty accounts for it per
//! region, an event per hour; the DPO's retention report shows the totals.

use crate::region::Region;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The stream type of the accounts (one stream per Local Storage region, the deployment's).
pub const TRANSIT_STREAM_TYPE: &str = "transit";

/// The longest a Local Storage number's data may be in use outside its region: 60 minutes.
pub const DATA_IN_USE_MAX_MS: i64 = 60 * 60_000;

/// What the home node held of a Local Storage region's data in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransitEvent {
    /// The account of one period: how often the region's data was held, for how long at
    /// most, and how many holds outlived the limit.
    DataInUseAccounted {
        /// The region.
        region: Region,
        /// The period's start.
        from: Timestamp,
        /// The period's end.
        to: Timestamp,
        /// Holds that ended in the period (each dropped its data).
        held: u64,
        /// The longest hold, in milliseconds (ended, or still running at `to`).
        longest_ms: i64,
        /// Holds still running at `to` that began more than [`DATA_IN_USE_MAX_MS`] before.
        over_limit: u64,
    },
}

crate::shim::domain_event!(TransitEvent {
    DataInUseAccounted => "1",
});

/// A region's accounts folded: what the DPO's report shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransitTotals {
    /// Periods accounted.
    pub periods: u64,
    /// Holds.
    pub held: u64,
    /// The longest hold (ms).
    pub longest_ms: i64,
    /// Holds over the limit.
    pub over_limit: u64,
    /// The first period's start.
    pub from: Option<Timestamp>,
    /// The last period's end.
    pub to: Option<Timestamp>,
}

impl TransitTotals {
    /// Folds one account.
    pub fn apply(&mut self, e: &TransitEvent) {
        let TransitEvent::DataInUseAccounted {
            from,
            to,
            held,
            longest_ms,
            over_limit,
            ..
        } = e;
        self.periods += 1;
        self.held += held;
        self.longest_ms = self.longest_ms.max(*longest_ms);
        self.over_limit += over_limit;
        self.from = Some(self.from.map_or(*from, |f| f.min(*from)));
        self.to = Some(self.to.map_or(*to, |t| t.max(*to)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_holds_and_keep_the_longest() {
        let account = |from: i64, held, longest_ms, over_limit| TransitEvent::DataInUseAccounted {
            region: Region::De,
            from: Timestamp::from_millis(from),
            to: Timestamp::from_millis(from + 3_600_000),
            held,
            longest_ms,
            over_limit,
        };
        let mut t = TransitTotals::default();
        t.apply(&account(3_600_000, 5, 1_200, 0));
        t.apply(&account(0, 2, 900, 1));
        assert_eq!(
            t,
            TransitTotals {
                periods: 2,
                held: 7,
                longest_ms: 1_200,
                over_limit: 1,
                from: Some(Timestamp::from_millis(0)),
                to: Some(Timestamp::from_millis(7_200_000)),
            }
        );
    }
}
