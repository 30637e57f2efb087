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
    /// Holds ended since the last account, per region: count and longest (ms).
    ended: BTreeMap<Region, (u64, i64)>,
    /// When the last account was taken.
    since: Timestamp,
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

    /// The account since the last one, per region, and a new period from `now`.
    fn take(&self, now: Timestamp) -> (Timestamp, Vec<TransitEvent>) {
        let mut state = self.lock();
        let from = std::mem::replace(&mut state.since, now);
        let mut regions = std::mem::take(&mut state.ended)
            .into_iter()
            .map(|(region, (held, longest))| (region, (held, longest, 0u64)))
            .collect::<BTreeMap<_, _>>();
        for (region, start) in state.live.values() {
            let age = now.millis() - start.millis();
            let entry = regions.entry(*region).or_default();
            entry.1 = entry.1.max(age);
            if age > DATA_IN_USE_MAX_MS {
                entry.2 += 1;
            }
        }
        let events = regions
            .into_iter()
            .map(
                |(region, (held, longest_ms, over_limit))| TransitEvent::DataInUseAccounted {
                    region,
                    from,
                    to: now,
                    held,
                    longest_ms,
                    over_limit,
                },
            )
            .collect();
        (from, events)
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some((transit, id)) = self.transit.take() {
            let now = transit.clock.now();
            let mut state = transit.lock();
            if let Some((region, start)) = state.live.remove(&id) {
                let entry = state.ended.entry(region).or_default();
                entry.0 += 1;
                entry.1 = entry.1.max(now.millis() - start.millis());
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
        let (_, events) = self.transit.take(now);
        let principal = Principal::processor("retention");
        for event in &events {
            let TransitEvent::DataInUseAccounted { region, .. } = event;
            let meta = CommandMeta::new(sealpost_domain::DEPLOYMENT, Region::Eu, &principal);
            let ctx = sealpost_adapters::ledger::EventContext {
                business_id: sealpost_domain::DEPLOYMENT.to_owned(),
                region: Region::Eu,
                epoch: None,
            };
            let stream = StreamId::deployment(TRANSIT_STREAM_TYPE, region.code());
            self.store()
                .append_at_end(&stream, &ctx, vec![PlainEvent::of(event, meta.to_map())?])
                .await?;
            tracing::info!(
                region = region.code(),
                "data in use outside its region accounted"
            );
        }
        Ok(events.len())
    }
}

impl Evidence<'_> {
    /// The accounts of data in use outside its region, per Local Storage region with a store.
    pub(super) async fn data_in_use(&self) -> Result<Vec<DataInUseRow>, AppError> {
        let mut rows = Vec::new();
        for region in self.stores.regions.regions().await? {
            let stream = StreamId::deployment(TRANSIT_STREAM_TYPE, region.code());
            let mut totals = TransitTotals::default();
            for e in self.store.read_stream(&stream, 0).await? {
                totals.apply(&e.decode::<TransitEvent>()?);
            }
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
