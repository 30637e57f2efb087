//! Writes to the world store: batches sealed by their callers, committed together by one
//! writer task in the order they were submitted (group commit).

use super::{Kind, WorldError, WorldStore};
use crate::crypto;
use serde::Serialize;
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// Kinds of record a phone keeps one of per message, in the order it kept them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A message the phone decrypted and showed.
    Shown,
    /// A message the phone sent (kept so that it can send it again on request).
    Sent,
    /// One of the phone's own messages the business marked read.
    ReadByBusiness,
}

impl Item {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Item::Shown => "shown",
            Item::Sent => "sent",
            Item::ReadByBusiness => "read",
        }
    }
}

/// One write, sealed by the caller (so sealing runs on the callers' threads, not the writer's).
#[derive(Debug)]
enum Write {
    Put {
        kind: Kind,
        k: Vec<u8>,
        sealed: Vec<u8>,
    },
    Enqueue {
        row: u64,
        sealed: Vec<u8>,
    },
    Dequeue(Vec<u64>),
    /// Kept once: a second write of the same item changes nothing.
    Item {
        k: Vec<u8>,
        item: Item,
        id: Vec<u8>,
        sealed: Vec<u8>,
    },
}

/// Writes that commit together, and where to say how they went.
pub(super) struct Job {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<Vec<bool>, WorldError>>,
}

/// Jobs the writer packs into one transaction at most.
const JOBS_PER_COMMIT: usize = 256;

/// Writes that commit together: built in memory (sealed as they are added), handed to the
/// store's writer in the order [`Batch::submit`] is called, committed in one transaction with
/// whatever else waits.
#[must_use = "a batch is written only when submitted"]
#[derive(Debug)]
pub struct Batch<'a> {
    store: &'a WorldStore,
    writes: Vec<Write>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(store: &'a WorldStore) -> Self {
        Self {
            store,
            writes: Vec::new(),
        }
    }

    /// Writes (replaces) the record of `kind` for `handle`.
    pub fn put<T: Serialize>(
        &mut self,
        kind: Kind,
        handle: &str,
        value: &T,
    ) -> Result<(), WorldError> {
        let k = self.store.blind(handle);
        let sealed = self
            .store
            .seal(&crypto::aad(&[kind.as_str().as_bytes(), &k]), value)?;
        self.writes.push(Write::Put { kind, k, sealed });
        Ok(())
    }

    /// Keeps an accepted envelope (or anything serializable) as row `row` of the inbox table.
    pub fn enqueue<T: Serialize>(&mut self, row: u64, value: &T) -> Result<(), WorldError> {
        let sealed = self.store.seal(&row.to_be_bytes(), value)?;
        self.writes.push(Write::Enqueue { row, sealed });
        Ok(())
    }

    /// Forgets acknowledged inbox rows.
    pub fn dequeue(&mut self, rows: &[u64]) {
        if !rows.is_empty() {
            self.writes.push(Write::Dequeue(rows.to_vec()));
        }
    }

    /// Keeps `value` as `handle`'s `item` of id `id`, unless one is kept already.
    pub fn remember<T: Serialize>(
        &mut self,
        handle: &str,
        item: Item,
        id: &str,
        value: &T,
    ) -> Result<(), WorldError> {
        let (k, id) = (self.store.blind(handle), self.store.blind(id));
        let sealed = self.store.seal(&item_aad(item, &k, &id), value)?;
        self.writes.push(Write::Item {
            k,
            item,
            id,
            sealed,
        });
        Ok(())
    }

    /// Hands the writes to the writer, after every batch submitted before. The answer says, per
    /// write in the order added, whether it changed a row (a remembered item: whether it is new).
    pub fn submit(self) -> Pending {
        let (done, rx) = oneshot::channel();
        if !self.writes.is_empty() {
            let job = Job {
                writes: self.writes,
                done,
            };
            if let Err(mpsc::error::SendError(job)) = self.store.writer.send(job) {
                let _ = job
                    .done
                    .send(Err(WorldError::Io("the world's writer has stopped".into())));
            }
        } else {
            let _ = done.send(Ok(Vec::new()));
        }
        Pending(rx)
    }
}

/// A submitted batch: [`Pending::done`] waits for its commit.
#[must_use = "a submitted batch counts once it is committed"]
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<Vec<bool>, WorldError>>);

impl Pending {
    /// Waits until the batch is committed; per write, whether it changed a row.
    pub async fn done(self) -> Result<Vec<bool>, WorldError> {
        self.0
            .await
            .unwrap_or_else(|_| Err(WorldError::Io("the world's writer has stopped".into())))
    }
}

pub(super) fn item_aad(item: Item, k: &[u8], id: &[u8]) -> Vec<u8> {
    crypto::aad(&[b"item", item.as_str().as_bytes(), k, id])
}

async fn apply(conn: &mut SqliteConnection, writes: &[Write]) -> Result<Vec<bool>, sqlx::Error> {
    let mut changed = Vec::with_capacity(writes.len());
    for w in writes {
        let rows = match w {
            Write::Put { kind, k, sealed } => sqlx::query(
                "INSERT INTO world_records (kind, k, sealed) VALUES (?, ?, ?) \
                 ON CONFLICT (kind, k) DO UPDATE SET sealed = excluded.sealed",
            )
            .bind(kind.as_str())
            .bind(k)
            .bind(sealed)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
            Write::Enqueue { row, sealed } => {
                sqlx::query("INSERT OR REPLACE INTO world_inbox (row, sealed) VALUES (?, ?)")
                    .bind(*row as i64)
                    .bind(sealed)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
            }
            Write::Dequeue(rows) => {
                let mut n = 0;
                for row in rows {
                    n += sqlx::query("DELETE FROM world_inbox WHERE row = ?")
                        .bind(*row as i64)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                }
                n
            }
            Write::Item {
                k,
                item,
                id,
                sealed,
            } => sqlx::query(
                "INSERT INTO world_items (k, item, id, sealed) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (k, item, id) DO NOTHING",
            )
            .bind(k)
            .bind(item.as_str())
            .bind(id)
            .bind(sealed)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        };
        changed.push(rows > 0);
    }
    Ok(changed)
}

async fn commit(conn: &mut SqliteConnection, jobs: &[Job]) -> Result<Vec<Vec<bool>>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(apply(&mut tx, &job.writes).await?);
    }
    tx.commit().await?;
    Ok(out)
}

/// The world's one writer: takes what waits, commits it in one transaction, answers each
/// batch (a failed commit fails every batch in it: none of them counts). Ends when the store
/// is dropped.
pub(super) async fn write_loop(mut conn: SqliteConnection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut taken = vec![first];
        while taken.len() < JOBS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => taken.push(job),
                Err(_) => break,
            }
        }
        match commit(&mut conn, &taken).await {
            Ok(outcomes) => {
                for (job, outcome) in taken.into_iter().zip(outcomes) {
                    let _ = job.done.send(Ok(outcome));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in taken {
                    let _ = job.done.send(Err(WorldError::Io(message.clone())));
                }
            }
        }
    }
}
