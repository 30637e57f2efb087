//! The home node's holds on Local Storage regions' data (issue 14): every place that has a
//! Local Storage number's content or numbers in memory (the pipeline's hand-over and
//! decryption, a webhook attempt, a media transfer) holds an [`InUse`] while it does; the
//! retention duty takes the account once an hour ([`Sealpost::account_transit`]) and records
//! it per region (`DataInUseAccounted`), which the DPO's retention report shows.

use super::{AppError, Evidence, Sealpost};
use sealpost_adapters::exec::CommandMeta;
use sealpost_adapters::ledger::PlainEvent;
use sealpost_adapters::store::StreamId;
use sealpost_domain::ports::Clock;
use sealpost_domain::transit::{
    TransitEvent, TransitTotals, DATA_IN_USE_MAX_MS, TRANSIT_STREAM_TYPE,
};
use sealpost_domain::{Principal, Region, Timestamp};
use sealpost_projections::report::DataInUseRow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How often the account is taken: an event per region and hour.
pub const ACCOUNT_EVERY_MS: i64 = 60 * 60_000;

/// The holds of this process.
#[derive(Debug)]
pub struct Transit {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next: u64,
    /// Holds running now: region and start.
    live: BTreeMap<u64, (Region, Timestamp)>,
    /// Holds ended since the last account, per region.
    ended: BTreeMap<Region, Ended>,
    /// When the last account was taken.
    since: Timestamp,
}

/// Holds of one region that ended in the current period.
#[derive(Debug, Default, Clone, Copy)]
struct Ended {
    held: u64,
    longest_ms: i64,
    /// Those that lasted longer than the limit, counted once, when they ended (a hold that
    /// crossed the limit in an earlier period was counted then, running).
    over_limit: u64,
}

/// What an account took out of the current period.
#[derive(Debug)]
struct Taken {
    from: Timestamp,
    ended: BTreeMap<Region, Ended>,
}

/// One hold: the data of its region is in this node's memory until it is dropped.
#[derive(Debug)]
#[must_use = "a hold ends when it is dropped"]
pub struct InUse {
    transit: Option<(Arc<Transit>, u64)>,
}

