//! The clock port's implementations: the system clock in production, a simulated clock for
//! tests and the demo, so that a test can cross 30 days in milliseconds. The port itself is
//! `sealpost_domain::ports::Clock` (re-exported here).

pub use sealpost_domain::ports::Clock;
use sealpost_domain::Timestamp;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct SimClock(Arc<AtomicI64>);

impl SimClock {
    /// A simulated clock starting at `start`.
    pub fn starting_at(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.millis())))
    }

    /// Moves time forward by `ms` milliseconds (never backwards).
    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// Moves time forward by whole seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_millis(secs.saturating_mul(1_000));
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_moves_only_forward_and_is_shared() {
        let c = SimClock::starting_at(Timestamp::from_millis(1_000));
        let shared = c.clone();
        c.advance_secs(30 * 24 * 3600);
        assert_eq!(shared.now().millis(), 1_000 + 30 * 86_400_000);
        c.advance_millis(-5);
        assert_eq!(shared.now().millis(), 1_000 + 30 * 86_400_000);
    }

    #[test]
    fn system_clock_is_after_2025() {
        assert!(SystemClock.now().millis() > 1_735_689_600_000);
    }
}
