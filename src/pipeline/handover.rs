//! The outbound hand-off, a batch at a time (ADR 0012): messages are read in one query, grouped
//! by consumer so each Signal session is loaded once and advanced by one task, the sessions of
//! the whole batch are written in one key-store transaction before anything reaches the
//! transport, and the hand-overs are recorded concurrently so the group committer packs them
//! into a few durable commits.

use super::*;
use crate::app::Held;
use futures::{StreamExt as _, TryStreamExt as _};
use sealpost_adapters::vault::{SessionSave, VaultError};
use sealpost_domain::{Direction, SubjectId};

/// How many consumers are worked on at once (each consumer's messages in order, by one task);
/// records are settled `4 × CONSUMERS_AT_ONCE` at a time.
pub const CONSUMERS_AT_ONCE: usize = 16;

/// One message to hand over: which, its attempt, and where its acceptance is in the log (the
/// checkpoint stays before it while a retry is pending).
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) business: BusinessId,
    pub(super) id: MessageId,
    pub(super) attempt: u32,
    pub(super) position: u64,
    /// The trace context of the request that accepted the message (its event's metadata):
    /// the hand-off is a span of the same trace.
    pub(super) trace: Option<String>,
}

/// Whether a message's media failed for good: gone (deleted or expired), not the message's
/// business's, refused by the gate, or never to open (corrupt, its keys destroyed). No retry
/// would deliver it.
fn media_gone(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Domain(DomainError::NotFound)
            | AppError::Gate(sealpost_audit::GateError::Denied(_))
            | AppError::Corrupt(_)
            | AppError::Vault(
                VaultError::Crypto(_) | VaultError::KeyDestroyed | VaultError::KeyMissing
            )
    )
}

/// A message read and ready to encrypt.
struct Ready {
    job: Job,
    held: Held,
    home: (BusinessId, Region),
    handle: String,
}

/// What became of a message in the batch, settled after the transport has been called.
enum Settle {
    /// Handed to the transport: record it.
    HandedOver(Box<Ready>),
    /// Undeliverable for good with this code.
    GiveUp(Job, u32),
    /// The transport could not take it now: try again later.
    Retry(Job, TransportError),
}

/// One consumer's share of a batch: its messages encrypted in order on one session.
struct Lane {
    subject: SubjectId,
    home: (BusinessId, Region),
    /// The session after the last message (to be saved before any envelope leaves).
    link: Option<Link>,
    envelopes: Vec<(Ready, Envelope)>,
    settled: Vec<Settle>,
    /// The consumer's number is in memory (in the envelopes) until the lane is sent.
    _in_use: crate::app::transit::InUse,
}

impl Lane {
    fn save<'a>(&'a self, session: &'a [u8]) -> SessionSave<'a> {
        SessionSave {
            business: self.home.0.as_str(),
            region: self.home.1,
            subject: &self.subject,
            device: CONSUMER_DEVICE,
            session,
        }
    }
}

