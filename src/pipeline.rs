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
use sealpost_adapters::signal::{Account, Peer, Session, SignalEngine, SignalError};
use sealpost_adapters::transport::{
    Address, Envelope, IntegritySink, Payload, Receipt, Transport, TransportError,
};
use sealpost_domain::integrity::{IntegrityEvent, INTEGRITY_STREAM_TYPE};
use sealpost_domain::time::SECOND_MS;
use sealpost_domain::PrincipalKind;
use sealpost_domain::{
    BusinessId, DomainError, MessageCommand, MessageEvent, MessageId, MessageKind, MessageStatus,
    Opened, PhoneNumberId, Principal, Purpose, Region, Subject, SubjectCommand, SubjectId,
    Timestamp, E164,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The delivery projection's durable checkpoint.
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
pub const INBOX_CHUNK: usize = 32;
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

#[derive(Debug)]
struct Number {
    id: PhoneNumberId,
    business: BusinessId,
    region: Region,
    handle: String,
    account: Account,
    dirty: bool,
}

impl Number {
    /// Stores the account, wrapped by the region root key.
    async fn save(&self, app: &Sealpost) -> Result<(), AppError> {
        let vault = app.store().vault();
        vault
            .save_signal_account(
                self.id.as_str(),
                self.business.as_str(),
                self.region,
                &self.account.to_bytes(),
                app.now(),
            )
            .await?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Retry {
    message: MessageId,
    attempt: u32,
    due: Timestamp,
    /// The log position of the message's acceptance: the durable checkpoint stays before it
    /// while the retry is pending, so a restart retries it.
    position: u64,
}

/// A consumer session as stored: the pinned identity key and the session record.
struct Link {
    identity: Vec<u8>,
    session: Session,
}

impl Link {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.identity.len() + self.session.0.len());
        out.extend_from_slice(&(self.identity.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.identity);
        out.extend_from_slice(&self.session.0);
        out
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let identity = b.get(4..4 + len)?.to_vec();
        let session = Session(b.get(4 + len..)?.to_vec());
        Some(Self { identity, session })
    }
}

/// Writes the transport's integrity signals to the transport's own streams in the event store
/// (`integrity/<phone number id>`), classified `integrity signals`.
#[derive(Debug)]
pub struct IntegrityRecorder {
    store: Arc<sealpost_adapters::ledger::EventStore>,
    numbers: std::sync::Mutex<BTreeMap<String, (BusinessId, Region, PhoneNumberId)>>,
}

impl IntegrityRecorder {
    /// A recorder writing into `app`'s store.
    pub fn new(app: &Sealpost) -> Arc<Self> {
        Arc::new(Self {
            store: app.store().clone(),
            numbers: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    fn register(&self, handle: &str, business: BusinessId, region: Region, id: PhoneNumberId) {
        self.numbers
            .lock()
            .expect("recorder lock is never poisoned")
            .insert(handle.to_owned(), (business, region, id));
    }

    async fn append(&self, business: &str, events: Vec<IntegrityEvent>) -> Result<(), AppError> {
        let Some((business_id, region, id)) = self
            .numbers
            .lock()
            .expect("recorder lock is never poisoned")
            .get(business)
            .cloned()
        else {
            return Err(AppError::Inconsistent(
                "integrity signal for an unknown business number",
            ));
        };
        let stream = sealpost_adapters::store::StreamId::new(INTEGRITY_STREAM_TYPE, id.as_str());
        let metadata = sealpost_adapters::exec::CommandMeta::new(
            business_id.as_str(),
            region,
            &Principal::of_kind(PrincipalKind::Transport, "whatsapp"),
        )
        .to_map();
        let plain = events
            .iter()
            .map(|e| sealpost_adapters::ledger::PlainEvent::of(e, metadata.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = sealpost_adapters::ledger::EventContext {
            business_id: business_id.as_str().to_owned(),
            region,
            epoch: None,
        };
        self.store.append_at_end(&stream, &ctx, plain).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl IntegritySink for IntegrityRecorder {
    async fn record(&self, business: &str, events: Vec<IntegrityEvent>) {
        if let Err(e) = self.append(business, events).await {
            tracing::warn!(error = %e, "integrity signals not recorded");
        }
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
    /// The log position of the message being delivered (for the retry it may schedule).
    in_flight: u64,
    /// The checkpoint last saved.
    committed: u64,
    /// How long one step works on a backlog ([`STEP_BUDGET`]; unbounded in `run_until_idle`).
    budget: Duration,
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.millis().max(0) as u64)
}

fn principal() -> Principal {
    Principal::processor(DELIVERY_PRINCIPAL)
}

impl Pipeline {
    /// Starts the pipeline; the delivery projection resumes from its durable checkpoint.
    pub async fn start(
        app: Sealpost,
        engine: Arc<dyn SignalEngine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, AppError> {
        let delivery = app.store().subscribe_durable(DELIVERY_CHECKPOINT).await?;
        let committed = delivery.position();
        Ok(Self {
            app,
            engine,
            transport,
            delivery,
            numbers: BTreeMap::new(),
            retries: Vec::new(),
            integrity: None,
            in_flight: 0,
            committed,
            budget: STEP_BUDGET,
        })
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

    /// Puts a business phone number on the network: loads its Signal account (or makes one,
    /// wrapped by the region root key) and publishes its prekeys to the key directory.
    pub async fn attach_number(&mut self, id: &PhoneNumberId) -> Result<(), AppError> {
        let n = self.app.phone_number(id).await?;
        let business = n
            .business_id
            .clone()
            .ok_or(AppError::Inconsistent("phone number without business"))?;
        let region = n
            .storage_region()
            .ok_or(AppError::Inconsistent("phone number without region"))?;
        let vault = self.app.store().vault().clone();
        // An election the delivery projection has not followed yet leaves the account in the
        // home region: serve it from there until `relocate` moves it.
        let mut stored = None;
        for r in std::iter::once(region).chain(n.home_region.filter(|h| *h != region)) {
            if let Some(bytes) = vault.load_signal_account(id.as_str(), r).await? {
                stored = Some((bytes, r));
                break;
            }
        }
        let region = stored.as_ref().map_or(region, |(_, r)| *r);
        let account = match stored {
            Some((bytes, _)) => {
                let mut account = Account::from_bytes(&bytes)
                    .map_err(|_| AppError::Inconsistent("stored Signal account"))?;
                self.reestablish(id, &business, region, &n.display_number, &mut account)
                    .await?;
                account
            }
            None => {
                let account = self
                    .engine
                    .new_account(
                        rand::rng().random(),
                        PREKEY_TARGET,
                        system_time(self.app.now()),
                    )
                    .map_err(|_| AppError::Inconsistent("Signal account could not be made"))?;
                self.save_account(id, &business, region, &account).await?;
                let entry = self
                    .engine
                    .directory_entry(&account)
                    .map_err(|_| AppError::Inconsistent("Signal account"))?;
                self.transport
                    .publish(&n.display_number, entry)
                    .await
                    .map_err(transport_error)?;
                account
            }
        };
        let (tier_state, _) = self
            .app
            .executor()
            .load::<sealpost_domain::Business>(business.as_str())
            .await?;
        let tier = tier_state
            .tier
            .unwrap_or(sealpost_domain::aggregates::business::MessagingLimitTier::Tier250);
        self.transport
            .register_business(&n.display_number, tier)
            .await
            .map_err(transport_error)?;
        if let Some(r) = &self.integrity {
            r.register(&n.display_number, business.clone(), region, id.clone());
        }
        let handle = n.display_number.clone();
        self.numbers.insert(
            handle.clone(),
            Number {
                id: id.clone(),
                business,
                region,
                handle,
                account,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Stores a number's Signal account, wrapped by its region's root key.
    async fn save_account(
        &self,
        id: &PhoneNumberId,
        business: &BusinessId,
        region: Region,
        account: &Account,
    ) -> Result<(), AppError> {
        self.app
            .store()
            .vault()
            .save_signal_account(
                id.as_str(),
                business.as_str(),
                region,
                &account.to_bytes(),
                self.app.now(),
            )
            .await?;
        Ok(())
    }

    /// Puts a number with a stored Signal account back on the network, idempotently: a
    /// transport that still knows it keeps its entry (its handed-out one-time prekeys must not be
    /// handed out twice) and gets the current signed prekey; one that lost it, or ran dry, gets
    /// the entry again with fresh one-time prekeys only.
    async fn reestablish(
        &self,
        id: &PhoneNumberId,
        business: &BusinessId,
        region: Region,
        handle: &str,
        account: &mut Account,
    ) -> Result<(), AppError> {
        let left = self
            .transport
            .prekeys_left(handle)
            .await
            .map_err(transport_error)?;
        if left > 0 {
            let entry = self
                .engine
                .directory_entry(account)
                .map_err(|_| AppError::Inconsistent("Signal account"))?;
            return self
                .transport
                .update_signed_prekey(handle, entry.signed_prekey)
                .await
                .map_err(transport_error);
        }
        let target = account.one_time_prekeys() as u32 + PREKEY_TARGET;
        let fresh = self
            .engine
            .replenish(account, target)
            .map_err(|_| AppError::Inconsistent("Signal account"))?;
        self.save_account(id, business, region, account).await?;
        let mut entry = self
            .engine
            .directory_entry(account)
            .map_err(|_| AppError::Inconsistent("Signal account"))?;
        entry.one_time = fresh;
        self.transport
            .publish(handle, entry)
            .await
            .map_err(transport_error)?;
        tracing::info!("business number re-established with the transport");
        Ok(())
    }

    /// One pass: deliver what was accepted, retry what is due, take what arrived, keep the
    /// prekey pool full. Returns what it did.
    #[tracing::instrument(skip_all)]
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
            let mut done = start;
            for e in batch {
                if started.elapsed() >= self.budget {
                    self.delivery.seek(done);
                    self.commit_checkpoint().await?;
                    break 'outbound;
                }
                if let Err(err) = self.follow(&e, &mut report).await {
                    // Storage trouble is transient: resume at this event next time (the
                    // checkpoint never passes it) instead of skipping the rest of the batch.
                    self.delivery.seek(done);
                    self.commit_checkpoint().await.ok();
                    return Err(err);
                }
                done = e.position;
            }
            self.commit_checkpoint().await?;
        }
        report.merge(self.run_due_retries().await?);
        self.commit_checkpoint().await?;
        let handles: Vec<String> = self.numbers.keys().cloned().collect();
        for handle in handles {
            self.take_arrivals(&handle, started, &mut report).await?;
            self.keep_prekeys(&handle).await?;
            self.rotate_signed_prekey(&handle).await?;
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

    /// Takes what arrived for `handle` in small leased chunks, at least one chunk a step and
    /// more while the step's budget lasts; acknowledges each chunk once recorded.
    async fn take_arrivals(
        &mut self,
        handle: &str,
        started: std::time::Instant,
        report: &mut StepReport,
    ) -> Result<(), AppError> {
        loop {
            let envelopes = self
                .transport
                .take_inbox(handle, INBOX_CHUNK)
                .await
                .map_err(transport_error)?;
            let more = envelopes.len() == INBOX_CHUNK;
            let mut recorded = Vec::new();
            for envelope in envelopes {
                let id = envelope.id.clone();
                match self.inbound(handle, envelope).await {
                    Ok(r) => {
                        report.merge(r);
                        recorded.push(id);
                    }
                    // Not recorded: the transport hands it out again when its lease ends.
                    Err(e) if transient(&e) => {
                        tracing::warn!(error = %e, "inbound envelope left for a retry")
                    }
                    // One envelope's failure must not hold up the ones after it, nor come back
                    // for ever.
                    Err(e) => {
                        tracing::error!(error = %e, "inbound envelope could not be processed");
                        recorded.push(id);
                    }
                }
            }
            // Acknowledged only once recorded: a crash before this redelivers them.
            self.transport
                .ack(handle, &recorded)
                .await
                .map_err(transport_error)?;
            if !more || started.elapsed() >= self.budget {
                return Ok(());
            }
        }
    }

    /// Acts on one event of the delivery projection; an error is transient (the event must be
    /// handed out again), anything else is settled here.
    async fn follow(
        &mut self,
        e: &sealpost_adapters::ledger::OpenedEvent,
        report: &mut StepReport,
    ) -> Result<(), AppError> {
        self.in_flight = e.position;
        match e.header.event_type.as_str() {
            "StorageConfigured" => {
                let id = PhoneNumberId::parse(&e.header.stream.id)
                    .map_err(|_| AppError::Inconsistent("phone number id"))?;
                self.relocate(&id).await
            }
            "InboundMessageRead" => {
                let id = MessageId::parse(&e.header.stream.id)
                    .map_err(|_| AppError::Inconsistent("message id"))?;
                match self.forward_read(&id).await {
                    Ok(r) => report.merge(r),
                    Err(e) if transient(&e) => return Err(e),
                    // A lost read receipt is not worth stalling delivery for.
                    Err(e) => tracing::warn!(error = %e, "read receipt not forwarded"),
                }
                Ok(())
            }
            "OutboundMessageAccepted" => {
                let MessageEvent::OutboundMessageAccepted { header, .. } =
                    e.decode::<MessageEvent>()?
                else {
                    return Ok(());
                };
                match self.deliver(&header.message_id, 0, false).await {
                    Ok(r) => report.merge(r),
                    Err(e) if transient(&e) => return Err(e),
                    // Anything else is this message's problem: it must not stall the rest, and
                    // it ends with a final status.
                    Err(e) => {
                        tracing::error!(error = %e, "outbound message could not be delivered");
                        match self.fail(&header.message_id, 131_000).await {
                            Ok(r) => report.merge(r),
                            Err(e) if transient(&e) => return Err(e),
                            Err(e) => tracing::error!(error = %e, "failure not recorded"),
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Steps until a step does nothing (at most `max` steps).
    /// Each of these steps works off the whole backlog (no step budget).
    pub async fn run_until_idle(&mut self, max: usize) -> Result<StepReport, AppError> {
        let budget = std::mem::replace(&mut self.budget, Duration::MAX);
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

    async fn fail(&self, id: &MessageId, code: u32) -> Result<StepReport, AppError> {
        self.app
            .record(id, MessageCommand::RecordFailed { code })
            .await?;
        Ok(StepReport {
            failed: 1,
            ..StepReport::default()
        })
    }

    /// A delivery that cannot happen: the message fails; a retransmission that cannot happen is
    /// a recorded refusal instead (the message was delivered once already).
    async fn give_up(
        &self,
        id: &MessageId,
        code: u32,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        if retransmission {
            let events = self
                .app
                .record(id, MessageCommand::RefuseRetransmission)
                .await?;
            return Ok(StepReport {
                refused: u64::from(!events.is_empty()),
                ..StepReport::default()
            });
        }
        self.fail(id, code).await
    }

    /// Encrypts and hands one outbound message to the transport. `retransmission` sends it
    /// again on a device's request.
    async fn deliver(
        &mut self,
        id: &MessageId,
        attempt: u32,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        let message = self.app.message(id).await?;
        let status = message.status.ok_or(DomainError::NotFound)?;
        if !retransmission && status >= MessageStatus::Sent {
            return Ok(StepReport::default()); // already handed over (a replay after restart)
        }
        let (Some(subject), Some(number_id)) =
            (message.subject_id.clone(), message.phone_number_id.clone())
        else {
            return Err(AppError::Inconsistent("message without subject or number"));
        };
        let handle = self.handle_of(Some(&number_id))?;
        let content = self
            .app
            .read_content(&principal(), Purpose::Delivery, id)
            .await?;
        let phone = self
            .app
            .read_phone(&principal(), Purpose::Delivery, &subject)
            .await?;
        let (Opened::Plain(content), Opened::Plain(phone)) = (content, phone) else {
            // The keys are gone (retention or erasure): nothing can be sent any more.
            return self.give_up(id, 131_026, retransmission).await;
        };
        let number = self
            .numbers
            .get(&handle)
            .ok_or(AppError::Inconsistent("number"))?;
        let (business, region) = (number.business.clone(), number.region);
        let vault = self.app.store().vault().clone();
        let link = match vault
            .load_session(business.as_str(), region, &subject, CONSUMER_DEVICE)
            .await?
        {
            Opened::Shredded => return self.give_up(id, 131_026, retransmission).await,
            Opened::Plain(bytes) => bytes.and_then(|b| Link::from_bytes(&b)),
        };
        let bundle = match &link {
            Some(_) => None,
            None => match self.transport.fetch_bundle(&phone, CONSUMER_DEVICE).await {
                Ok(Some(b)) => Some(b),
                Ok(None) => return self.give_up(id, 131_026, retransmission).await,
                Err(e) => return self.retry_later(id, attempt, e, retransmission).await,
            },
        };
        let peer = Peer {
            name: phone.clone(),
            device: CONSUMER_DEVICE,
        };
        let encrypted = match self.engine.encrypt(
            &number.account,
            &peer,
            link.as_ref().map(|l| &l.session),
            bundle.as_ref(),
            link.as_ref().map(|l| l.identity.as_slice()),
            content.body.as_bytes(),
            system_time(self.app.now()),
        ) {
            Ok(e) => e,
            Err(SignalError::InvalidBundle) => {
                return self.give_up(id, 131_026, retransmission).await
            }
            Err(_) => return Err(AppError::Inconsistent("Signal encryption failed")),
        };
        let stored = Link {
            identity: encrypted.peer_identity.clone(),
            session: encrypted.session.clone(),
        };
        vault
            .save_session(
                business.as_str(),
                region,
                &subject,
                CONSUMER_DEVICE,
                &stored.to_bytes(),
                self.app.now(),
            )
            .await?;
        if !retransmission {
            self.app.record(id, MessageCommand::RecordEncrypted).await?;
        }
        let envelope = Envelope {
            id: id.as_str().to_owned(),
            from: Address {
                handle: handle.clone(),
                device: 1,
            },
            to: Address {
                handle: phone,
                device: CONSUMER_DEVICE,
            },
            payload: Payload::Message {
                ciphertext: encrypted.ciphertext,
            },
        };
        match self.transport.send(envelope).await {
            Ok(()) if retransmission => {
                self.app
                    .record(id, MessageCommand::RecordRetransmitted)
                    .await?;
                Ok(StepReport {
                    retransmitted: 1,
                    ..StepReport::default()
                })
            }
            Ok(()) => {
                self.app.record(id, MessageCommand::RecordSent).await?;
                Ok(StepReport {
                    sent: 1,
                    ..StepReport::default()
                })
            }
            Err(TransportError::UnknownRecipient) => {
                self.give_up(id, 131_026, retransmission).await
            }
            Err(TransportError::Throttled) => self.give_up(id, 131_048, retransmission).await,
            Err(e) => self.retry_later(id, attempt, e, retransmission).await,
        }
    }

    /// The transport handle of an attached business number.
    fn handle_of(&self, number: Option<&PhoneNumberId>) -> Result<String, AppError> {
        self.numbers
            .values()
            .find(|n| Some(&n.id) == number)
            .map(|n| n.handle.clone())
            .ok_or(AppError::Inconsistent(
                "message for a number that is not attached",
            ))
    }

    /// Follows a number's Local Storage election: from now on its consumers, messages and Signal
    /// account live (and are wrapped) in the elected region.
    async fn relocate(&mut self, id: &PhoneNumberId) -> Result<(), AppError> {
        let Some(region) = self.app.phone_number(id).await?.storage_region() else {
            return Ok(());
        };
        let Some(number) = self.numbers.values_mut().find(|n| &n.id == id) else {
            return Ok(());
        };
        if number.region == region {
            return Ok(());
        }
        number.region = region;
        number.save(&self.app).await?;
        if let Some(r) = &self.integrity {
            r.register(&number.handle, number.business.clone(), region, id.clone());
        }
        tracing::info!(
            region = region.code(),
            "number relocated to its elected region"
        );
        Ok(())
    }

    /// Sends the business's read receipt for an inbound message back to the consumer's device.
    async fn forward_read(&mut self, id: &MessageId) -> Result<StepReport, AppError> {
        let Some((subject, envelope_id)) = self
            .app
            .inbound_envelope(&principal(), Purpose::Delivery, id)
            .await?
        else {
            return Ok(StepReport::default());
        };
        let Opened::Plain(phone) = self
            .app
            .read_phone(&principal(), Purpose::Delivery, &subject)
            .await?
        else {
            return Ok(StepReport::default());
        };
        let number_id = self.app.message(id).await?.phone_number_id;
        let handle = self.handle_of(number_id.as_ref())?;
        let receipt = Envelope {
            id: format!("rcpt-{}", uuid::Uuid::new_v4()),
            from: Address { handle, device: 1 },
            to: Address {
                handle: phone,
                device: CONSUMER_DEVICE,
            },
            payload: Payload::Receipt {
                receipt: Receipt::Read,
                of: envelope_id,
            },
        };
        self.transport
            .send(receipt)
            .await
            .map_err(transport_error)?;
        Ok(StepReport {
            reads_forwarded: 1,
            ..StepReport::default()
        })
    }

    async fn retry_later(
        &mut self,
        id: &MessageId,
        attempt: u32,
        error: TransportError,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        if retransmission {
            // The device asked; it asks again if it still lacks the message.
            tracing::warn!(error = %error, "retransmission could not be handed to the transport");
            return Ok(StepReport::default());
        }
        let now = self.app.now();
        let message = self.app.message(id).await?;
        let expiry = message.epoch.map(|e| self.app.policy().expiry_of(e));
        if expiry.is_some_and(|x| now >= x) {
            return self.fail(id, 131_026).await;
        }
        let backoff = RETRY_BASE_MS
            .saturating_mul(1i64 << attempt.min(20))
            .min(RETRY_MAX_MS);
        let jitter = rand::rng().random_range(0..=backoff / 2);
        tracing::warn!(attempt, error = %error, "hand-off to the transport failed; retrying later");
        self.retries.push(Retry {
            message: id.clone(),
            attempt: attempt + 1,
            due: now.plus_millis(backoff + jitter),
            position: self.in_flight,
        });
        Ok(StepReport {
            retries_scheduled: 1,
            ..StepReport::default()
        })
    }

    async fn run_due_retries(&mut self) -> Result<StepReport, AppError> {
        let now = self.app.now();
        let (due, later): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retries = later;
        let mut report = StepReport::default();
        let mut due = due.into_iter();
        while let Some(r) = due.next() {
            self.in_flight = r.position;
            match self.deliver(&r.message, r.attempt, false).await {
                Ok(done) => report.merge(done),
                Err(e) => {
                    // Not lost: this retry and the ones after it stay pending.
                    self.retries.push(r);
                    self.retries.extend(due);
                    return Err(e);
                }
            }
        }
        Ok(report)
    }

    /// Saves the delivery checkpoint: the subscription's position, but never past a message
    /// whose hand-off is waiting for a retry.
    async fn commit_checkpoint(&mut self) -> Result<(), AppError> {
        let pending = self
            .retries
            .iter()
            .map(|r| r.position.saturating_sub(1))
            .min();
        let safe = pending.map_or(self.delivery.position(), |p| {
            p.min(self.delivery.position())
        });
        if safe != self.committed {
            self.app
                .store()
                .log()
                .save_checkpoint(DELIVERY_CHECKPOINT, safe)
                .await?;
            self.committed = safe;
        }
        Ok(())
    }

    /// Handles one envelope addressed to a business number.
    async fn inbound(&mut self, handle: &str, envelope: Envelope) -> Result<StepReport, AppError> {
        match envelope.payload {
            Payload::Receipt { receipt, of } => {
                let Ok(id) = MessageId::parse(&of) else {
                    return Ok(StepReport::default());
                };
                let command = match receipt {
                    Receipt::Delivered => MessageCommand::RecordDelivered,
                    Receipt::Read => MessageCommand::RecordRead,
                };
                match self.app.record(&id, command).await {
                    Ok(events) => Ok(StepReport {
                        receipts: u64::from(!events.is_empty()),
                        ..StepReport::default()
                    }),
                    // A receipt for a message this store does not know: ignore it.
                    Err(AppError::Domain(DomainError::NotFound)) => Ok(StepReport::default()),
                    Err(e) => Err(e),
                }
            }
            Payload::Retransmit { of } => self.retransmit(&of, &envelope.from).await,
            Payload::Message { ciphertext } => {
                self.receive(handle, &envelope.id, &envelope.from, &ciphertext)
                    .await
            }
            // Reports stay with the transport; none reach a business. A business never asks a
            // business to resend.
            Payload::SpamReport | Payload::Block | Payload::Resend { .. } => {
                Ok(StepReport::default())
            }
        }
    }

    /// A device asks for a message again: only the message's own consumer may, and only for an
    /// outbound message.
    async fn retransmit(&mut self, of: &str, requester: &Address) -> Result<StepReport, AppError> {
        let Ok(id) = MessageId::parse(of) else {
            return Ok(StepReport::default());
        };
        let message = match self.app.message(&id).await {
            Ok(m) => m,
            Err(AppError::Domain(DomainError::NotFound)) => return Ok(StepReport::default()),
            Err(e) => return Err(e),
        };
        let (Some(sealpost_domain::Direction::Outbound), Some(subject)) =
            (message.direction, message.subject_id)
        else {
            return Ok(StepReport::default());
        };
        match self
            .app
            .read_phone(&principal(), Purpose::Delivery, &subject)
            .await?
        {
            Opened::Plain(phone) if phone == requester.handle => self.deliver(&id, 0, true).await,
            // Its keys are gone: `deliver` records the refusal.
            Opened::Shredded => self.deliver(&id, 0, true).await,
            Opened::Plain(_) => {
                tracing::warn!("retransmission requested by a device that is not the recipient");
                Ok(StepReport::default())
            }
        }
    }

    async fn receive(
        &mut self,
        handle: &str,
        envelope_id: &str,
        from: &Address,
        ciphertext: &[u8],
    ) -> Result<StepReport, AppError> {
        let Ok(phone) = E164::parse(&from.handle) else {
            tracing::warn!("dropped an envelope from an invalid sender address");
            return Ok(StepReport::default());
        };
        let (number_id, business, region) = {
            let n = self
                .numbers
                .get(handle)
                .ok_or(AppError::Inconsistent("number"))?;
            (n.id.clone(), n.business.clone(), n.region)
        };
        let vault = self.app.store().vault().clone();
        let subject = self.app.subject_for(&business, region, &phone).await?;
        let id = vault
            .inbound_message_id(business.as_str(), region, &subject, envelope_id)
            .await?
            .ok_or(AppError::Inconsistent("subject key missing"))?;
        let new = self
            .app
            .receive_ciphertext(&number_id, &subject, &id, ciphertext, Some(envelope_id))
            .await?;
        if !new {
            match self.app.message(&id).await?.status {
                // A crash left it undecrypted: decrypt it now.
                Some(MessageStatus::Received) => {}
                // A crash left it decrypted but not handed to the business: finish that.
                Some(MessageStatus::Decrypted) => {
                    self.app.forward_inbound(&id).await?;
                    return Ok(StepReport {
                        received: 1,
                        ..StepReport::default()
                    });
                }
                _ => {
                    return Ok(StepReport {
                        duplicates: 1,
                        ..StepReport::default()
                    })
                }
            }
        }
        let link = match vault
            .load_session(business.as_str(), region, &subject, from.device)
            .await?
        {
            Opened::Plain(bytes) => bytes.and_then(|b| Link::from_bytes(&b)),
            Opened::Shredded => None,
        };
        let peer = Peer {
            name: from.handle.clone(),
            device: from.device,
        };
        let number = self
            .numbers
            .get_mut(handle)
            .ok_or(AppError::Inconsistent("number"))?;
        let before = number.account.clone();
        let result = self.engine.decrypt(
            &mut number.account,
            &peer,
            link.as_ref().map(|l| &l.session),
            link.as_ref().map(|l| l.identity.as_slice()),
            ciphertext,
        );
        number.dirty |= number.account.one_time_prekeys() != before.one_time_prekeys();
        let decrypted = match result {
            Ok(d) => d,
            Err(e) => {
                let reason = match e {
                    SignalError::Duplicate => "duplicate",
                    SignalError::UnknownPreKey => "unknown_prekey",
                    SignalError::NoSession => "no_session",
                    _ => "invalid_message",
                };
                self.app
                    .record(
                        &id,
                        MessageCommand::RecordDecryptionFailed {
                            reason: reason.into(),
                        },
                    )
                    .await?;
                if e != SignalError::Duplicate {
                    // Ask the device to start a new session and send it again (the session may
                    // have been erased with an earlier subject).
                    let resend = Envelope {
                        id: format!("resend-{}", uuid::Uuid::new_v4()),
                        from: Address {
                            handle: handle.to_owned(),
                            device: 1,
                        },
                        to: from.clone(),
                        payload: Payload::Resend {
                            of: envelope_id.to_owned(),
                        },
                    };
                    if let Err(err) = self.transport.send(resend).await {
                        tracing::warn!(error = %err, "resend request not sent");
                    }
                }
                return Ok(StepReport {
                    decrypt_failures: 1,
                    ..StepReport::default()
                });
            }
        };
        // The message is recorded before the session and the account move on: a crash or a
        // store failure in between leaves the old session, which opens the redelivered envelope
        // again (or its id marks it a duplicate once recorded). Never the other way round, which
        // would lose the message.
        match self
            .record_received(handle, &subject, &id, &decrypted, from.device)
            .await
        {
            Ok(report) => Ok(report),
            Err(e) => {
                if let Some(number) = self.numbers.get_mut(handle) {
                    number.account = before;
                    number.dirty = false;
                }
                Err(e)
            }
        }
    }

    /// Records a decrypted inbound message, then keeps the session and account it left.
    async fn record_received(
        &mut self,
        handle: &str,
        subject: &SubjectId,
        id: &MessageId,
        decrypted: &sealpost_adapters::signal::Decrypted,
        device: u8,
    ) -> Result<StepReport, AppError> {
        let (number_id, business, region) = {
            let n = self
                .numbers
                .get(handle)
                .ok_or(AppError::Inconsistent("number"))?;
            (n.id.clone(), n.business.clone(), n.region)
        };
        let mut report = StepReport {
            received: 1,
            ..StepReport::default()
        };
        if decrypted.identity_changed {
            let meta =
                sealpost_adapters::exec::CommandMeta::new(business.as_str(), region, &principal());
            self.app
                .executor()
                .execute::<Subject>(
                    subject.as_str(),
                    SubjectCommand::RecordIdentityChange,
                    &meta,
                    self.app.now(),
                )
                .await?;
            report.identity_changes = 1;
        }
        let (kind, body) = inbound_content(&decrypted.plaintext);
        self.app.record_decrypted(id, kind, &body, None).await?;
        let vault = self.app.store().vault().clone();
        let number = self
            .numbers
            .get_mut(handle)
            .ok_or(AppError::Inconsistent("number"))?;
        if number.dirty {
            vault
                .save_signal_account(
                    number_id.as_str(),
                    business.as_str(),
                    region,
                    &number.account.to_bytes(),
                    self.app.now(),
                )
                .await?;
            number.dirty = false;
        }
        let stored = Link {
            identity: decrypted.peer_identity.clone(),
            session: decrypted.session.clone(),
        };
        vault
            .save_session(
                business.as_str(),
                region,
                subject,
                device,
                &stored.to_bytes(),
                self.app.now(),
            )
            .await?;
        Ok(report)
    }

    /// Rotates the signed prekey once it is older than [`SIGNED_PREKEY_ROTATION_MS`] (the
    /// previous one keeps serving messages in flight) and publishes the new one.
    async fn rotate_signed_prekey(&mut self, handle: &str) -> Result<(), AppError> {
        let now = self.app.now();
        let number = self
            .numbers
            .get_mut(handle)
            .ok_or(AppError::Inconsistent("number"))?;
        let made = number.account.signed_prekey_made_at();
        if system_time(now).duration_since(made).unwrap_or_default()
            < Duration::from_millis(SIGNED_PREKEY_ROTATION_MS as u64)
        {
            return Ok(());
        }
        self.engine
            .rotate_signed_prekey(&mut number.account, system_time(now))
            .map_err(|_| AppError::Inconsistent("Signal account"))?;
        let entry = self
            .engine
            .directory_entry(&number.account)
            .map_err(|_| AppError::Inconsistent("Signal account"))?;
        number.save(&self.app).await?;
        self.transport
            .update_signed_prekey(handle, entry.signed_prekey)
            .await
            .map_err(transport_error)?;
        tracing::info!("signed prekey rotated");
        Ok(())
    }

    /// Publishes new one-time prekeys when the directory runs low.
    async fn keep_prekeys(&mut self, handle: &str) -> Result<(), AppError> {
        let left = self
            .transport
            .prekeys_left(handle)
            .await
            .map_err(transport_error)?;
        if left >= PREKEY_LOW {
            return Ok(());
        }
        let number = self
            .numbers
            .get_mut(handle)
            .ok_or(AppError::Inconsistent("number"))?;
        // Add what the directory lacks; handed-out keys stay in the account until used.
        let target = (number.account.one_time_prekeys()
            + (PREKEY_TARGET as usize).saturating_sub(left)) as u32;
        let fresh = self
            .engine
            .replenish(&mut number.account, target)
            .map_err(|_| AppError::Inconsistent("Signal account"))?;
        number.save(&self.app).await?;
        self.transport
            .add_prekeys(handle, fresh)
            .await
            .map_err(transport_error)?;
        Ok(())
    }

    /// A subject's id for tests and the demo.
    pub async fn subject_of(&self, message: &MessageId) -> Result<SubjectId, AppError> {
        self.app
            .message(message)
            .await?
            .subject_id
            .ok_or(AppError::Inconsistent("message without subject"))
    }
}

/// Whether a failure is the store's passing trouble: the work is tried again, never settled.
fn transient(e: &AppError) -> bool {
    matches!(e, AppError::Ledger(_)) || e.is_unavailable()
}

fn transport_error(e: TransportError) -> AppError {
    AppError::Inconsistent(match e {
        TransportError::UnknownRecipient => "transport: unknown recipient",
        TransportError::Throttled => "transport: throttled",
        TransportError::Unavailable(_) => "transport unavailable",
    })
}

/// What a device sent, as the business will see it: a Cloud-API-shaped JSON object with a
/// `type` (`{"type":"text","text":{"body":"hi"}}`, `{"type":"image","image":{"id":"…"}}`,
/// `{"type":"reaction","reaction":{"message_id":"…","emoji":"👍"}}` …) gives the kind, and a
/// text message's body is its text; anything else is kept as text.
pub fn inbound_content(plaintext: &[u8]) -> (MessageKind, String) {
    let raw = String::from_utf8_lossy(plaintext).into_owned();
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(&raw) else {
        return (MessageKind::Text, raw);
    };
    let kind = match obj.get("type").and_then(serde_json::Value::as_str) {
        Some("text") => {
            if let Some(body) = obj
                .get("text")
                .and_then(|t| t.get("body"))
                .and_then(serde_json::Value::as_str)
            {
                return (MessageKind::Text, body.to_owned());
            }
            MessageKind::Text
        }
        Some("image") => MessageKind::Image,
        Some("audio") => MessageKind::Audio,
        Some("video") => MessageKind::Video,
        Some("document") => MessageKind::Document,
        Some("sticker") => MessageKind::Sticker,
        Some("reaction") => MessageKind::Reaction,
        Some("button") => MessageKind::Button,
        Some("interactive") => MessageKind::Interactive,
        _ => return (MessageKind::Text, raw),
    };
    (kind, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_content_is_typed_like_the_cloud_api() {
        assert_eq!(
            inbound_content(br#"{"type":"text","text":{"body":"hi"}}"#),
            (MessageKind::Text, "hi".into())
        );
        let image = r#"{"type":"image","image":{"id":"media-1","caption":"my bike"}}"#;
        assert_eq!(
            inbound_content(image.as_bytes()),
            (MessageKind::Image, image.into())
        );
        let reaction = r#"{"type":"reaction","reaction":{"message_id":"wamid.x","emoji":"👍"}}"#;
        assert_eq!(
            inbound_content(reaction.as_bytes()).0,
            MessageKind::Reaction
        );
        assert_eq!(
            inbound_content(b"plain words"),
            (MessageKind::Text, "plain words".into())
        );
        assert_eq!(
            inbound_content(br#"{"type":"hologram"}"#).0,
            MessageKind::Text
        );
        assert_eq!(inbound_content(&[0xff, 0xfe]).0, MessageKind::Text);
    }
}
