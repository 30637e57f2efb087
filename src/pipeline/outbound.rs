//! Outbound: encrypt an accepted message for the consumer's device, hand it to the transport,
//! retry with backoff, give up when its keys expire; read receipts to the device.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Retry {
    pub(super) message: MessageId,
    pub(super) attempt: u32,
    pub(super) due: Timestamp,
    /// The log position of the message's acceptance: the durable checkpoint stays before it
    /// while the retry is pending, so a restart retries it.
    pub(super) position: u64,
}

impl Pipeline {
    pub(super) async fn fail(&self, id: &MessageId, code: u32) -> Result<StepReport, AppError> {
        self.app
            .messaging()
            .record(id, MessageCommand::RecordFailed { code })
            .await?;
        Ok(StepReport {
            failed: 1,
            ..StepReport::default()
        })
    }

    /// A delivery that cannot happen: the message fails; a retransmission that cannot happen is
    /// a recorded refusal instead (the message was delivered once already).
    pub(super) async fn give_up(
        &self,
        id: &MessageId,
        code: u32,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        if retransmission {
            let events = self
                .app
                .messaging()
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
    pub(super) async fn deliver(
        &mut self,
        id: &MessageId,
        attempt: u32,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        let mut held = self.app.messaging().hold(id).await?;
        let message = held.state();
        let status = message.status.ok_or(DomainError::NotFound)?;
        if !retransmission && status >= MessageStatus::Sent {
            return Ok(StepReport::default()); // already handed over (a replay after restart)
        }
        let (Some(subject), Some(number_id)) =
            (message.subject_id.clone(), message.phone_number_id.clone())
        else {
            return Err(AppError::Incomplete("message without subject or number"));
        };
        let handle = self.handle_of(Some(&number_id))?;
        let content = self
            .app
            .messaging()
            .read_held_content(&principal(), Purpose::Delivery, &held)
            .await?;
        let phone = self
            .app
            .subjects()
            .read_phone(&principal(), Purpose::Delivery, &subject)
            .await?;
        let (Opened::Plain(content), Opened::Plain(phone)) = (content, phone) else {
            // The keys are gone (retention or erasure): nothing can be sent any more.
            return self.give_up(id, 131_026, retransmission).await;
        };
        let number = self.numbers.get(&handle).ok_or(AppError::NotAttached)?;
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
            &content.to_bytes(),
            self.app.now(),
        ) {
            Ok(e) => e,
            Err(SignalError::InvalidBundle) => {
                return self.give_up(id, 131_026, retransmission).await
            }
            Err(e) => return Err(AppError::Signal(e)),
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
            self.app
                .messaging()
                .record_held(
                    &mut held,
                    (&business, region),
                    MessageCommand::RecordEncrypted,
                )
                .await?;
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
                    .messaging()
                    .record_held(
                        &mut held,
                        (&business, region),
                        MessageCommand::RecordRetransmitted,
                    )
                    .await?;
                Ok(StepReport {
                    retransmitted: 1,
                    ..StepReport::default()
                })
            }
            Ok(()) => {
                self.app
                    .messaging()
                    .record_held(&mut held, (&business, region), MessageCommand::RecordSent)
                    .await?;
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

    /// Sends the business's read receipt for an inbound message back to the consumer's device.
    pub(super) async fn forward_read(&mut self, id: &MessageId) -> Result<StepReport, AppError> {
        let Some((subject, envelope_id)) = self
            .app
            .messaging()
            .inbound_envelope(&principal(), Purpose::Delivery, id)
            .await?
        else {
            return Ok(StepReport::default());
        };
        let Opened::Plain(phone) = self
            .app
            .subjects()
            .read_phone(&principal(), Purpose::Delivery, &subject)
            .await?
        else {
            return Ok(StepReport::default());
        };
        let number_id = self.app.messaging().message(id).await?.phone_number_id;
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
        self.transport.send(receipt).await?;
        Ok(StepReport {
            reads_forwarded: 1,
            ..StepReport::default()
        })
    }

    pub(super) async fn retry_later(
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
        let message = self.app.messaging().message(id).await?;
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

    pub(super) async fn run_due_retries(&mut self) -> Result<StepReport, AppError> {
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
}
