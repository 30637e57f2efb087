//! Rate limits of sends: token buckets on the application clock, per business number (its
//! throughput tier) and per number and recipient (the pair rate, keyed by blind index, never by
//! number). In memory and per node: with several nodes over one store, each admits its share
//! (1/n of every rate and burst, n the live nodes), so a number stays within its limit across
//! nodes when the load balancer spreads its sends (ADR 0016).

use super::ApiError;
use axum::http::StatusCode;
use sealpost_domain::aggregates::phone_number::ThroughputTier;
use std::collections::{BTreeMap, HashMap};

/// Token buckets: messages per second per business number (80, or 1,000 when upgraded) and
/// the pair rate (about one message per 6 s from a number to a user, bursts up to 45).
#[derive(Debug)]
pub struct Limits {
    standard: f64,
    high: f64,
    numbers: BTreeMap<String, (f64, i64)>,
    /// Pair buckets by phone number id and the consumer's blind index (never a number); a
    /// bucket that has refilled is forgotten, so memory follows the active pairs.
    pairs: HashMap<(String, Pair), (f64, i64)>,
    last_pruned_ms: i64,
    /// This node's share of every limit: 1 / live nodes.
    share: f64,
}

/// A consumer as the pair limit knows it: the blind index of their number (an HMAC under the
/// business's index key).
pub type Pair = [u8; 32];

/// How often the pair buckets are pruned, at most.
const PRUNE_EVERY_MS: i64 = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Self::new(THROUGHPUT_STANDARD, THROUGHPUT_HIGH)
    }
}

/// Standard throughput of a business number, messages per second.
pub const THROUGHPUT_STANDARD: f64 = 80.0;
/// Upgraded throughput.
pub const THROUGHPUT_HIGH: f64 = 1_000.0;
/// Pair rate: one message per 6 seconds…
pub const PAIR_RATE_PER_S: f64 = 1.0 / 6.0;
/// …with bursts of up to 45.
pub const PAIR_BURST: f64 = 45.0;

fn take(bucket: &mut (f64, i64), rate: f64, burst: f64, now_ms: i64) -> bool {
    let elapsed = (now_ms - bucket.1).max(0) as f64 / 1_000.0;
    bucket.0 = (bucket.0 + elapsed * rate).min(burst);
    bucket.1 = now_ms;
    if bucket.0 >= 1.0 {
        bucket.0 -= 1.0;
        true
    } else {
        false
    }
}

impl Limits {
    /// Limits with these throughputs (messages per second: standard, upgraded).
    pub fn new(standard: f64, high: f64) -> Self {
        Self {
            standard,
            high,
            numbers: BTreeMap::new(),
            pairs: HashMap::new(),
            last_pruned_ms: 0,
            share: 1.0,
        }
    }

    /// `nodes` serve the store now: this one admits 1/`nodes` of each limit.
    pub fn set_nodes(&mut self, nodes: usize) {
        self.share = 1.0 / nodes.max(1) as f64;
    }

    /// Gives back what [`Limits::admit`] took for a message that was then refused (outside the
    /// window, an erased consumer …): only messages accepted for sending count.
    pub fn refund(&mut self, number: &str, to: &Pair) {
        let (standard, high) = (self.standard, self.high);
        if let Some(n) = self.numbers.get_mut(number) {
            n.0 = (n.0 + 1.0).min(standard.max(high));
        }
        if let Some(p) = self.pairs.get_mut(&(number.to_owned(), *to)) {
            p.0 = (p.0 + 1.0).min(PAIR_BURST);
        }
    }

    /// Forgets pair buckets that have refilled to their burst: they would start full anyway.
    fn prune(&mut self, now_ms: i64) {
        if now_ms - self.last_pruned_ms < PRUNE_EVERY_MS {
            return;
        }
        self.last_pruned_ms = now_ms;
        let refill_ms = (PAIR_BURST / PAIR_RATE_PER_S * 1_000.0) as i64;
        self.pairs.retain(|_, (tokens, at)| {
            let missing_ms = ((PAIR_BURST - *tokens) / PAIR_RATE_PER_S * 1_000.0) as i64;
            now_ms - *at < missing_ms.min(refill_ms)
        });
    }

