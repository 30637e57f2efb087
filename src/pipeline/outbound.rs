//! Outbound: encrypt an accepted message for the consumer's device, hand it to the transport,
//! retry with backoff, give up when its keys expire; read receipts to the device.

use super::handover::Job;
use super::*;

/// A hand-off to try again: the job (its position keeps the durable checkpoint before it while
/// the retry is pending, so a restart retries it) and when.
#[derive(Debug, Clone)]
pub(super) struct Retry {
    pub(super) job: Job,
    pub(super) due: Timestamp,
}

impl Pipeline {
    pub(super) async fn fail(&self, job: &Job, code: u32) -> Result<StepReport, AppError> {
        let events = self
            .app
            .messaging()
            .record(
                &job.business,
                &job.id,
                MessageCommand::RecordFailed { code },
            )
            .await?;
        if !events.is_empty() {
            crate::metrics::metrics().failed(code);
        }
        Ok(StepReport {
            failed: 1,
            ..StepReport::default()
        })
    }

    /// A delivery that cannot happen: the message fails; a retransmission that cannot happen is
    /// a recorded refusal instead (the message was delivered once already).
    pub(super) async fn give_up(
        &self,
        job: &Job,
        code: u32,
        retransmission: bool,
    ) -> Result<StepReport, AppError> {
        if retransmission {
            let events = self
                .app
                .messaging()
                .record(&job.business, &job.id, MessageCommand::RefuseRetransmission)
                .await?;
            return Ok(StepReport {
                refused: u64::from(!events.is_empty()),
                ..StepReport::default()
            });
        }
        self.fail(job, code).await
    }

    /// Encrypts and hands one outbound message to the transport again, on its device's
    /// request (a batch of one: see [`Pipeline::hand_over`]). A retransmission is never
    /// retried, so its job holds no log position.
    pub(super) async fn retransmit_now(
        &mut self,
        business: &BusinessId,
        id: &MessageId,
    ) -> Result<StepReport, AppError> {
        let job = Job {
            business: business.clone(),
            id: id.clone(),
            attempt: 0,
            position: 0,
            trace: None,
        };
        self.hand_over(vec![job], true).await
    }

    /// Sends the business's read receipt for an inbound message back to the consumer's device.
    pub(super) async fn forward_read(
        &mut self,
        business: &BusinessId,
        id: &MessageId,
    ) -> Result<StepReport, AppError> {
        let Some((subject, envelope_id)) = self
            .app
            .messaging()
            .inbound_envelope(&principal(), Purpose::Delivery, business, id)
            .await?
        else {
            return Ok(StepReport::default());
        };
        let Opened::Plain(phone) = self
            .app
            .subjects()
            .read_phone(&principal(), Purpose::Delivery, business, &subject)
            .await?
        else {
            return Ok(StepReport::default());
        };
        let number_id = self
            .app
            .messaging()
            .message(business, id)
            .await?
            .phone_number_id;
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

    /// A hand-off the transport could not take now: a retry with backoff, unless the keys
    /// expire first (then it fails). A retransmission is not retried: the device asks again.
    pub(super) async fn pending_retry(
        &self,
        job: Job,
        error: TransportError,
        retransmission: bool,
    ) -> Result<(StepReport, Option<Retry>), AppError> {
        if retransmission {
            tracing::warn!(error = %error, "retransmission could not be handed to the transport");
            return Ok((StepReport::default(), None));
        }
        let now = self.app.now();
        let message = self.app.messaging().message(&job.business, &job.id).await?;
        let expiry = message.epoch.map(|e| self.app.policy().expiry_of(e));
        if expiry.is_some_and(|x| now >= x) {
            return Ok((self.fail(&job, 131_026).await?, None));
        }
        let backoff = RETRY_BASE_MS
            .saturating_mul(1i64 << job.attempt.min(20))
            .min(RETRY_MAX_MS);
        let jitter = rand::rng().random_range(0..=backoff / 2);
        tracing::warn!(attempt = job.attempt, error = %error, "hand-off to the transport failed; retrying later");
        let retry = Retry {
            job: Job {
                attempt: job.attempt + 1,
                ..job
            },
            due: now.plus_millis(backoff + jitter),
        };
        Ok((
            StepReport {
                retries_scheduled: 1,
                ..StepReport::default()
            },
            Some(retry),
        ))
    }

    /// Hands over, as one batch, the retries that are due. On an error none is lost: they all
    /// stay pending (any already handed over is recognised as sent next time).
    pub(super) async fn run_due_retries(&mut self) -> Result<StepReport, AppError> {
        let now = self.app.now();
        let (due, later): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retries = later;
        if due.is_empty() {
            return Ok(StepReport::default());
        }
        let jobs = due.iter().map(|r| r.job.clone()).collect();
        match self.hand_over(jobs, false).await {
            Ok(report) => Ok(report),
            Err(e) => {
                self.retries.extend(due);
                Err(e)
            }
        }
    }
}
