//! The group committer: one task per process packs up to [`MAX_GROUP`] waiting commands into
//! one durable transaction; when a group fails, each command is tried on its own.

use super::{Job, MAX_GROUP};
use crate::store::{AppendCommand, EventLog, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

pub(super) async fn run_committer(
    log: Arc<dyn EventLog>,
    mut rx: mpsc::Receiver<Job>,
    head: watch::Sender<u64>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        commit_group(log.as_ref(), jobs, &head).await;
    }
}

fn advance_head(head: &watch::Sender<u64>, positions: &[u64]) {
    if let Some(top) = positions.last().copied() {
        head.send_if_modified(|h| {
            let moved = top > *h;
            *h = (*h).max(top);
            moved
        });
    }
}

/// Appends one command alone: what a group falls back to when its shared transaction failed.
async fn append_alone(log: &dyn EventLog, command: &AppendCommand) -> Result<Vec<u64>, StoreError> {
    match log.append(std::slice::from_ref(command), None).await? {
        Some(mut results) => results
            .pop()
            .unwrap_or(Err(crate::store::Conflict {
                expected: command.expected,
                actual: 0,
            }))
            .map_err(StoreError::Conflict),
        None => Err(StoreError::Database("transaction rolled back".into())),
    }
}

async fn commit_group(log: &dyn EventLog, jobs: Vec<Job>, head: &watch::Sender<u64>) {
    let (commands, replies): (Vec<AppendCommand>, Vec<_>) =
        jobs.into_iter().map(|j| (j.command, j.reply)).unzip();
    let results: Vec<Result<Vec<u64>, StoreError>> = match log.append(&commands, None).await {
        Ok(Some(results)) => results
            .into_iter()
            .map(|r| r.map_err(StoreError::Conflict))
            .collect(),
        Ok(None) => commands
            .iter()
            .map(|_| Err(StoreError::Database("transaction rolled back".into())))
            .collect(),
        Err(e) if commands.len() == 1 => vec![Err(e)],
        // The database is down or busy: every command would fail alone too (after its own
        // acquire timeout), so fail them all at once.
        Err(StoreError::Unavailable(why)) => commands
            .iter()
            .map(|_| Err(StoreError::Unavailable(why.clone())))
            .collect(),
        Err(_) => {
            // One bad command must not fail its neighbours: retry each on its own.
            let mut out = Vec::with_capacity(commands.len());
            for command in &commands {
                out.push(append_alone(log, command).await);
            }
            out
        }
    };
    for (result, reply) in results.into_iter().zip(replies) {
        if let Ok(positions) = &result {
            advance_head(head, positions);
        }
        // A caller that gave up waiting is not an error of the store.
        let _ = reply.send(result);
    }
}
