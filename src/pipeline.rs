//! The message pipeline: Signal on the business's behalf between the event store and the
//! transport.
//!
//! * **Outbound** — the delivery projection follows the log from its durable checkpoint; for
//!   every accepted message it opens the content and the consumer's number through the access
//!   gate (principal: the delivery pipeline, purpose: delivery), encrypts with the consumer's
//!   Signal session (starting one from the transport's key directory if needed), hands the
//!   ciphertext to the transport and records `MessageEncrypted` and `MessageSent`. Failed
//!   hand-offs are retried with exponential backoff and jitter until the message's keys expire.
//! * **Inbound** — ciphertext from a device is recorded (`InboundMessageReceived`, sealed),
//!   decrypted with the session, recorded again (`InboundMessageDecrypted`, sealed under the
//!   message key) and queued for the business; identity changes and decryption failures are
//!   events too. Receipts become `MessageDelivered` / `MessageRead`.
//! * **Retransmission** — a device's request re-encrypts from the sealed content while it
//!   lives; once the keys are destroyed the request ends in a recorded `RetransmissionRefused`.
//!
//! The pipeline runs as one task (`step` in a loop), so a consumer's session is never updated
//! by two operations at once. Every step it takes is idempotent over restarts: a message that
//! already left is not sent again, and a redelivered envelope maps to the same message id.

use crate::app::{AppError, Sealpost};
use rand::Rng as _;
use sealpost_adapters::ledger::Subscription;
use sealpost_adapters::store::Fence;
use sealpost_domain::integrity::{IntegrityEvent, INTEGRITY_STREAM_TYPE};
use sealpost_domain::ports::signal::{Account, Peer, Session, SignalEngine, SignalError};
use sealpost_domain::ports::transport::{
    Address, Envelope, IntegritySink, Payload, Receipt, Transport, TransportError,
};
use sealpost_domain::time::SECOND_MS;
use sealpost_domain::PrincipalKind;
use sealpost_domain::{
    BusinessId, DomainError, MessageCommand, MessageId, MessageStatus, Opened, PhoneNumberId,
    Principal, Purpose, Region, Timestamp, E164,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod handover;
mod inbound;
mod integrity;
mod lanes;
mod numbers;
mod outbound;

use handover::Job;
pub use handover::CONSUMERS_AT_ONCE;
use inbound::Link;
pub use integrity::IntegrityRecorder;
pub use lanes::{Lane, LANE_COUNT, LANE_LEASE_PREFIX};
use numbers::Number;
use outbound::Retry;

/// The events the pipeline acts on; the rest of the log is left in the database.
const FOLLOWED: &[&str] = &[
    "OutboundMessageAccepted",
    "InboundMessageRead",
    "StorageConfigured",
];

/// The delivery projection's durable checkpoint (of the whole pipeline; a lane's is
/// `delivery:<lane>`, [`Lane::checkpoint`]).
pub const DELIVERY_CHECKPOINT: &str = "delivery";
/// The principal the pipeline reads content and numbers as.
pub const DELIVERY_PRINCIPAL: &str = "delivery";
/// The consumer device Sealpost talks to (one device per consumer in this version).
pub const CONSUMER_DEVICE: u8 = 1;
/// One-time prekeys kept published per business number; replenished below `PREKEY_LOW`.
pub const PREKEY_TARGET: u32 = 50;
/// See [`PREKEY_TARGET`].
pub const PREKEY_LOW: usize = 10;
/// How old a signed prekey may get before it is rotated: 7 days.
pub const SIGNED_PREKEY_ROTATION_MS: i64 = 7 * 24 * 3_600 * SECOND_MS;
/// How long one pipeline step works on a backlog before it yields (to a stop, to the devices).
pub const STEP_BUDGET: Duration = Duration::from_millis(200);
/// Inbound envelopes taken (leased) at a time.
pub const INBOX_CHUNK: usize = 256;
/// How long a pipeline with no numbers waits between idle steps.
pub const IDLE_WITHOUT_NUMBERS: Duration = Duration::from_millis(250);
/// How often each number's chores are done: the prekey pool topped up, the signed prekey
/// rotated when due, the transport's integrity signals taken (none is on the message path, and
/// each is a round trip to the transport per number).
pub const CHORES_EVERY: Duration = Duration::from_secs(1);
/// First retry delay of a failed hand-off; doubled per attempt, capped at [`RETRY_MAX_MS`].
pub const RETRY_BASE_MS: i64 = SECOND_MS;
/// Longest retry delay.
pub const RETRY_MAX_MS: i64 = 3_600 * SECOND_MS;

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Outbound messages handed to the transport.
    pub sent: u64,
    /// Outbound messages that failed for good.
    pub failed: u64,
    /// Hand-offs that will be retried.
    pub retries_scheduled: u64,
    /// Inbound messages decrypted and queued for the business.
    pub received: u64,
    /// Inbound envelopes already seen (not recorded twice).
    pub duplicates: u64,
    /// Inbound messages that could not be decrypted (recorded).
    pub decrypt_failures: u64,
    /// Delivery and read receipts recorded.
    pub receipts: u64,
    /// Messages sent again on request.
    pub retransmitted: u64,
    /// Retransmission requests refused because the keys are gone (recorded).
    pub refused: u64,
    /// Consumer identity changes recorded.
    pub identity_changes: u64,
    /// Read receipts of the business sent back to consumers' devices.
    pub reads_forwarded: u64,
}

