//! Integrity signals as the transport computes them, per business number: unique users reached
//! outside a service window in a moving 24 hours against the messaging-limit tier (with a
//! throttle when a business tries to message everyone), spam and block reports, and a quality
//! rating that lowers the tier. Pure: time comes in as an argument.

use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::integrity::{IntegrityEvent, QualityRating};
use sealpost_domain::time::{DAY_MS, HOUR_MS};
use sealpost_domain::Timestamp;
use std::collections::{HashMap, VecDeque};

/// The moving window of the messaging limit and of the service window.
pub const WINDOW_MS: i64 = 24 * HOUR_MS;
/// How long spam and block reports count towards the quality rating.
pub const REPORT_WINDOW_MS: i64 = 7 * DAY_MS;
/// Reports in the window from which the rating is YELLOW.
pub const YELLOW_REPORTS: usize = 3;
/// Reports in the window from which the rating is RED.
pub const RED_REPORTS: usize = 6;
/// How often the moving windows are pruned, at most (on the transport's clock): pruning walks
/// every user, so it is not done on every send.
pub const PRUNE_EVERY_MS: i64 = 60_000;
/// A consumer's last inbound time must be kept again once it moved by this much; a move
/// smaller than that changes nothing a reader of the 24-hour window needs.
pub const INBOUND_KEEP_EVERY_MS: i64 = HOUR_MS;

/// A send the transport refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

/// A report a consumer made about a business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Reported as spam.
    Spam,
    /// Blocked.
    Block,
}

/// The transport's integrity state for one business number (kept sealed by the simulated
/// world across restarts).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BusinessIntegrity {
    tier: MessagingLimitTier,
    /// Users reached outside a service window, with when they were first reached in the window.
    reached: HashMap<String, i64>,
    last_inbound: HashMap<String, i64>,
    reports: VecDeque<i64>,
    rating: QualityRating,
    throttled: bool,
    /// When the windows were last pruned.
    #[serde(skip)]
    pruned_at: i64,
    /// Whether the state changed in a way that must be kept (see [`BusinessIntegrity::take_dirty`]).
    #[serde(skip)]
    dirty: bool,
    /// `last_inbound` as it was last kept (what a restart would read).
    #[serde(skip)]
    kept_inbound: HashMap<String, i64>,
}

fn lower(tier: MessagingLimitTier) -> MessagingLimitTier {
    match tier {
        MessagingLimitTier::Unlimited => MessagingLimitTier::Tier100K,
        MessagingLimitTier::Tier100K => MessagingLimitTier::Tier10K,
        MessagingLimitTier::Tier10K => MessagingLimitTier::Tier2K,
        MessagingLimitTier::Tier2K | MessagingLimitTier::Tier250 => MessagingLimitTier::Tier250,
    }
}

impl BusinessIntegrity {
    /// A business starting in `tier`, rated GREEN.
    pub fn new(tier: MessagingLimitTier) -> Self {
        Self {
            tier,
            reached: HashMap::new(),
            last_inbound: HashMap::new(),
            reports: VecDeque::new(),
            rating: QualityRating::Green,
            throttled: false,
            pruned_at: i64::MIN,
            dirty: true,
            kept_inbound: HashMap::new(),
        }
    }

    /// Whether the state changed in a way that must be kept since the last call (a new user
    /// reached or writing, a window that moved by [`INBOUND_KEEP_EVERY_MS`], a pruned entry, a
    /// report, the throttle or the tier), and clears the mark. The transport writes the state
    /// only then, instead of on every envelope.
    pub fn take_dirty(&mut self) -> bool {
        let dirty = std::mem::take(&mut self.dirty);
        if dirty {
            self.kept_inbound.clone_from(&self.last_inbound);
        }
        dirty
    }

    /// The current tier.
    pub fn tier(&self) -> MessagingLimitTier {
        self.tier
    }

    /// The current rating.
    pub fn rating(&self) -> QualityRating {
        self.rating
    }

    /// Whether sends outside a service window are refused.
    pub fn throttled(&self) -> bool {
        self.throttled
    }

    /// Whether a send to `user` would be refused now: the throttle is on and `user` is neither
    /// in a service window nor already reached (read-only; the transport decides on send).
    pub fn refuses(&self, user: &str) -> bool {
        self.throttled && !self.last_inbound.contains_key(user) && !self.reached.contains_key(user)
    }

    /// Unique users reached outside a service window in the moving 24 hours.
    pub fn unique_users(&self) -> u64 {
        self.reached.len() as u64
    }

    /// A consumer wrote to the business (opening a service window).
    pub fn on_inbound(&mut self, user: &str, now: Timestamp) {
        self.last_inbound.insert(user.to_owned(), now.millis());
        let kept = self.kept_inbound.get(user);
        if kept.is_none_or(|t| now.millis() - t >= INBOUND_KEEP_EVERY_MS) {
            self.dirty = true;
        }
    }

    /// Drops what left the moving windows (at most every [`PRUNE_EVERY_MS`]) and lifts the
    /// throttle once the business is under its tier again.
    fn prune(&mut self, now: Timestamp, events: &mut Vec<IntegrityEvent>) {
        if now.millis().saturating_sub(self.pruned_at) < PRUNE_EVERY_MS {
            return;
        }
        self.pruned_at = now.millis();
        let cutoff = now.millis() - WINDOW_MS;
        let before = self.reached.len() + self.last_inbound.len();
        self.reached.retain(|_, t| *t > cutoff);
        self.last_inbound.retain(|_, t| *t > cutoff);
        if self.reached.len() + self.last_inbound.len() != before {
            self.dirty = true;
        }
        if self.throttled && self.tier.limit().is_none_or(|l| self.unique_users() < l) {
            self.throttled = false;
            self.dirty = true;
            events.push(IntegrityEvent::ThrottleLifted { at: now });
        }
    }

