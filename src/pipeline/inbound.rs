//! Inbound: envelopes taken from the transport with a lease, recorded before the session moves,
//! decrypted, recorded again and forwarded; retransmission requests and receipts.

use super::*;
use crate::app::{Held, Inbound};
use futures::StreamExt as _;
use sealpost_adapters::vault::SessionSave;

/// A consumer session as stored: the pinned identity key and the session record.
pub(super) struct Link {
    pub(super) identity: Vec<u8>,
    pub(super) session: Session,
}

impl Link {
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.identity.len() + self.session.0.len());
        out.extend_from_slice(&(self.identity.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.identity);
        out.extend_from_slice(&self.session.0);
        out
    }

    pub(super) fn from_bytes(b: &[u8]) -> Option<Self> {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let identity = b.get(4..4 + len)?.to_vec();
        let session = Session(b.get(4 + len..)?.to_vec());
        Some(Self { identity, session })
    }
}

impl Pipeline {
    /// The business of the attached number `handle`.
    pub(super) fn business_at(&self, handle: &str) -> Result<BusinessId, AppError> {
        Ok(self
            .numbers
            .get(handle)
            .ok_or(AppError::NotAttached)?
            .business
            .clone())
    }

    /// Takes what arrived for `handle` in small leased chunks, at least one chunk a step and
    /// more while the step's budget lasts; acknowledges each chunk once recorded.
    pub(super) async fn take_arrivals(
        &mut self,
        handle: &str,
        started: std::time::Instant,
        report: &mut StepReport,
    ) -> Result<(), AppError> {
        loop {
            let envelopes = self.transport.take_inbox(handle, INBOX_CHUNK).await?;
            let more = envelopes.len() == INBOX_CHUNK;
            let mut recorded = Vec::new();
            // Receipts touch one message stream each: recorded concurrently, so the group
            // committer packs them into a few commits. Everything else follows in order.
            let (receipts, others): (Vec<Envelope>, Vec<Envelope>) = envelopes
                .into_iter()
                .partition(|e| matches!(e.payload, Payload::Receipt { .. }));
            // The receipts of one message stay in order (delivered before read).
            let by_message = grouped(receipts.into_iter().filter_map(|e| match &e.payload {
                Payload::Receipt { of, .. } => Some((of.clone(), e)),
                _ => None,
            }));
            let this = &*self;
            // Each entry: the envelopes it settles (a message's receipts are recorded
            // together, or left together) and how it went.
            type Settled = (Vec<String>, Result<StepReport, AppError>);
            // One read of the log for every message the chunk has receipts for.
            let ids: Vec<MessageId> = by_message
                .iter()
                .filter_map(|(of, _)| MessageId::parse(of).ok())
                .collect();
            let business = self.business_at(handle)?;
            let mut held: std::collections::HashMap<MessageId, Result<Held, AppError>> = ids
                .iter()
                .cloned()
                .zip(self.app.messaging().hold_many(&business, &ids).await?)
                .collect();
            let lanes: Vec<_> = by_message
                .into_iter()
                .map(|(of, list)| {
                    let held = MessageId::parse(&of).ok().and_then(|id| held.remove(&id));
                    (held, list)
                })
                .collect();
            let mut results: Vec<Settled> = futures::stream::iter(lanes)
                .map(|(held, list)| async move {
                    let kinds: Vec<Receipt> = list
                        .iter()
                        .filter_map(|e| match e.payload {
                            Payload::Receipt { receipt, .. } => Some(receipt),
                            _ => None,
                        })
                        .collect();
                    let ids = list.into_iter().map(|e| e.id).collect();
                    (ids, this.receipts_on(held, &kinds).await)
                })
                .buffer_unordered(super::CONSUMERS_AT_ONCE * 4)
                .collect()
                .await;
            for envelope in others {
                let id = envelope.id.clone();
                results.push((vec![id], self.inbound(handle, envelope).await));
            }
            for (ids, result) in results {
                match result {
                    Ok(r) => {
                        report.merge(r);
                        recorded.extend(ids);
                    }
                    // Not recorded: the transport hands it out again when its lease ends.
                    Err(e) if transient(&e) => {
                        tracing::warn!(error = %e, "inbound envelope left for a retry")
                    }
                    // One envelope's failure must not hold up the ones after it, nor come back
                    // for ever.
                    Err(e) => {
                        tracing::error!(error = %e, "inbound envelope could not be processed");
                        recorded.extend(ids);
                    }
                }
            }
            // Acknowledged only once recorded: a crash before this redelivers them.
            self.transport.ack(handle, &recorded).await?;
            if !more || started.elapsed() >= self.budget {
                return Ok(());
            }
        }
    }