impl StepReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, o: StepReport) {
        self.sent += o.sent;
        self.failed += o.failed;
        self.retries_scheduled += o.retries_scheduled;
        self.received += o.received;
        self.duplicates += o.duplicates;
        self.decrypt_failures += o.decrypt_failures;
        self.receipts += o.receipts;
        self.retransmitted += o.retransmitted;
        self.refused += o.refused;
        self.identity_changes += o.identity_changes;
        self.reads_forwarded += o.reads_forwarded;
    }

    /// Whether the step did anything.
    pub fn is_idle(&self) -> bool {
        *self == StepReport::default()
    }
}

/// The running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    app: Sealpost,
    engine: Arc<dyn SignalEngine>,
    transport: Arc<dyn Transport>,
    delivery: Subscription,
    numbers: BTreeMap<String, Number>,
    retries: Vec<Retry>,
    integrity: Option<Arc<IntegrityRecorder>>,
    /// The checkpoint last saved.
    committed: u64,
    /// How long one step works on a backlog ([`STEP_BUDGET`]; unbounded in `run_until_idle`).
    budget: Duration,
    /// The pipeline lease's fence, carried by the checkpoint and session writes (ADR 0016);
    /// none when the process is alone over its store.
    fence: Option<Fence>,
    /// The lane this pipeline works (ADR 0017); none for the whole pipeline (one process
    /// alone: `demo`, tests).
    lane: Option<Lane>,
    /// When the numbers' chores were last done ([`CHORES_EVERY`]).
    chores_done: Option<std::time::Instant>,
}

fn principal() -> Principal {
    Principal::processor(DELIVERY_PRINCIPAL)
}