    /// The business sends to `user`: allowed, or throttled (131048) when it would reach more
    /// unique users outside a service window than its tier allows.
    pub fn on_outbound(
        &mut self,
        user: &str,
        now: Timestamp,
    ) -> (Result<(), Throttled>, Vec<IntegrityEvent>) {
        let mut events = Vec::new();
        self.prune(now, &mut events);
        if self.last_inbound.contains_key(user) || self.reached.contains_key(user) {
            return (Ok(()), events);
        }
        if self.throttled {
            return (Err(Throttled), events);
        }
        if let Some(limit) = self.tier.limit() {
            if self.unique_users() + 1 > limit {
                self.throttled = true;
                self.dirty = true;
                events.push(IntegrityEvent::MessagingLimitReached {
                    tier: self.tier,
                    unique_users: self.unique_users() + 1,
                    at: now,
                });
                events.push(IntegrityEvent::ThrottleApplied { at: now });
                return (Err(Throttled), events);
            }
        }
        self.reached.insert(user.to_owned(), now.millis());
        self.dirty = true;
        (Ok(()), events)
    }

    /// A consumer reported or blocked the business.
    pub fn on_report(&mut self, report: Report, now: Timestamp) -> Vec<IntegrityEvent> {
        self.dirty = true;
        let mut events = vec![match report {
            Report::Spam => IntegrityEvent::SpamReported { at: now },
            Report::Block => IntegrityEvent::BusinessBlocked { at: now },
        }];
        self.reports.push_back(now.millis());
        while self
            .reports
            .front()
            .is_some_and(|t| *t <= now.millis() - REPORT_WINDOW_MS)
        {
            self.reports.pop_front();
        }
        let rating = match self.reports.len() {
            n if n >= RED_REPORTS => QualityRating::Red,
            n if n >= YELLOW_REPORTS => QualityRating::Yellow,
            _ => QualityRating::Green,
        };
        if rating != self.rating {
            events.push(IntegrityEvent::QualityRatingChanged {
                from: self.rating,
                to: rating,
                at: now,
            });
            if rating == QualityRating::Red && self.tier != MessagingLimitTier::Tier250 {
                self.tier = lower(self.tier);
                events.push(IntegrityEvent::MessagingTierLowered {
                    to: self.tier,
                    at: now,
                });
            }
            self.rating = rating;
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn the_throttle_falls_on_the_user_past_the_tier_and_lifts_when_the_window_moves() {
        let mut b = BusinessIntegrity::new(MessagingLimitTier::Tier250);
        for i in 0..250 {
            assert_eq!(b.on_outbound(&format!("u{i}"), t(1_000)).0, Ok(()));
        }
        assert_eq!(
            b.on_outbound("u0", t(2_000)).0,
            Ok(()),
            "a user already reached counts once"
        );
        let (r, events) = b.on_outbound("u250", t(3_000));
        assert_eq!(r, Err(Throttled));
        assert!(matches!(
            events[0],
            IntegrityEvent::MessagingLimitReached {
                unique_users: 251,
                ..
            }
        ));
        assert!(b.throttled());
        // Inside a service window the business may always answer.
        b.on_inbound("fan", t(3_500));
        assert_eq!(b.on_outbound("fan", t(4_000)).0, Ok(()));
        let (r, events) = b.on_outbound("u251", t(1_000 + WINDOW_MS + 1));
        assert_eq!(r, Ok(()));
        assert_eq!(
            events,
            vec![IntegrityEvent::ThrottleLifted {
                at: t(1_000 + WINDOW_MS + 1)
            }]
        );
    }

    #[test]
    fn reports_move_the_rating_and_red_lowers_the_tier() {
        let mut b = BusinessIntegrity::new(MessagingLimitTier::Tier2K);
        let mut changes = Vec::new();
        for i in 0..RED_REPORTS as i64 {
            let report = if i % 2 == 0 {
                Report::Spam
            } else {
                Report::Block
            };
            for e in b.on_report(report, t(i)) {
                if let IntegrityEvent::QualityRatingChanged { to, .. } = e {
                    changes.push(to);
                }
            }
        }
        assert_eq!(changes, vec![QualityRating::Yellow, QualityRating::Red]);
        assert_eq!(b.tier(), MessagingLimitTier::Tier250);
        // A week later the old reports no longer count.
        let events = b.on_report(Report::Spam, t(REPORT_WINDOW_MS + 10));
        assert!(events.contains(&IntegrityEvent::QualityRatingChanged {
            from: QualityRating::Red,
            to: QualityRating::Green,
            at: t(REPORT_WINDOW_MS + 10)
        }));
    }

    #[test]
    fn only_changes_a_reader_needs_are_kept() {
        let mut b = BusinessIntegrity::new(MessagingLimitTier::Tier250);
        assert!(b.take_dirty(), "a new state is kept");
        b.on_inbound("fan", t(1_000));
        assert!(b.take_dirty(), "a window opened");
        b.on_inbound("fan", t(2_000));
        assert!(!b.take_dirty(), "the same window, a second later");
        assert_eq!(b.on_outbound("fan", t(3_000)).0, Ok(()));
        assert!(
            !b.take_dirty(),
            "a send inside the window changes nothing kept"
        );
        b.on_inbound("fan", t(1_000 + INBOUND_KEEP_EVERY_MS));
        assert!(b.take_dirty(), "the window moved by an hour");
        assert_eq!(b.on_outbound("stranger", t(4_000)).0, Ok(()));
        assert!(b.take_dirty(), "a user reached outside a window");
        b.on_report(Report::Spam, t(5_000));
        assert!(b.take_dirty(), "a report");
    }
}
