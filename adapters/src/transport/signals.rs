//! The integrity signals of a transport that runs as a process of its own (`sealpost
//! transport`): kept per business number until the node serving the number takes them into
//! its store and acknowledges them (issue 13), so the quality rating, the tier and the throttle
//! events are the same whichever node answers. A transport in the node's process hands its
//! signals to its sink at once instead.
//!
//! Kept in memory: a transport restarted before a node took them loses them (the simulated
//! transport's own state, the ratings it decides on, is what its world keeps).

use sealpost_domain::integrity::IntegrityEvent;
use sealpost_domain::ports::transport::{IntegritySink, SignalBatch};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// At most this many batches are kept per business number (the oldest are dropped first): a
/// number nobody serves does not grow the transport without bound.
pub const KEPT_PER_NUMBER: usize = 10_000;

/// Integrity signals waiting for the node that serves each business number.
#[derive(Debug, Default)]
pub struct SignalQueue {
    inner: Mutex<Queues>,
}

#[derive(Debug, Default)]
struct Queues {
    next: u64,
    by_number: BTreeMap<String, VecDeque<SignalBatch>>,
}

impl SignalQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Up to `max` batches for `handle` not yet acknowledged, oldest first; they stay until
    /// [`SignalQueue::ack`].
    pub fn take(&self, handle: &str, max: usize) -> Vec<SignalBatch> {
        self.lock()
            .by_number
            .get(handle)
            .map(|q| q.iter().take(max).cloned().collect())
            .unwrap_or_default()
    }

    /// Drops the batches for `handle` up to and including `through`.
    pub fn ack(&self, handle: &str, through: u64) {
        if let Some(q) = self.lock().by_number.get_mut(handle) {
            while q.front().is_some_and(|b| b.id <= through) {
                q.pop_front();
            }
        }
    }
}

#[async_trait::async_trait]
impl IntegritySink for SignalQueue {
    async fn record(&self, business: &str, events: Vec<IntegrityEvent>) {
        let mut queues = self.lock();
        queues.next += 1;
        let id = queues.next;
        let q = queues.by_number.entry(business.to_owned()).or_default();
        q.push_back(SignalBatch { id, events });
        if q.len() > KEPT_PER_NUMBER {
            q.pop_front();
            tracing::warn!("integrity signals dropped: no node takes them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_domain::time::Timestamp;

    fn spam(ms: i64) -> Vec<IntegrityEvent> {
        vec![IntegrityEvent::SpamReported {
            at: Timestamp::from_millis(ms),
        }]
    }

    #[tokio::test]
    async fn signals_stay_until_acknowledged_per_number() {
        let q = SignalQueue::default();
        q.record("a", spam(1)).await;
        q.record("b", spam(2)).await;
        q.record("a", spam(3)).await;
        let taken = q.take("a", 10);
        assert_eq!(
            taken.iter().map(|b| b.events.clone()).collect::<Vec<_>>(),
            [spam(1), spam(3)]
        );
        assert_eq!(q.take("a", 10), taken, "taking does not remove");
        assert_eq!(q.take("a", 1).len(), 1);
        q.ack("a", taken[0].id);
        assert_eq!(q.take("a", 10), taken[1..]);
        q.ack("a", taken[1].id);
        assert!(q.take("a", 10).is_empty());
        assert_eq!(q.take("b", 10).len(), 1, "another number's are kept");
    }
}