impl Pipeline {
    /// Starts the whole pipeline (every business); the delivery projection resumes from its
    /// durable checkpoint.
    pub async fn start(
        app: Sealpost,
        engine: Arc<dyn SignalEngine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, AppError> {
        Self::start_in(app, engine, transport, None).await
    }

    /// Starts the pipeline of one lane: the businesses of that lane only, from the lane's
    /// checkpoint. Its numbers are attached by [`Pipeline::hold`], once the lane's lease is held.
    pub async fn start_lane(
        app: Sealpost,
        engine: Arc<dyn SignalEngine>,
        transport: Arc<dyn Transport>,
        lane: Lane,
    ) -> Result<Self, AppError> {
        Self::start_in(app, engine, transport, Some(lane)).await
    }

    async fn start_in(
        app: Sealpost,
        engine: Arc<dyn SignalEngine>,
        transport: Arc<dyn Transport>,
        lane: Option<Lane>,
    ) -> Result<Self, AppError> {
        let subscription = app.store().subscribe(0).of_types(FOLLOWED);
        let mut delivery = match lane {
            None => subscription,
            Some(lane) => subscription.only(move |h| Lane::of(&h.business_id) == lane),
        };
        let committed = checkpoint(&app, lane).await?;
        delivery.seek(committed);
        Ok(Self {
            app,
            engine,
            transport,
            delivery,
            numbers: BTreeMap::new(),
            retries: Vec::new(),
            integrity: None,
            committed,
            budget: STEP_BUDGET,
            fence: None,
            lane,
            chores_done: None,
        })
    }

    /// The lane this pipeline works (none: every business).
    pub fn lane(&self) -> Option<Lane> {
        self.lane
    }

    /// Waits after an idle step: `pause`, or at least [`IDLE_WITHOUT_NUMBERS`] for a pipeline
    /// without numbers (a lane of no business yet: numbers are attached when a lane is taken,
    /// so it has nothing to deliver), so that empty lanes do not poll the store every few ms.
    pub async fn idle(&self, pause: Duration) {
        let pause = if self.numbers.is_empty() {
            pause.max(IDLE_WITHOUT_NUMBERS)
        } else {
            pause
        };
        tokio::time::sleep(pause).await;
    }

    /// Whether this pipeline works for the business (its lane's, or every one).
    fn serves(&self, business: &BusinessId) -> bool {
        self.lane
            .is_none_or(|lane| Lane::of(business.as_str()) == lane)
    }

    /// The `lane` label of this pipeline's lag (`all` for a node that serves every lane).
    fn lag_label(&self) -> String {
        self.lane
            .map_or_else(|| "all".to_owned(), |l| l.index().to_string())
    }

    /// This pipeline's lane went to another node: its lag is no longer this node's to report.
    pub fn let_go(&self) {
        crate::metrics::metrics().lane_let_go(&self.lag_label());
    }

    /// The name of this pipeline's checkpoint.
    fn checkpoint_name(&self) -> String {
        self.lane
            .map_or_else(|| DELIVERY_CHECKPOINT.to_owned(), Lane::checkpoint)
    }

    /// Works under a new grant of the pipeline lease from now on, for the business `numbers`:
    /// resumes from the durable checkpoint (another node may have moved it while this one did
    /// not hold the lease), forgets the retries it had scheduled (they are before the
    /// checkpoint, so they come again), attaches the numbers anew from their stored Signal
    /// accounts (another holder may have rotated their prekeys), and its writes carry the
    /// grant's fence.
    pub async fn hold(
        &mut self,
        fence: Option<Fence>,
        numbers: &[(BusinessId, PhoneNumberId)],
    ) -> Result<(), AppError> {
        let position = checkpoint(&self.app, self.lane).await?;
        self.delivery.seek(position);
        self.committed = position;
        self.retries.clear();
        self.fence = fence;
        self.numbers.clear();
        for (business, id) in numbers {
            self.attach_number(business, id).await?;
        }
        Ok(())
    }

    /// Records the transport's integrity signals for the numbers this pipeline attaches.
    pub fn with_integrity(mut self, recorder: Arc<IntegrityRecorder>) -> Self {
        self.integrity = Some(recorder);
        self
    }

    /// The application service.
    pub fn app(&self) -> &Sealpost {
        &self.app
    }

    /// One pass: deliver what was accepted, retry what is due, take what arrived, and at most
    /// every [`CHORES_EVERY`] keep the prekey pool full, rotate the signed prekey and take the
    /// integrity signals. Returns what it did.
    ///
    /// A step makes no span of its own: one that did nothing would make one every few
    /// milliseconds; what it does is traced where it does it (the hand-off, the webhook).
    pub async fn step(&mut self) -> Result<StepReport, AppError> {
        let started = std::time::Instant::now();
        let mut report = StepReport::default();
        // Outbound work until the step's budget is spent; what is left waits, durably, for the
        // next step (so a stop never waits for a backlog to drain).
        'outbound: while started.elapsed() < self.budget {
            let start = self.delivery.position();
            let batch = self.delivery.try_next_batch().await?;
            if batch.is_empty() {
                break;
            }
            // Accepted messages are handed over a run at a time (ADR 0012); anything else in
            // between is followed on its own, in log order.
            let mut done = start;
            let mut run: Vec<Job> = Vec::new();
            for e in batch {
                if e.header.event_type == "OutboundMessageAccepted" {
                    if let (Ok(business), Ok(id)) = (
                        BusinessId::parse(&e.header.business_id),
                        MessageId::parse(&e.header.stream.id),
                    ) {
                        run.push(Job {
                            business,
                            id,
                            attempt: 0,
                            position: e.position,
                            trace: e
                                .metadata
                                .get(sealpost_adapters::ledger::meta::TRACEPARENT)
                                .cloned(),
                        });
                    }
                    continue;
                }
                let last = run.last().map_or(done, |j| j.position);
                if let Err(err) = self
                    .deliver_run(std::mem::take(&mut run), &mut report)
                    .await
                {
                    return self.resume_at(done, err).await;
                }
                done = last;
                if started.elapsed() >= self.budget {
                    self.delivery.seek(done);
                    self.commit_checkpoint().await?;
                    break 'outbound;
                }
                if let Err(err) = self.follow(&e, &mut report).await {
                    return self.resume_at(done, err).await;
                }
                done = e.position;
            }
            if let Err(err) = self.deliver_run(run, &mut report).await {
                return self.resume_at(done, err).await;
            }
            self.commit_checkpoint().await?;
        }
        report.merge(self.run_due_retries().await?);
        self.commit_checkpoint().await?;
        let handles: Vec<String> = self.numbers.keys().cloned().collect();
        let chores = self
            .chores_done
            .is_none_or(|at| at.elapsed() >= CHORES_EVERY);
        for handle in handles {
            self.take_arrivals(&handle, started, &mut report).await?;
            if chores {
                self.take_signals(&handle).await?;
                self.keep_prekeys(&handle).await?;
                self.rotate_signed_prekey(&handle).await?;
            }
        }
        if chores {
            self.chores_done = Some(std::time::Instant::now());
            // Once a second: how far this lane is behind the log (one read of its head).
            if let Ok(head) = self.app.store().log().head().await {
                crate::metrics::metrics().lag(
                    self.lag_label(),
                    head.saturating_sub(self.delivery.position()),
                );
            }
        }
        if !report.is_idle() {
            tracing::info!(
                sent = report.sent,
                received = report.received,
                receipts = report.receipts,
                failed = report.failed,
                "pipeline step"
            );
        }
        Ok(report)
    }

