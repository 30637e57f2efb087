//! Catch-up subscriptions: page through history from a position or a durable checkpoint, then
//! tail new commits.

use super::{EventStore, LedgerError, OpenedEvent};
use crate::store::RowHeader;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

impl EventStore {
    /// A subscription from position `after`, with a live tail.
    pub fn subscribe(self: &Arc<Self>, after: u64) -> Subscription {
        Subscription {
            store: self.clone(),
            position: after,
            head: self.head.clone(),
            page: 256,
            types: None,
            keep: Keep(Arc::new(|_| true)),
        }
    }

    /// A subscription resuming from the durable checkpoint `name`.
    pub async fn subscribe_durable(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Subscription, LedgerError> {
        let after = self.log.load_checkpoint(name).await?;
        Ok(self.subscribe(after))
    }
}

/// A catch-up subscription: pages through history, then tails new commits (woken by local
/// commits, and polling for other processes' commits).
#[derive(Debug)]
pub struct Subscription {
    store: Arc<EventStore>,
    position: u64,
    head: watch::Receiver<u64>,
    page: u32,
    /// The event types read at all, when the subscriber named them: the database hands out
    /// only those rows.
    types: Option<&'static [&'static str]>,
    /// Which rows the subscriber wants, judged by their plaintext header: the others are passed
    /// over without being opened.
    keep: Keep,
}

/// A subscriber's judgement of a row header.
#[derive(Clone)]
struct Keep(Arc<dyn Fn(&RowHeader) -> bool + Send + Sync>);

impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keep")
    }
}

/// How often a tailing subscription looks for commits made by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

impl Subscription {
    /// Hands out only the rows `keep` accepts; the rest are skipped unopened (the position
    /// still moves past them).
    pub fn only(mut self, keep: impl Fn(&RowHeader) -> bool + Send + Sync + 'static) -> Self {
        self.keep = Keep(Arc::new(keep));
        self
    }

    /// Reads only events of these types (the database leaves the others where they are); the
    /// position still moves past the rows passed over, up to the head of the log.
    pub fn of_types(mut self, types: &'static [&'static str]) -> Self {
        self.types = Some(types);
        self
    }

    /// The position of the last event handed out.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next events, waiting until there is at least one.
    pub async fn next_batch(&mut self) -> Result<Vec<OpenedEvent>, LedgerError> {
        loop {
            let batch = self.try_next_batch().await?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            tokio::select! {
                _ = self.head.changed() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// The next events, or none if caught up.
    pub async fn try_next_batch(&mut self) -> Result<Vec<OpenedEvent>, LedgerError> {
        loop {
            let (rows, passed) = match self.types {
                None => (
                    self.store.log.read_all(self.position, self.page).await?,
                    None,
                ),
                Some(types) => {
                    // Every position up to the head read first is committed (positions become
                    // visible in commit order), so a short page means none of these types is
                    // left up to it: the position moves there, and the next read starts past
                    // the rows of other types instead of scanning them again.
                    let head = self.store.log.head().await?;
                    if head <= self.position {
                        // Nothing committed past the position: no rows to ask for.
                        return Ok(Vec::new());
                    }
                    let rows = self
                        .store
                        .log
                        .read_types(self.position, types, self.page)
                        .await?;
                    let short = rows.len() < self.page as usize;
                    (rows, short.then_some(head))
                }
            };
            // Past the last row read, or the head when every row up to it was read.
            let reached = rows.last().map(|r| r.position).max(passed);
            let Some(last) = reached.filter(|&p| p > self.position) else {
                return Ok(Vec::new());
            };
            self.position = last;
            let kept: Vec<_> = rows
                .into_iter()
                .filter(|r| (self.keep.0)(&r.header))
                .collect();
            if !kept.is_empty() {
                return self.store.open_rows(kept).await;
            }
        }
    }

    /// Moves back (or forward) to just after `position`: a consumer that could not finish an
    /// event it was handed resumes there instead of skipping the rest of its batch.
    pub fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// Saves the current position as the durable checkpoint `name`.
    pub async fn commit(&self, name: &str) -> Result<(), LedgerError> {
        self.store
            .log
            .save_checkpoint(name, self.position, None)
            .await?;
        Ok(())
    }
}
