//! Projections persisted with their checkpoint: a fold over the log whose state is kept as a
//! sealed snapshot in the event store's database (the aggregate snapshot table, stream
//! `projection/<name>`), together with the log position it was folded up to. Loading one reads
//! the snapshot and folds only what came after it, so start-up does not grow with the log.
//! Rebuilding one from position 0 gives the same state (folds are idempotent) and is always
//! possible: `sealpost projections rebuild NAME`.

use crate::ledger::{EventContext, EventStore, LedgerError, OpenedEvent};
use crate::store::{RowHeader, StoreError, StreamId};
use sealpost_domain::Region;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The stream type of projection snapshots.
pub const PROJECTION_STREAM_TYPE: &str = "projection";
/// The owner projection snapshots are sealed for: the operator, no business.
const OWNER: &str = sealpost_domain::DEPLOYMENT;
/// Rows read at a time while catching up.
const PAGE: u32 = 1_000;

/// A fold over the log.
pub trait Fold: Default + Serialize + DeserializeOwned + Send {
    /// Its name (the snapshot's stream id; what `projections rebuild` takes).
    const NAME: &'static str;
    /// The shape of its state: a snapshot of another version is ignored and the fold rebuilt.
    const VERSION: u64;
    /// Whether it needs the event in this row (only those are opened).
    fn wants(header: &RowHeader) -> bool;
    /// Folds one event it wanted. Must be idempotent with respect to the state before it.
    fn apply(&mut self, e: &OpenedEvent) -> Result<(), StoreError>;
}

/// A fold with the position it has reached and the position last saved.
#[derive(Debug)]
pub struct Persisted<F> {
    /// The state.
    pub state: F,
    position: u64,
    saved: u64,
}

/// The first byte of a projection snapshot in the binary encoding (postcard). A snapshot
/// without it (the JSON of earlier versions) is not loaded: the fold runs again.
const BINARY: u8 = b'P';

/// Loads the persisted state of projection `name` and the log position it reached, if a
/// snapshot of shape `version` exists (another shape, or one that does not decode, is `None`:
/// the caller folds again).
pub async fn load_state<T: DeserializeOwned>(
    store: &EventStore,
    name: &str,
    version: u64,
) -> Result<Option<(T, u64)>, LedgerError> {
    let stream = StreamId::new(OWNER, PROJECTION_STREAM_TYPE, name);
    Ok(match store.load_snapshot_bytes(&stream).await? {
        Some((plain, position, v)) if v == version => match plain.split_first() {
            Some((&BINARY, body)) => postcard::from_bytes(body)
                .ok()
                .map(|state| (state, position)),
            _ => None,
        },
        _ => None,
    })
}

/// Persists the state of projection `name` at log position `position`, sealed under the
/// operator's ledger key. The state is encoded in a compact binary form (postcard): a large
/// fold (the evidence view) then loads in a fraction of the time its JSON took.
pub async fn save_state<T: Serialize>(
    store: &EventStore,
    name: &str,
    version: u64,
    state: &T,
    position: u64,
) -> Result<(), LedgerError> {
    let plain = postcard::to_extend(state, vec![BINARY])
        .map_err(|_| StoreError::Invalid("projection state does not serialize"))?;
    let ctx = EventContext {
        business_id: OWNER.to_owned(),
        region: Region::Eu,
        epoch: None,
    };
    let stream = StreamId::new(OWNER, PROJECTION_STREAM_TYPE, name);
    store
        .save_snapshot_bytes(&stream, &ctx, &plain, position, version)
        .await
}

impl<F: Fold> Persisted<F> {
    /// The fold as last saved (or empty), caught up with the log.
    pub async fn load(store: &EventStore) -> Result<Self, LedgerError> {
        let mut p = match load_state(store, F::NAME, F::VERSION).await? {
            Some((state, position)) => Self {
                state,
                position,
                saved: position,
            },
            None => Self::empty(),
        };
        p.catch_up(store, &mut |_, _| {}).await?;
        Ok(p)
    }

    /// An empty fold at position 0.
    pub fn empty() -> Self {
        Self {
            state: F::default(),
            position: 0,
            saved: 0,
        }
    }

    /// The last position folded in.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Folds everything after its position; `progress(position, head)` after each page.
    pub async fn catch_up(
        &mut self,
        store: &EventStore,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, LedgerError> {
        let mut folded = 0;
        let head = store.log().head().await?;
        loop {
            let rows = store.log().read_all(self.position, PAGE).await?;
            if rows.is_empty() {
                return Ok(folded);
            }
            let last = rows.last().map_or(self.position, |r| r.position);
            let wanted = rows.into_iter().filter(|r| F::wants(&r.header)).collect();
            // A page opened at once: a Local Storage region's bodies in one read per region.
            for e in store.open_rows(wanted).await? {
                self.state.apply(&e)?;
                folded += 1;
            }
            self.position = last;
            progress(self.position, head.max(self.position));
        }
    }

    /// Saves the state with its position (nothing if nothing changed since the last save).
    pub async fn save(&mut self, store: &EventStore) -> Result<(), LedgerError> {
        if self.position == self.saved {
            return Ok(());
        }
        save_state(store, F::NAME, F::VERSION, &self.state, self.position).await?;
        self.saved = self.position;
        Ok(())
    }

    /// Loads, catches up and saves: what a node does at start, periodically and at stop, so
    /// that the next start folds only what came after.
    pub async fn refresh(store: &EventStore) -> Result<Self, LedgerError> {
        let mut p = Self::load(store).await?;
        p.save(store).await?;
        Ok(p)
    }

    /// Folds the whole log again from position 0 and saves it.
    pub async fn rebuild(
        store: &EventStore,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Self, LedgerError> {
        let mut p = Self::empty();
        p.catch_up(store, progress).await?;
        // Saved even when the log is empty, so a later load does not fold again.
        p.saved = u64::MAX;
        p.save(store).await?;
        Ok(p)
    }
}