impl Pipeline {
    /// Hands a batch of accepted (or, with `retransmission`, requested) messages to the
    /// transport. An `Err` is the store's passing trouble: nothing of the batch was handed
    /// over that is not recorded or recognised as sent when the batch is tried again.
    pub(super) async fn hand_over(
        &mut self,
        jobs: Vec<Job>,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        let mut report = StepReport::default();
        // One read of the log per business of the batch (a lane serves several).
        let mut held = std::collections::HashMap::with_capacity(jobs.len());
        for (business, ids) in grouped(jobs.iter().map(|j| (j.business.clone(), j.id.clone()))) {
            let found = self.app.messaging().hold_many(&business, &ids).await?;
            held.extend(ids.into_iter().zip(found));
        }
        let mut ready = Vec::new();
        let mut settled = Vec::new();
        for job in jobs {
            let held = match held.remove(&job.id) {
                Some(Ok(h)) => h,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "outbound message could not be delivered");
                    settled.push(Settle::GiveUp(job, 131_000));
                    continue;
                }
                None => {
                    tracing::error!("outbound message could not be delivered: not read");
                    settled.push(Settle::GiveUp(job, 131_000));
                    continue;
                }
            };
            match self.ready(job, held, retransmission) {
                Ok(Some(lane_and_message)) => ready.push(lane_and_message),
                Ok(None) => {}
                Err(failed) => {
                    let (job, e) = *failed;
                    tracing::error!(error = %e, "outbound message could not be delivered");
                    settled.push(Settle::GiveUp(job, 131_000));
                }
            }
        }
        let this = &*self;
        let lanes: Vec<Lane> = futures::stream::iter(grouped(ready))
            .map(|(subject, ready)| this.encrypt_lane(subject, ready))
            .buffer_unordered(CONSUMERS_AT_ONCE)
            .try_collect()
            .await?;
        let saved = self.save_links(&lanes).await?;
        for (lane, saved) in lanes.into_iter().zip(saved) {
            settled.extend(lane.settled);
            for (ready, envelope) in lane.envelopes {
                if !saved {
                    // Erased while the batch was under way: nothing may leave for them.
                    settled.push(Settle::GiveUp(ready.job, 131_026));
                    continue;
                }
                settled.push(match self.transport.send(envelope).await {
                    Ok(()) => Settle::HandedOver(Box::new(ready)),
                    Err(TransportError::UnknownRecipient) => Settle::GiveUp(ready.job, 131_026),
                    Err(TransportError::Throttled) => Settle::GiveUp(ready.job, 131_048),
                    Err(e) => Settle::Retry(ready.job, e),
                });
            }
        }
        let this = &*self;
        let outcomes: Vec<Result<(StepReport, Option<Retry>), AppError>> =
            futures::stream::iter(settled)
                .map(|s| this.settle(s, retransmission))
                .buffer_unordered(CONSUMERS_AT_ONCE * 4)
                .collect()
                .await;
        let mut retries = Vec::new();
        for o in outcomes {
            // On an error the whole batch is tried again, so none of its retries is kept.
            let (r, retry) = o?;
            report.merge(r);
            retries.extend(retry);
        }
        self.retries.extend(retries);
        Ok(report)
    }

    /// Records what became of one message, in a span of the trace that accepted it (so the
    /// event recorded, and the webhook it makes, carry that trace on).
    async fn settle(
        &self,
        settle: Settle,
        retransmission: bool,
    ) -> Result<(StepReport, Option<Retry>), AppError> {
        let job = match &settle {
            Settle::HandedOver(ready) => &ready.job,
            Settle::GiveUp(job, _) | Settle::Retry(job, _) => job,
        };
        let span = tracing::info_span!(
            "pipeline hand-off",
            otel.kind = "consumer",
            attempt = job.attempt
        );
        sealpost_adapters::telemetry::continue_trace(&span, job.trace.as_deref());
        tracing::Instrument::instrument(self.settle_in_span(settle, retransmission), span).await
    }

    async fn settle_in_span(
        &self,
        settle: Settle,
        retransmission: bool,
    ) -> Result<(StepReport, Option<Retry>), AppError> {
        match settle {
            Settle::HandedOver(mut ready) => Ok((
                self.record_hand_over(&mut ready, retransmission).await?,
                None,
            )),
            Settle::GiveUp(job, code) => {
                Ok((self.give_up(&job, code, retransmission).await?, None))
            }
            Settle::Retry(job, e) => self.pending_retry(job, e, retransmission).await,
        }
    }

    /// Checks a held message and finds where it goes; `None` when there is nothing to do (it
    /// was handed over already: a replay after a restart).
    #[allow(clippy::type_complexity)]
    fn ready(
        &self,
        job: Job,
        held: Held,
        retransmission: bool,
    ) -> Result<Option<(SubjectId, Ready)>, Box<(Job, AppError)>> {
        let message = held.state();
        let Some(status) = message.status else {
            return Err(Box::new((job, DomainError::NotFound.into())));
        };
        if !retransmission && status >= MessageStatus::Sent {
            return Ok(None);
        }
        if message.direction != Some(Direction::Outbound) {
            return Ok(None);
        }
        let (Some(subject), Some(number_id)) =
            (message.subject_id.clone(), message.phone_number_id.clone())
        else {
            return Err(Box::new((
                job,
                AppError::Incomplete("message without subject or number"),
            )));
        };
        let handle = match self.handle_of(Some(&number_id)) {
            Ok(h) => h,
            Err(e) => return Err(Box::new((job, e))),
        };
        let number = &self.numbers[&handle];
        let home = (number.business.clone(), number.region);
        Ok(Some((
            subject,
            Ready {
                job,
                held,
                home,
                handle,
            },
        )))
    }

    /// One consumer's messages: the number read once, the session loaded once (or started from
    /// a bundle), each message encrypted in turn.
    async fn encrypt_lane(&self, subject: SubjectId, ready: Vec<Ready>) -> Result<Lane, AppError> {
        let home = ready[0].home.clone();
        let mut lane = Lane {
            subject,
            // The consumer's number and the messages' content are in memory until it is sent.
            _in_use: self.app.transit().hold(home.1),
            home,
            link: None,
            envelopes: Vec::new(),
            settled: Vec::new(),
        };
        let give_up_all = |lane: &mut Lane, ready: Vec<Ready>, code| {
            lane.settled
                .extend(ready.into_iter().map(|r| Settle::GiveUp(r.job, code)));
        };
        let phone = self
            .app
            .subjects()
            .read_phone(&principal(), Purpose::Delivery, &lane.home.0, &lane.subject)
            .await?;
        let Opened::Plain(phone) = phone else {
            // The keys are gone (retention or erasure): nothing can be sent any more.
            give_up_all(&mut lane, ready, 131_026);
            return Ok(lane);
        };
        let (business, region) = (&lane.home.0, lane.home.1);
        let stored = self
            .app
            .store()
            .vault()
            .load_session(business.as_str(), region, &lane.subject, CONSUMER_DEVICE)
            .await?;
        let mut link = match stored {
            Opened::Shredded => {
                give_up_all(&mut lane, ready, 131_026);
                return Ok(lane);
            }
            Opened::Plain(bytes) => bytes.and_then(|b| Link::from_bytes(&b)),
        };
        let mut bundle = None;
        if link.is_none() {
            match self.transport.fetch_bundle(&phone, CONSUMER_DEVICE).await {
                Ok(Some(b)) => bundle = Some(b),
                Ok(None) => {
                    give_up_all(&mut lane, ready, 131_026);
                    return Ok(lane);
                }
                Err(e) => {
                    lane.settled
                        .extend(ready.into_iter().map(|r| Settle::Retry(r.job, e.clone())));
                    return Ok(lane);
                }
            }
        }
        let peer = Peer {
            name: phone.clone(),
            device: CONSUMER_DEVICE,
        };
        for r in ready {
            let content = self
                .app
                .messaging()
                .read_held_content(&principal(), Purpose::Delivery, &r.held)
                .await?;
            let Opened::Plain(content) = content else {
                lane.settled.push(Settle::GiveUp(r.job, 131_026));
                continue;
            };
            // A message sent by media id names the object; the device gets its bytes.
            let content = match self
                .app
                .media()
                .inline_attachment(&principal(), &lane.home.0, content)
                .await
            {
                Ok(c) => c,
                // Anything but a failure for good (the store's trouble, a conflict): the batch
                // is tried again.
                Err(e) if !media_gone(&e) => return Err(e),
                Err(e) => {
                    if !matches!(e, AppError::Domain(DomainError::NotFound)) {
                        tracing::error!(error = %e, "a message's media will not open; it fails");
                    }
                    lane.settled.push(Settle::GiveUp(r.job, 131_053));
                    continue;
                }
            };
            let number = self.numbers.get(&r.handle).ok_or(AppError::NotAttached)?;
            let encrypted = match self.engine.encrypt(
                &number.account,
                &peer,
                link.as_ref().map(|l| &l.session),
                bundle.as_ref().filter(|_| link.is_none()),
                link.as_ref().map(|l| l.identity.as_slice()),
                &content.to_bytes(),
                self.app.now(),
            ) {
                Ok(e) => e,
                Err(SignalError::InvalidBundle) => {
                    lane.settled.push(Settle::GiveUp(r.job, 131_026));
                    continue;
                }
                Err(e) => return Err(AppError::Signal(e)),
            };
            link = Some(Link {
                identity: encrypted.peer_identity.clone(),
                session: encrypted.session.clone(),
            });
            let envelope = Envelope {
                id: r.job.id.as_str().to_owned(),
                from: Address {
                    handle: r.handle.clone(),
                    device: 1,
                },
                to: Address {
                    handle: phone.clone(),
                    device: CONSUMER_DEVICE,
                },
                payload: Payload::Message {
                    ciphertext: encrypted.ciphertext,
                },
            };
            lane.envelopes.push((r, envelope));
        }
        if !lane.envelopes.is_empty() {
            lane.link = link;
        }
        Ok(lane)
    }

    /// Writes the sessions the batch moved, in one key-store transaction, before any envelope
    /// leaves: a crash after it re-encrypts from the newer session, never the older one (which
    /// would repeat a message key). Returns, per lane, whether its session is saved: a consumer
    /// erased meanwhile fails its own lane, not the batch.
    async fn save_links(&self, lanes: &[Lane]) -> Result<Vec<bool>, AppError> {
        let vault = self.app.store().vault();
        let bytes: Vec<Option<zeroize::Zeroizing<Vec<u8>>>> = lanes
            .iter()
            .map(|l| {
                l.link
                    .as_ref()
                    .map(|k| zeroize::Zeroizing::new(k.to_bytes()))
            })
            .collect();
        let all: Vec<SessionSave> = lanes
            .iter()
            .zip(&bytes)
            .filter_map(|(l, b)| Some(l.save(b.as_ref()?)))
            .collect();
        match vault
            .save_sessions(&all, self.app.now(), self.fence.as_ref())
            .await
        {
            Ok(()) => return Ok(vec![true; lanes.len()]),
            Err(VaultError::KeyDestroyed) => {}
            Err(e) => return Err(e.into()),
        }
        let mut saved = Vec::with_capacity(lanes.len());
        for (lane, b) in lanes.iter().zip(&bytes) {
            let Some(b) = b else {
                saved.push(true);
                continue;
            };
            match vault
                .save_sessions(&[lane.save(b)], self.app.now(), self.fence.as_ref())
                .await
            {
                Ok(()) => saved.push(true),
                Err(VaultError::KeyDestroyed) => saved.push(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(saved)
    }

    /// Records a message taken by the transport: encrypted and sent in one command, or a
    /// retransmission.
    async fn record_hand_over(
        &self,
        ready: &mut Ready,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        let command = if retransmission {
            MessageCommand::RecordRetransmitted
        } else {
            MessageCommand::RecordHandedOver
        };
        let home = (&ready.home.0, ready.home.1);
        self.app
            .messaging()
            .record_held(&mut ready.held, home, command)
            .await?;
        if !retransmission {
            crate::metrics::metrics().messages("sent", 1);
        }
        Ok(if retransmission {
            StepReport {
                retransmitted: 1,
                ..StepReport::default()
            }
        } else {
            StepReport {
                sent: 1,
                ..StepReport::default()
            }
        })
    }
}
