//! The append algorithm both backends share ([`run_append`] over an [`AppendTx`]): per-command
//! version checks and gap-free positions under the sequencer lock, each row's audit leaf with it.

use super::{
    AppendCommand, AppendOutcome, AuditLeaf, Conflict, NewRow, StoreError, StreamId, TxHook,
};
use async_trait::async_trait;

/// One append transaction as the shared algorithm [`run_append`] sees it; each backend
/// implements the few statements it needs.
#[async_trait]
pub(crate) trait AppendTx: Send {
    /// Takes the sequencer lock and returns the highest committed position.
    async fn lock_head(&mut self) -> Result<u64, StoreError>;
    /// Current versions of these streams (absent streams are left out).
    async fn stream_versions(
        &mut self,
        streams: &[&StreamId],
    ) -> Result<std::collections::HashMap<StreamId, u64>, StoreError>;
    /// Inserts rows at the given positions.
    async fn insert(&mut self, rows: &[(u64, &NewRow)]) -> Result<(), StoreError>;
    /// Records the rows' leaves of the tamper-evident log (`sealpost_audit_leaves`).
    async fn insert_leaves(&mut self, leaves: &[AuditLeaf]) -> Result<(), StoreError>;
    /// Records the new head (where the backend keeps one), then commits or rolls back.
    async fn finish(self: Box<Self>, new_head: u64, commit: bool) -> Result<(), StoreError>;
}

/// The append algorithm shared by every backend: under the sequencer lock, check each
/// command's expected version (tracking versions inside the batch), give accepted rows the next
/// positions, insert them, run the hook, commit. Because the lock is held until commit,
/// positions become visible in order and a reader can never skip one.
pub(crate) async fn run_append(
    mut tx: Box<dyn AppendTx + '_>,
    commands: &[AppendCommand],
    hook: Option<&dyn TxHook>,
) -> Result<AppendOutcome, StoreError> {
    let head = tx.lock_head().await?;
    let streams: Vec<&StreamId> = commands.iter().map(|c| &c.stream).collect();
    let mut versions = tx.stream_versions(&streams).await?;
    let mut next = head;
    let mut results = Vec::with_capacity(commands.len());
    let mut accepted: Vec<(u64, &NewRow)> = Vec::new();
    for cmd in commands {
        let actual = versions.get(&cmd.stream).copied().unwrap_or(0);
        if actual != cmd.expected {
            results.push(Err(Conflict {
                expected: cmd.expected,
                actual,
            }));
            continue;
        }
        let mut positions = Vec::with_capacity(cmd.rows.len());
        for (i, row) in cmd.rows.iter().enumerate() {
            if row.header.sequence != cmd.expected + i as u64 + 1
                || row.header.stream != cmd.stream
                || row.header.business_id != cmd.stream.business
            {
                return Err(StoreError::Invalid(
                    "rows must continue their stream's sequence, in their stream's business",
                ));
            }
            next += 1;
            positions.push(next);
            accepted.push((next, row));
        }
        versions.insert(cmd.stream.clone(), cmd.expected + cmd.rows.len() as u64);
        results.push(Ok(positions));
    }
    if !accepted.is_empty() {
        tx.insert(&accepted).await?;
        // Each row's leaf in the row's own transaction: the sequencer then builds the tree from
        // 32-byte hashes instead of reading every row again (ADR 0013).
        let leaves: Vec<AuditLeaf> = accepted
            .iter()
            .map(|(position, row)| AuditLeaf {
                position: *position,
                hash: super::leaf::row_leaf(&row.header, &row.payload),
            })
            .collect();
        tx.insert_leaves(&leaves).await?;
    }
    let commit = match hook {
        Some(h) => h.before_commit().await,
        None => true,
    };
    tx.finish(next, commit).await?;
    Ok(commit.then_some(results))
}

/// A unique violation on (stream, sequence) is a typed conflict, never a lost write. Under the
/// sequencer lock it cannot happen; if it does (a writer bypassing the lock), the whole
/// transaction is refused as a conflict.
pub(crate) fn unique_to_conflict(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(Conflict {
            expected: 0,
            actual: 0,
        }),
        _ => e.into(),
    }
}
