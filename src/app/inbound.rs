//! Inbound messages: the ciphertext recorded, what decrypting it produced, the hand-over to the
//! business and the service window it opens. An [`Inbound`] carries the message's and the
//! subject's streams, each loaded once, through the commands that record one message.

use super::*;
use sealpost_adapters::exec::Loaded;
use sealpost_domain::time::EpochId;
use sealpost_domain::{MessageContent, MessageStatus};

/// An inbound message in hand: where it belongs, and its message and subject streams as loaded
/// (and kept current by each command it goes through).
#[derive(Debug)]
pub struct Inbound {
    /// The message.
    pub id: MessageId,
    business: BusinessId,
    region: Region,
    number: PhoneNumberId,
    subject_id: SubjectId,
    message: Loaded<Message>,
    subject: Loaded<Subject>,
}

impl Inbound {
    /// Where the message is in its life (`None` before its first event).
    pub fn status(&self) -> Option<MessageStatus> {
        self.message.state.status
    }

    /// The consumer it came from.
    pub fn subject_id(&self) -> &SubjectId {
        &self.subject_id
    }

    fn epoch(&self) -> Result<EpochId, AppError> {
        self.message
            .state
            .epoch
            .ok_or(AppError::Incomplete("inbound message without epoch"))
    }

    fn meta(&self, actor: &Principal) -> Result<CommandMeta, AppError> {
        Ok(CommandMeta::new(self.business.as_str(), self.region, actor).with_epoch(self.epoch()?))
    }

    fn scope(&self) -> Result<FieldScope, AppError> {
        Ok(FieldScope::Message {
            epoch: self.epoch()?,
            subject: self.subject_id.clone(),
            message: self.id.clone(),
        })
    }
}

/// The principal inbound messages are recorded as.
fn recorder() -> Principal {
    Principal::processor("inbound")
}

impl Messaging<'_> {
    /// Records the ciphertext of an inbound message (sealed under the message key) for a number
    /// whose business and region (`home`) the caller knows, to a subject it has loaded. Returns
    /// whether it was new (`false`: the message id is known, a redelivery) and the message in
    /// hand for the commands that follow.
    pub async fn receive_ciphertext(
        &self,
        home: (&BusinessId, Region),
        phone_number_id: &PhoneNumberId,
        subject: (SubjectId, Loaded<Subject>),
        message_id: &MessageId,
        ciphertext: &[u8],
        envelope_id: Option<&str>,
    ) -> Result<(bool, Inbound), AppError> {
        let (business, region) = home;
        let now = self.now();
        let epoch = self.policy.epoch_of(now);
        let scope = FieldScope::Message {
            epoch,
            subject: subject.0.clone(),
            message: message_id.clone(),
        };
        let meta = CommandMeta::new(business.as_str(), region, &recorder()).with_epoch(epoch);
        let sealed_ct = self
            .seal_message_field(business, region, &scope, fields::CIPHERTEXT, ciphertext)
            .await?;
        let envelope = match envelope_id {
            Some(e) => Some(
                self.seal_message_field(business, region, &scope, fields::ENVELOPE, e.as_bytes())
                    .await?,
            ),
            None => None,
        };
        let header = InboundHeader {
            message_id: message_id.clone(),
            business_id: business.clone(),
            phone_number_id: phone_number_id.clone(),
            subject_id: subject.0.clone(),
            epoch,
        };
        let mut message = self
            .exec
            .loaded::<Message>(business.as_str(), message_id.as_str())
            .await?;
        let events = self
            .exec
            .execute_on(
                message_id.as_str(),
                &mut message,
                MessageCommand::ReceiveInbound {
                    header,
                    ciphertext: sealed_ct,
                    envelope,
                },
                &meta,
                now,
            )
            .await?;
        let inbound = Inbound {
            id: message_id.clone(),
            business: business.clone(),
            region,
            number: phone_number_id.clone(),
            subject_id: subject.0,
            message,
            subject: subject.1,
        };
        Ok((!events.is_empty(), inbound))
    }

    /// Records that the consumer's identity key changed (a new install): the subject's event.
    pub async fn record_identity_change(
        &self,
        inbound: &mut Inbound,
        actor: &Principal,
    ) -> Result<(), AppError> {
        let meta = CommandMeta::new(inbound.business.as_str(), inbound.region, actor);
        self.exec
            .execute_on(
                inbound.subject_id.as_str(),
                &mut inbound.subject,
                SubjectCommand::RecordIdentityChange,
                &meta,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// Records what decrypting an inbound message produced (sealed under the message key),
    /// queues it for the business, and opens or extends the subject's service window.
    pub async fn record_decrypted(
        &self,
        inbound: &mut Inbound,
        content: MessageContent,
        profile_name: Option<&str>,
    ) -> Result<(), AppError> {
        let content = self
            .media()
            .ingest_inbound_media(
                &inbound.business,
                &inbound.number,
                &inbound.subject_id,
                content,
            )
            .await?;
        let kind = content.kind();
        let scope = inbound.scope()?;
        let (business, region) = (inbound.business.clone(), inbound.region);
        let (content, profile_name) = self
            .seal_message(
                &business,
                region,
                &scope,
                &content,
                fields::PROFILE_NAME,
                profile_name,
            )
            .await?;
        let meta = inbound.meta(&recorder())?;
        self.exec
            .execute_on(
                inbound.id.as_str(),
                &mut inbound.message,
                MessageCommand::RecordDecrypted {
                    kind,
                    content,
                    profile_name,
                },
                &meta,
                self.now(),
            )
            .await?;
        self.forward_inbound(inbound).await
    }

    /// Queues a decrypted inbound message for the business and opens or extends the subject's
    /// service window. Also what finishes a message a crash left decrypted but not forwarded.
    pub async fn forward_inbound(&self, inbound: &mut Inbound) -> Result<(), AppError> {
        let now = self.now();
        let meta = inbound.meta(&recorder())?;
        self.exec
            .execute_on(
                inbound.id.as_str(),
                &mut inbound.message,
                MessageCommand::RecordForwarded,
                &meta,
                now,
            )
            .await?;
        let subject_meta = CommandMeta::new(inbound.business.as_str(), inbound.region, &recorder());
        self.exec
            .execute_on(
                inbound.subject_id.as_str(),
                &mut inbound.subject,
                SubjectCommand::RecordInboundActivity,
                &subject_meta,
                now,
            )
            .await?;
        Ok(())
    }
}
