//! Which streams a piece of work reads: a trace kept per task, off unless a caller asks for
//! it with [`traced`]. It makes "one load per stream per command" checkable (and measurable
//! when a path is tuned): wrap the work, count the streams it loaded.

use crate::store::StreamId;
use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static TRACE: RefCell<Vec<StreamId>>;
}

/// Runs `work` and returns, beside its output, every stream it read with
/// [`crate::ledger::EventStore::read_stream`], in order, once per read.
pub async fn traced<F: Future>(work: F) -> (F::Output, Vec<StreamId>) {
    TRACE
        .scope(RefCell::new(Vec::new()), async {
            let out = work.await;
            let reads = TRACE.with(RefCell::take);
            (out, reads)
        })
        .await
}

/// Notes a read of `stream` when the current task is traced.
pub(super) fn note(stream: &StreamId) {
    let _ = TRACE.try_with(|t| t.borrow_mut().push(stream.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_traced_work_is_noted() {
        note(&StreamId::new("1", "message", "untraced"));
        let ((), reads) = traced(async {
            note(&StreamId::new("1", "message", "a"));
            note(&StreamId::new("1", "subject", "b"));
        })
        .await;
        assert_eq!(
            reads,
            vec![
                StreamId::new("1", "message", "a"),
                StreamId::new("1", "subject", "b")
            ]
        );
    }
}