impl Transit {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        let since = clock.now();
        Arc::new(Self {
            clock,
            state: Mutex::new(State {
                next: 0,
                live: BTreeMap::new(),
                ended: BTreeMap::new(),
                since,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A hold on `region`'s data (nothing is counted for a default region, whose data is home).
    pub fn hold(self: &Arc<Self>, region: Region) -> InUse {
        if !region.is_local_storage() {
            return InUse { transit: None };
        }
        let now = self.clock.now();
        let mut state = self.lock();
        state.next += 1;
        let id = state.next;
        state.live.insert(id, (region, now));
        InUse {
            transit: Some((self.clone(), id)),
        }
    }

    /// The account since the last one, per region: holds that ended (each counted over the
    /// limit if it lasted longer) and holds still running (over the limit if they crossed it
    /// in this period). The ended holds are taken out: [`Transit::settle`] starts the next
    /// period once the account is recorded, [`Transit::restore`] puts them back if it was not.
    fn account(&self, now: Timestamp) -> (Vec<TransitEvent>, Taken) {
        let mut state = self.lock();
        // The next period starts now, under the same lock: a hold that ends from here on is
        // the next period's.
        let from = std::mem::replace(&mut state.since, now);
        let ended = std::mem::take(&mut state.ended);
        let mut regions = ended.clone();
        for (region, start) in state.live.values() {
            let entry = regions.entry(*region).or_default();
            entry.longest_ms = entry.longest_ms.max(now.millis() - start.millis());
            let crossed = start.millis() + DATA_IN_USE_MAX_MS;
            if crossed > from.millis() && crossed <= now.millis() {
                entry.over_limit += 1;
            }
        }
        let events = regions
            .into_iter()
            .map(|(region, t)| TransitEvent::DataInUseAccounted {
                region,
                from,
                to: now,
                held: t.held,
                longest_ms: t.longest_ms,
                over_limit: t.over_limit,
            })
            .collect();
        (events, Taken { from, ended })
    }

    /// Puts back a period whose account was not recorded: it is accounted with the next one.
    fn restore(&self, taken: Taken) {
        let mut state = self.lock();
        state.since = state.since.min(taken.from);
        for (region, t) in taken.ended {
            let entry = state.ended.entry(region).or_default();
            entry.held += t.held;
            entry.longest_ms = entry.longest_ms.max(t.longest_ms);
            entry.over_limit += t.over_limit;
        }
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some((transit, id)) = self.transit.take() {
            let now = transit.clock.now();
            let mut state = transit.lock();
            if let Some((region, start)) = state.live.remove(&id) {
                let since = state.since;
                let age = now.millis() - start.millis();
                let entry = state.ended.entry(region).or_default();
                entry.held += 1;
                entry.longest_ms = entry.longest_ms.max(age);
                // Over the limit, and not already counted running in an earlier account.
                if age > DATA_IN_USE_MAX_MS && start.millis() + DATA_IN_USE_MAX_MS > since.millis()
                {
                    entry.over_limit += 1;
                }
            }
        }
    }
}

impl Sealpost {
    /// This process's holds on Local Storage regions' data.
    pub fn transit(&self) -> &Arc<Transit> {
        &self.transit
    }

    /// Records the account of the holds since the last one (an event per region that had any),
    /// once [`ACCOUNT_EVERY_MS`] has passed since it; returns how many regions were accounted.
    pub async fn account_transit(&self, now: Timestamp) -> Result<usize, AppError> {
        {
            let state = self.transit.lock();
            if now.millis() - state.since.millis() < ACCOUNT_EVERY_MS {
                return Ok(0);
            }
        }
        let (events, taken) = self.transit.account(now);
        if let Err(e) = self.record_transit(&events).await {
            self.transit.restore(taken);
            return Err(e);
        }
        Ok(events.len())
    }

    /// Appends the regions' accounts in one append (all or none).
    async fn record_transit(&self, events: &[TransitEvent]) -> Result<(), AppError> {
        if events.is_empty() {
            return Ok(());
        }
        let meta = CommandMeta::new(
            sealpost_domain::DEPLOYMENT,
            Region::Eu,
            &Principal::processor("retention"),
        );
        let ctx = sealpost_adapters::ledger::EventContext {
            business_id: sealpost_domain::DEPLOYMENT.to_owned(),
            region: Region::Eu,
            epoch: None,
        };
        let plain = events
            .iter()
            .map(|e| PlainEvent::of(e, meta.to_map()))
            .collect::<Result<Vec<_>, _>>()?;
        self.store()
            .append_at_end(&transit_stream(), &ctx, plain)
            .await?;
        tracing::info!(
            regions = events.len(),
            "data in use outside its region accounted"
        );
        Ok(())
    }
}

/// The stream of every account (the deployment's, one event per region and period).
fn transit_stream() -> StreamId {
    StreamId::deployment(TRANSIT_STREAM_TYPE, "regions")
}

impl Evidence<'_> {
    /// The accounts of data in use outside its region, per Local Storage region with a store.
    pub(super) async fn data_in_use(&self) -> Result<Vec<DataInUseRow>, AppError> {
        let mut by_region: BTreeMap<Region, TransitTotals> = BTreeMap::new();
        for e in self.store.read_stream(&transit_stream(), 0).await? {
            let account = e.decode::<TransitEvent>()?;
            let TransitEvent::DataInUseAccounted { region, .. } = &account;
            by_region.entry(*region).or_default().apply(&account);
        }
        let mut rows = Vec::new();
        for region in self.stores.regions.regions().await? {
            let totals = by_region.remove(&region).unwrap_or_default();
            rows.push(DataInUseRow {
                region: region.code().to_owned(),
                periods: totals.periods,
                held: totals.held,
                longest_ms: totals.longest_ms,
                over_limit: totals.over_limit,
                limit_ms: DATA_IN_USE_MAX_MS,
                from: totals.from.map(Timestamp::millis),
                to: totals.to.map(Timestamp::millis),
            });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_adapters::clock::SimClock;

    #[test]
    fn a_hold_over_the_limit_is_counted_once() {
        let clock = SimClock::starting_at(Timestamp::from_millis(0));
        let transit = Transit::new(Arc::new(clock.clone()));
        let default = transit.hold(Region::Eu);
        let short = transit.hold(Region::De);
        let long = transit.hold(Region::De);
        clock.advance_secs(60);
        drop(short);
        drop(default);
        clock.advance_secs(3_600);
        // Account 1: the short hold ended; the long one is running and crossed the limit.
        let (events, _) = transit.account(clock.now());
        let TransitEvent::DataInUseAccounted {
            region,
            held,
            longest_ms,
            over_limit,
            ..
        } = events.first().cloned().expect("DE accounted");
        assert_eq!(events.len(), 1, "nothing of EU is counted: {events:?}");
        assert_eq!((region, held, over_limit), (Region::De, 1, 1));
        assert_eq!(longest_ms, 3_660_000);
        // Account 2: the long hold ended, already counted over the limit.
        clock.advance_secs(60);
        drop(long);
        let (events, taken) = transit.account(clock.now());
        let TransitEvent::DataInUseAccounted {
            held, over_limit, ..
        } = events.first().cloned().expect("DE accounted");
        assert_eq!((held, over_limit), (1, 0));
        // Not recorded: the ended hold is counted in the next account.
        transit.restore(taken);
        let (events, _) = transit.account(clock.now());
        assert!(matches!(
            events.first(),
            Some(TransitEvent::DataInUseAccounted { held: 1, .. })
        ));
    }
}
