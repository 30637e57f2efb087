//! What `serve` does beside the pipeline, on intervals, in a task of its own: the audit
//! sequencer and checkpoints, retention, the scrub of destroyed keys' bytes, template reviews, the persisted
//! projections and evidence, the access counts of a minute that is over.
//!
//! Each duty fails on its own: an error is logged and the next interval tries again; none of
//! them holds up a pipeline step or a request. All but the access counts (which are this
//! process's own), the token index, the webhook subscriptions and the rate limits' share
//! (every node follows them) run
//! only while this node holds the `housekeeping` lease (ADR 0016): one sequencer, one
//! checkpoint signer, one retention process at a time over a store.

use super::Shared;
use sealpost_domain::Timestamp;
use sealpost_projections::retention::RetentionProcess;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often (by the server's clock) the retention process runs under `serve`.
pub const RETENTION_EVERY_MS: i64 = 60_000;
/// How often (by the server's clock) `serve` signs an audit checkpoint of new rows.
pub const CHECKPOINT_EVERY_MS: i64 = 60_000;
/// How often the audit sequencer records leaves for new rows (often, so a checkpoint signed on
/// demand, an erasure certificate's, has little left to sequence).
const SEQUENCE_EVERY: Duration = Duration::from_millis(100);
/// How often destroyed keys' bytes are scrubbed from the key store's files, when a
/// destruction left some (an erasure answers before; ADR 0013).
pub const SCRUB_EVERY: Duration = Duration::from_secs(1);
/// How often the persisted projections are caught up and saved while serving.
pub const PROJECTIONS_EVERY: Duration = Duration::from_secs(60);

/// When each duty on a fixed interval last ran.
struct Due {
    retention: Option<Timestamp>,
    reviews: crate::app::Reviews,
    checkpoint: Timestamp,
    scrubbed: Instant,
    refreshed: Instant,
}

/// Whether `every` has passed since `last`; if so, `last` becomes now.
fn elapsed(last: &mut Instant, every: Duration) -> bool {
    let due = last.elapsed() >= every;
    if due {
        *last = Instant::now();
    }
    due
}

/// Runs the duties until told to stop: the sequencer on every turn (one each
/// [`SEQUENCE_EVERY`]), the others when their interval is over.
pub(super) async fn run(
    s: Shared,
    mut stop: watch::Receiver<bool>,
    mut retention: RetentionProcess,
) {
    let claim = s.claim(crate::nodes::HOUSEKEEPING);
    let mut due = Due {
        retention: None,
        reviews: crate::app::Reviews::default(),
        checkpoint: s.app.now(),
        scrubbed: Instant::now(),
        refreshed: Instant::now(),
    };
    while !*stop.borrow() {
        let now = s.app.now();
        // Processor access counts of a minute that is over are written now, not when the next
        // decision happens to come.
        if let Err(e) = s.app.gate().flush_due(now).await {
            tracing::warn!(error = %e, "access counts not written yet");
        }
        // Tokens issued or revoked on another node, and the rate limits' share of this node.
        if let Err(e) = s.tokens.follow().await {
            tracing::warn!(error = %e, "token events of other nodes not read yet");
        }
        if let Err(e) = super::subscriptions::follow_subscriptions(&s).await {
            tracing::warn!(error = %e, "webhook subscriptions of other nodes not read yet");
        }
        if let Some(node) = &s.node {
            s.limits
                .lock()
                .expect("limits lock is never poisoned")
                .set_nodes(node.live_nodes());
        }
        // Data in use outside its region, held by this node: accounted once an hour by every
        // node (the holds are each process's own).
        if let Err(e) = s.app.account_transit(now).await {
            tracing::error!(error = %e, "data in use not accounted");
        }
        if claim.grant().is_none() {
            crate::metrics::checkpoint_duty_off();
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(SEQUENCE_EVERY) => {}
            }
            continue;
        }
        crate::metrics::checkpoint_duty_on();
        sequence(&s, now, &mut due.checkpoint).await;
        if elapsed(&mut due.scrubbed, SCRUB_EVERY) {
            if let Err(e) = s.app.store().vault().scrub().await {
                tracing::warn!(error = %e, "destroyed keys not scrubbed from storage yet");
            }
        }
        // Templates whose review is over: the outcome recorded, for the status webhook.
        if let Err(e) = s.app.record_template_reviews(&mut due.reviews).await {
            tracing::warn!(error = %e, "template reviews not recorded yet");
        }
        // The persisted projections keep up, so the next start folds only what is new.
        if elapsed(&mut due.refreshed, PROJECTIONS_EVERY) {
            if let Err(e) = crate::projections::refresh_all(s.app.store()).await {
                tracing::warn!(error = %e, "projections not saved yet");
            }
        }
        // Retention: every message's keys go when it turns 30 days old.
        if due
            .retention
            .is_none_or(|t| now.millis() - t.millis() >= RETENTION_EVERY_MS)
        {
            if let Err(e) = retention.run_once(now).await {
                tracing::error!(error = %e, "retention pass failed");
            }
            due.retention = Some(now);
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(SEQUENCE_EVERY) => {}
        }
    }
}

/// The audit sequencer: leaves for new rows, and a signed checkpoint once its interval (by the
/// server's clock) is over.
async fn sequence(s: &Shared, now: Timestamp, last_checkpoint: &mut Timestamp) {
    let audit = match s.app.audit().await {
        Ok(audit) => audit,
        Err(e) => {
            tracing::error!(error = %e, "audit log unavailable");
            return;
        }
    };
    let due = now.millis() - last_checkpoint.millis() >= CHECKPOINT_EVERY_MS;
    sequence_regions(s, due).await;
    if !due {
        if let Err(e) = audit.sequence().await {
            tracing::error!(error = %e, "audit sequencing failed");
        }
        return;
    }
    *last_checkpoint = now;
    match audit.checkpoint(now).await {
        // The evidence projections follow the signed checkpoints, a minute's events at a time,
        // so a query folds only what came since; in a task of their own, so the sequencer and
        // the other duties do not wait for a fold.
        Ok(checkpoint) => {
            crate::metrics::checkpoint_signed();
            let app = s.app.clone();
            tokio::spawn(async move {
                if let Err(e) = app.evidence().fold_evidence_unless_busy(&checkpoint).await {
                    tracing::warn!(error = %e, "evidence projections not caught up yet");
                }
            });
        }
        Err(e) => tracing::error!(error = %e, "audit sequencing failed"),
    }
}

/// How long the regions' sequencing may take per turn: a region out of reach must not hold up
/// the home log, retention or the other duties.
const REGIONS_TURN: Duration = Duration::from_secs(5);

/// The Local Storage regions' own logs: sequenced, and a checkpoint signed when `due`.
async fn sequence_regions(s: &Shared, due: bool) {
    if tokio::time::timeout(REGIONS_TURN, sequence_regions_now(s, due))
        .await
        .is_err()
    {
        tracing::warn!("the regions' audit logs were not sequenced in time; next turn");
    }
}

async fn sequence_regions_now(s: &Shared, due: bool) {
    let audits = match s.app.region_audits().await {
        Ok(audits) => audits,
        Err(e) => {
            tracing::error!(error = %e, "a region's audit log is unavailable");
            return;
        }
    };
    for (region, audit) in audits {
        let done = if due {
            audit.checkpoint(s.app.now()).await.map(|_| ())
        } else {
            audit.sequence().await.map(|_| ())
        };
        if let Err(e) = done {
            tracing::error!(region = region.code(), error = %e, "a region's audit sequencing failed");
        }
    }
}