    /// Admits one message or says which limit it hit.
    pub fn admit(
        &mut self,
        number: &str,
        to: &Pair,
        tier: Option<ThroughputTier>,
        now: sealpost_domain::Timestamp,
    ) -> Result<(), ApiError> {
        self.prune(now.millis());
        let rate = self.share
            * match tier {
                Some(ThroughputTier::High) => self.high,
                _ => self.standard,
            };
        // Never below one message of burst, so a node admits something.
        let (pair_rate, pair_burst) = (
            PAIR_RATE_PER_S * self.share,
            (PAIR_BURST * self.share).max(1.0),
        );
        let now_ms = now.millis();
        let n = self
            .numbers
            .entry(number.to_owned())
            .or_insert((rate.max(1.0), now_ms));
        if !take(n, rate, rate.max(1.0), now_ms) {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, 130_429, "Message failed to send because there were too many messages sent from this phone number in a short period of time."));
        }
        let p = self
            .pairs
            .entry((number.to_owned(), *to))
            .or_insert((pair_burst, now_ms));
        if !take(p, pair_rate, pair_burst, now_ms) {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, 131_056, "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time."));
        }
        Ok(())
    }
}

/// How many sends may be in progress at once in one process. One more is answered at once
/// with 131016 (503, retryable) instead of queueing: under overload the answer stays fast and
/// the memory bounded (ADR 0012).
pub const SENDS_IN_FLIGHT: usize = 128;

/// A place among the [`SENDS_IN_FLIGHT`] sends in progress, held for the request's life.
#[derive(Debug)]
pub(crate) struct Admitted {
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl axum::extract::FromRequestParts<super::Shared> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(
        _: &mut axum::http::request::Parts,
        s: &super::Shared,
    ) -> Result<Self, ApiError> {
        s.sends
            .clone()
            .try_acquire_owned()
            .map(|place| Admitted { _place: place })
            .map_err(|_| ApiError::unavailable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Pair = [7; 32];

    #[test]
    fn pair_buckets_are_forgotten_once_refilled() {
        let mut limits = Limits::new(1_000.0, 1_000.0);
        let t = sealpost_domain::Timestamp::from_millis;
        for i in 0..100u8 {
            assert!(limits.admit("n", &[i; 32], None, t(1_000)).is_ok());
        }
        assert_eq!(limits.pairs.len(), 100);
        // One token each was taken: refilled after 6 s; pruned at the next admit after that.
        assert!(limits.admit("n", &[200; 32], None, t(20_000)).is_ok());
        assert_eq!(limits.pairs.len(), 1, "only the active pair is held");
    }

    #[test]
    fn with_several_nodes_each_admits_its_share() {
        let now = sealpost_domain::Timestamp::from_millis(1_000);
        let burst = |nodes: usize| {
            let mut limits = Limits::new(80.0, 1_000.0);
            limits.set_nodes(nodes);
            (0..=255u8)
                .take_while(|i| limits.admit("n", &[*i; 32], None, now).is_ok())
                .count()
        };
        assert_eq!(burst(1), 80);
        assert_eq!(burst(2), 40, "two nodes: 40 each, 80 together");
        assert_eq!(
            burst(3),
            26,
            "three nodes: 26 each, 78 together, never over 80"
        );
        let mut limits = Limits::default();
        limits.set_nodes(3);
        let pair = (0..100)
            .take_while(|_| limits.admit("n", &U, None, now).is_ok())
            .count();
        assert_eq!(pair, 15, "the pair burst of 45 shared by three nodes");
    }

    #[test]
    fn a_refused_message_gives_its_tokens_back() {
        let mut limits = Limits::new(3.0, 10.0);
        let now = sealpost_domain::Timestamp::from_millis(1_000);
        for _ in 0..3 {
            assert!(limits.admit("n", &U, None, now).is_ok());
        }
        assert_eq!(
            limits.admit("n", &U, None, now).map_err(|e| e.code),
            Err(130_429)
        );
        limits.refund("n", &U);
        assert!(limits.admit("n", &U, None, now).is_ok(), "refunded");
        assert!(limits.admit("n", &U, None, now).is_err(), "only one");
    }
}