    /// Acts on one event of the delivery projection; an error is transient (the event must be
    /// handed out again), anything else is settled here.
    async fn follow(
        &mut self,
        e: &sealpost_adapters::ledger::OpenedEvent,
        report: &mut StepReport,
    ) -> Result<(), AppError> {
        match e.header.event_type.as_str() {
            "StorageConfigured" => {
                let id = PhoneNumberId::parse(&e.header.stream.id)
                    .map_err(|_| AppError::Corrupt("phone number id"))?;
                let business = BusinessId::parse(&e.header.business_id)
                    .map_err(|_| AppError::Corrupt("business id"))?;
                self.relocate(&business, &id).await
            }
            "InboundMessageRead" => {
                let id = MessageId::parse(&e.header.stream.id)
                    .map_err(|_| AppError::Corrupt("message id"))?;
                let business = BusinessId::parse(&e.header.business_id)
                    .map_err(|_| AppError::Corrupt("business id"))?;
                match self.forward_read(&business, &id).await {
                    Ok(r) => report.merge(r),
                    Err(e) if transient(&e) => return Err(e),
                    // A lost read receipt is not worth stalling delivery for.
                    Err(e) => tracing::warn!(error = %e, "read receipt not forwarded"),
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Hands a run of accepted messages over as one batch. A failure that is not the store's
    /// passing trouble belongs to some message of the run: each is then tried alone, and the
    /// one that fails ends with a final status instead of stalling the rest.
    async fn deliver_run(
        &mut self,
        run: Vec<Job>,
        report: &mut StepReport,
    ) -> Result<(), AppError> {
        if run.is_empty() {
            return Ok(());
        }
        let alone = run.len() == 1;
        let err = match self.hand_over(run.clone(), false).await {
            Ok(r) => {
                report.merge(r);
                return Ok(());
            }
            Err(e) if transient(&e) => return Err(e),
            Err(e) => e,
        };
        if !alone {
            for job in run {
                Box::pin(self.deliver_run(vec![job], report)).await?;
            }
            return Ok(());
        }
        tracing::error!(error = %err, "outbound message could not be delivered");
        match self.fail(&run[0], 131_000).await {
            Ok(r) => report.merge(r),
            Err(e) if transient(&e) => return Err(e),
            Err(e) => tracing::error!(error = %e, "failure not recorded"),
        }
        Ok(())
    }

    /// Storage trouble is transient: resume after `done` next time (the checkpoint never
    /// passes an event not settled) instead of skipping the rest of the batch.
    async fn resume_at(&mut self, done: u64, err: AppError) -> Result<StepReport, AppError> {
        self.delivery.seek(done);
        self.commit_checkpoint().await.ok();
        Err(err)
    }

    /// Steps until a step does nothing (at most `max` steps).
    /// Each of these steps works off the whole backlog (no step budget).
    pub async fn run_until_idle(&mut self, max: usize) -> Result<StepReport, AppError> {
        let budget = std::mem::replace(&mut self.budget, Duration::MAX);
        // The first step does the numbers' chores whenever the last was.
        self.chores_done = None;
        let mut total = StepReport::default();
        let mut result = Ok(());
        for _ in 0..max {
            match self.step().await {
                Ok(r) if r.is_idle() => break,
                Ok(r) => total.merge(r),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.budget = budget;
        result.map(|()| total)
    }

    /// Saves the delivery checkpoint: the subscription's position, but never past a message
    /// whose hand-off is waiting for a retry.
    async fn commit_checkpoint(&mut self) -> Result<(), AppError> {
        let pending = self
            .retries
            .iter()
            .map(|r| r.job.position.saturating_sub(1))
            .min();
        let safe = pending.map_or(self.delivery.position(), |p| {
            p.min(self.delivery.position())
        });
        if safe != self.committed {
            self.app
                .store()
                .log()
                .save_checkpoint(&self.checkpoint_name(), safe, self.fence.as_ref())
                .await?;
            self.committed = safe;
        }
        Ok(())
    }
}

/// Where a pipeline resumes: its checkpoint; for a lane that has none yet, the whole
/// pipeline's (a store written before there were lanes goes on from where it was).
async fn checkpoint(app: &Sealpost, lane: Option<Lane>) -> Result<u64, AppError> {
    let log = app.store().log();
    if let Some(lane) = lane {
        let own = log.load_checkpoint(&lane.checkpoint()).await?;
        if own > 0 {
            return Ok(own);
        }
    }
    Ok(log.load_checkpoint(DELIVERY_CHECKPOINT).await?)
}

/// Groups items by key: groups in the order their keys first appear, items in their order.
pub(crate) fn grouped<K: Eq + std::hash::Hash + Clone, V>(
    items: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, Vec<V>)> {
    let mut index: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    let mut out: Vec<(K, Vec<V>)> = Vec::new();
    for (key, item) in items {
        match index.get(&key) {
            Some(&i) => out[i].1.push(item),
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, vec![item]));
            }
        }
    }
    out
}

/// Whether a failure is not the message's: the store's passing trouble (the work is tried
/// again) or a guarded write refused because another node took the lane over (the step ends and
/// the lane stops, ADR 0016). Either way the message is never settled by it: a node resumed
/// after a pause past its lease once failed with 131000 messages the new holder delivered.
fn transient(e: &AppError) -> bool {
    matches!(e, AppError::Ledger(_)) || e.is_unavailable() || e.is_fenced()
}

#[cfg(test)]
mod grouping {
    #[test]
    fn groups_keep_first_appearance_and_item_order() {
        let items = [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        assert_eq!(
            super::grouped(items),
            vec![("b", vec![1, 3]), ("a", vec![2, 5]), ("c", vec![4])]
        );
    }
}