    /// Handles one envelope addressed to a business number.
    pub(super) async fn inbound(
        &mut self,
        handle: &str,
        envelope: Envelope,
    ) -> Result<StepReport, AppError> {
        match envelope.payload {
            Payload::Receipt { receipt, of } => self.receipts(handle, &of, &[receipt]).await,
            Payload::Retransmit { of } => self.retransmit(handle, &of, &envelope.from).await,
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

    /// Records delivery and read receipts for one of the business's messages, in order, on one
    /// read of its stream.
    pub(super) async fn receipts(
        &self,
        handle: &str,
        of: &str,
        receipts: &[Receipt],
    ) -> Result<StepReport, AppError> {
        let Ok(id) = MessageId::parse(of) else {
            return Ok(StepReport::default());
        };
        let held = self
            .app
            .messaging()
            .hold(&self.business_at(handle)?, &id)
            .await;
        self.receipts_on(Some(held), receipts).await
    }

    /// Records receipts on a message in hand (`None`: the receipt named no message id).
    async fn receipts_on(
        &self,
        held: Option<Result<Held, AppError>>,
        receipts: &[Receipt],
    ) -> Result<StepReport, AppError> {
        let mut held = match held {
            Some(Ok(h)) => h,
            // A receipt for a message this store does not know: ignore it.
            None | Some(Err(AppError::Domain(DomainError::NotFound))) => {
                return Ok(StepReport::default())
            }
            Some(Err(e)) => return Err(e),
        };
        // In a span of the trace that sent the message: the events recorded, and the status
        // webhooks they make, carry that trace on.
        let span = tracing::info_span!("device receipt", otel.kind = "consumer");
        sealpost_adapters::telemetry::continue_trace(&span, held.trace());
        tracing::Instrument::instrument(self.record_receipts(&mut held, receipts), span).await
    }

    async fn record_receipts(
        &self,
        held: &mut Held,
        receipts: &[Receipt],
    ) -> Result<StepReport, AppError> {
        // The number's home is known to the pipeline: no read of its stream per receipt.
        let handle = self.handle_of(held.state().phone_number_id.as_ref())?;
        let number = &self.numbers[&handle];
        let home = (&number.business, number.region);
        let messaging = self.app.messaging();
        let mut report = StepReport::default();
        for receipt in receipts {
            let command = match receipt {
                Receipt::Delivered => MessageCommand::RecordDelivered,
                Receipt::Read => MessageCommand::RecordRead,
            };
            let events = messaging.record_held(held, home, command).await?;
            report.receipts += u64::from(!events.is_empty());
            if !events.is_empty() {
                let status = match receipt {
                    Receipt::Delivered => "delivered",
                    Receipt::Read => "read",
                };
                crate::metrics::metrics().messages(status, 1);
            }
        }
        Ok(report)
    }

    /// A device asks for a message again: only the message's own consumer may, and only for an
    /// outbound message.
    pub(super) async fn retransmit(
        &mut self,
        handle: &str,
        of: &str,
        requester: &Address,
    ) -> Result<StepReport, AppError> {
        let Ok(id) = MessageId::parse(of) else {
            return Ok(StepReport::default());
        };
        let business = self.business_at(handle)?;
        let message = match self.app.messaging().message(&business, &id).await {
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
            .subjects()
            .read_phone(&principal(), Purpose::Delivery, &business, &subject)
            .await?
        {
            Opened::Plain(phone) if phone == requester.handle => {
                self.retransmit_now(&business, &id).await
            }
            // Its keys are gone: the hand-over records the refusal.
            Opened::Shredded => self.retransmit_now(&business, &id).await,
            Opened::Plain(_) => {
                tracing::warn!("retransmission requested by a device that is not the recipient");
                Ok(StepReport::default())
            }
        }
    }

    pub(super) async fn receive(
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
            let n = self.numbers.get(handle).ok_or(AppError::NotAttached)?;
            (n.id.clone(), n.business.clone(), n.region)
        };
        // The sender's number and, once decrypted, the content are in memory until it returns.
        let _in_use = self.app.transit().hold(region);
        let vault = self.app.store().vault().clone();
        let (subject, subject_state) = self
            .app
            .subjects()
            .subject_loaded(&business, region, &phone)
            .await?;
        let id = vault
            .inbound_message_id(business.as_str(), region, &subject, envelope_id)
            .await?
            .ok_or(AppError::KeyMissing("subject key missing"))?;
        let (new, mut inbound) = self
            .app
            .messaging()
            .receive_ciphertext(
                (&business, region),
                &number_id,
                (subject.clone(), subject_state),
                &id,
                ciphertext,
                Some(envelope_id),
            )
            .await?;
        if !new {
            match inbound.status() {
                // A crash left it undecrypted: decrypt it now.
                Some(MessageStatus::Received) => {}
                // A crash left it decrypted but not handed to the business: finish that.
                Some(MessageStatus::Decrypted) => {
                    self.app.messaging().forward_inbound(&mut inbound).await?;
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
        let number = self.numbers.get_mut(handle).ok_or(AppError::NotAttached)?;
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
                    .messaging()
                    .record(
                        &business,
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
            .record_received(handle, &mut inbound, &decrypted, from.device)
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
    pub(super) async fn record_received(
        &mut self,
        handle: &str,
        inbound: &mut Inbound,
        decrypted: &sealpost_domain::ports::signal::Decrypted,
        device: u8,
    ) -> Result<StepReport, AppError> {
        let (number_id, business, region) = {
            let n = self.numbers.get(handle).ok_or(AppError::NotAttached)?;
            (n.id.clone(), n.business.clone(), n.region)
        };
        let subject = inbound.subject_id().clone();
        let mut report = StepReport {
            received: 1,
            ..StepReport::default()
        };
        if decrypted.identity_changed {
            self.app
                .messaging()
                .record_identity_change(inbound, &principal())
                .await?;
            report.identity_changes = 1;
        }
        // What the device sent, parsed once into typed content (anything unreadable is text).
        let content = sealpost_domain::MessageContent::from_bytes(&decrypted.plaintext);
        self.app
            .messaging()
            .record_decrypted(inbound, content, None)
            .await?;
        let vault = self.app.store().vault().clone();
        let number = self.numbers.get_mut(handle).ok_or(AppError::NotAttached)?;
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
        let session = stored.to_bytes();
        let save = SessionSave {
            business: business.as_str(),
            region,
            subject: &subject,
            device,
            session: &session,
        };
        vault
            .save_sessions(&[save], self.app.now(), self.fence.as_ref())
            .await?;
        Ok(report)
    }
}
