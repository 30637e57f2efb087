//! Messages: accepted outbound, received and decrypted inbound, their content sealed under the
//! message key and read back only through the access gate.

use super::*;
use sealpost_adapters::exec::Loaded;
use sealpost_domain::MessageContent;

/// A message in hand: its state and its events, read once (see [`Sealpost::hold`]).
#[derive(Debug)]
pub struct Held {
    /// The message.
    pub id: MessageId,
    loaded: sealpost_adapters::exec::Loaded<Message>,
    events: Vec<sealpost_adapters::ledger::OpenedEvent>,
}

impl Held {
    /// A message as read, or `NotFound` when its stream held none.
    fn found(
        id: &MessageId,
        loaded: sealpost_adapters::exec::Loaded<Message>,
        events: Vec<sealpost_adapters::ledger::OpenedEvent>,
    ) -> Result<Self, AppError> {
        loaded.state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(Self {
            id: id.clone(),
            loaded,
            events,
        })
    }

    /// Its non-personal state.
    pub fn state(&self) -> &Message {
        &self.loaded.state
    }

    /// The trace its first recorded event was part of (the request that sent it), as a W3C
    /// `traceparent`: what follows from it (its receipts) continues that trace.
    pub fn trace(&self) -> Option<&str> {
        self.events.iter().find_map(|e| {
            e.metadata
                .get(sealpost_adapters::ledger::meta::TRACEPARENT)
                .map(String::as_str)
        })
    }
}

service! {
    /// Messages, outbound and inbound, over the executor, the sealed store, the access gate and
    /// the clock.
    Messaging<'a> {
        exec: &'a Executor,
        store: &'a Arc<EventStore>,
        gate: &'a Arc<AccessGate>,
        clock: &'a dyn Clock,
        policy: RetentionPolicy,
        transit: &'a Arc<super::transit::Transit>,
    }
    reaches {
        catalog: Catalog { exec, store, clock },
        subjects: Subjects { exec, store, gate, clock },
        media: Media { exec, store, gate, clock, policy, transit },
    }
}

impl Messaging<'_> {
    pub(super) async fn seal_message_field(
        &self,
        business: &BusinessId,
        region: Region,
        scope: &FieldScope,
        field: &str,
        value: &[u8],
    ) -> Result<Sealed, AppError> {
        self.store
            .vault()
            .seal_field(business.as_str(), region, scope, field, value, self.now())
            .await
            .map_err(|e| match e {
                VaultError::KeyDestroyed => AppError::Domain(DomainError::SubjectErased),
                other => AppError::Vault(other),
            })
    }

    /// Seals a message's content and its one optional text field (a send's callback data, an
    /// inbound message's profile name) under the message's scope.
    pub(super) async fn seal_message(
        &self,
        business: &BusinessId,
        region: Region,
        scope: &FieldScope,
        content: &MessageContent,
        field: &str,
        value: Option<&str>,
    ) -> Result<(Sealed, Option<Sealed>), AppError> {
        let content = self
            .seal_message_field(
                business,
                region,
                scope,
                fields::CONTENT,
                &content.to_bytes(),
            )
            .await?;
        let value = match value {
            Some(v) => Some(
                self.seal_message_field(business, region, scope, field, v.as_bytes())
                    .await?,
            ),
            None => None,
        };
        Ok((content, value))
    }

    /// Accepts an outbound message from a business (the business's own principal) to a
    /// consumer number. The content is sealed under the message key before the event exists.
    pub async fn send(
        &self,
        actor: &Principal,
        phone_number_id: &PhoneNumberId,
        to: &E164,
        content: &MessageContent,
        callback_data: Option<&str>,
    ) -> Result<MessageId, AppError> {
        let number = self.catalog().number_for(actor, phone_number_id).await?;
        self.send_on(
            (phone_number_id, &number),
            actor,
            to,
            content,
            callback_data,
        )
        .await
    }

    /// [`Messaging::send`] from a number the caller has loaded already (the HTTP layer's
    /// `OwnedNumber`), so its stream is not read again.
    pub async fn send_on(
        &self,
        (phone_number_id, number): (&PhoneNumberId, &PhoneNumber),
        actor: &Principal,
        to: &E164,
        content: &MessageContent,
        callback_data: Option<&str>,
    ) -> Result<MessageId, AppError> {
        let kind = content.kind();
        let (business, region) = home_of(number)?;
        if actor.business.as_ref() != Some(&business) {
            return Err(GateError::Denied(sealpost_domain::access::DenyReason::NotOwner).into());
        }
        let (subject, loaded) = self
            .subjects()
            .subject_loaded(&business, region, to)
            .await?;
        let subject_state = loaded.state;
        let now = self.now();
        let message_id = MessageId::from_random(random_bytes());
        let epoch = self.policy.epoch_of(now);
        let scope = FieldScope::Message {
            epoch,
            subject: subject.clone(),
            message: message_id.clone(),
        };
        let (content, callback_data) = self
            .seal_message(
                &business,
                region,
                &scope,
                content,
                fields::CALLBACK_DATA,
                callback_data,
            )
            .await?;
        let header = OutboundHeader {
            message_id: message_id.clone(),
            business_id: business.clone(),
            phone_number_id: phone_number_id.clone(),
            subject_id: subject,
            epoch,
            kind,
            category: if kind == MessageKind::Template {
                PricingCategory::Utility
            } else {
                PricingCategory::Service
            },
        };
        let cmd = MessageCommand::AcceptOutbound {
            header,
            content,
            callback_data,
            service_window_open: subject_state.service_window_open(now),
        };
        let meta = CommandMeta::new(business.as_str(), region, actor).with_epoch(epoch);
        // The id was just drawn at random: its stream is empty, so there is nothing to read
        // (were it taken after all, the append conflicts and the executor reads it then).
        let mut fresh = Loaded::<Message>::default();
        self.exec
            .execute_on(message_id.as_str(), &mut fresh, cmd, &meta, now)
            .await?;
        Ok(message_id)
    }

    /// Records a lifecycle step of a message (sent, delivered, read, failed …): [`Sealpost::hold`]
    /// and [`Sealpost::record_held`], so its stream is read once.
    pub async fn record(
        &self,
        business: &BusinessId,
        message_id: &MessageId,
        command: MessageCommand,
    ) -> Result<Vec<MessageEvent>, AppError> {
        let mut held = self.hold(business, message_id).await?;
        let number = held
            .state()
            .phone_number_id
            .clone()
            .ok_or(AppError::Incomplete("message without number"))?;
        let region = self
            .catalog()
            .phone_number(business, &number)
            .await?
            .storage_region()
            .ok_or(AppError::Incomplete("phone number without region"))?;
        self.record_held(&mut held, (business, region), command)
            .await
    }

    /// The non-personal state (status, type, epoch) of a message of `business`: readable after
    /// shredding.
    pub async fn message(
        &self,
        business: &BusinessId,
        id: &MessageId,
    ) -> Result<Message, AppError> {
        let (state, _) = self
            .exec
            .load::<Message>(business.as_str(), id.as_str())
            .await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// The consumer and the transport's envelope id of an inbound message, read through the
    /// gate (recorded): where the business's read receipt goes. `None` for messages recorded
    /// without one, or once the message's keys are gone.
    pub async fn inbound_envelope(
        &self,
        principal: &Principal,
        purpose: Purpose,
        business: &BusinessId,
        id: &MessageId,
    ) -> Result<Option<(SubjectId, String)>, AppError> {
        let events = self
            .store
            .read_stream(&StreamId::new(business.as_str(), "message", id.as_str()), 0)
            .await?;
        for e in events {
            let region = region_of(&e)?;
            if let MessageEvent::InboundMessageReceived {
                header,
                envelope: Some(envelope),
                ..
            } = e.decode::<MessageEvent>()?
            {
                let scope = FieldScope::Message {
                    epoch: header.epoch,
                    subject: header.subject_id.clone(),
                    message: id.clone(),
                };
                let field = FieldRef {
                    scope,
                    field: fields::ENVELOPE,
                    sealed: &envelope,
                };
                let opened = open_content(
                    self.gate,
                    principal,
                    purpose,
                    &header.business_id,
                    region,
                    id.as_str(),
                    field,
                )
                .await?;
                return Ok(text(opened, "envelope id is not UTF-8")?
                    .plain()
                    .map(|env| (header.subject_id, env)));
            }
        }
        Ok(None)
    }

    /// Reads a message's content through the access gate: the plaintext, `Shredded` once its
    /// keys are gone, or a recorded denial.
    pub async fn read_content(
        &self,
        principal: &Principal,
        purpose: Purpose,
        business: &BusinessId,
        id: &MessageId,
    ) -> Result<Opened<MessageContent>, AppError> {
        let held = self.hold(business, id).await?;
        self.read_held_content(principal, purpose, &held).await
    }

    /// The business message `id` belongs to, found across businesses: for the evidence routes
    /// that name a message alone, where the gate then decides (and records) whether the asker
    /// may read it, whoever asks (ADR 0018). The message path never needs it.
    pub async fn find_business(&self, id: &MessageId) -> Result<BusinessId, AppError> {
        super::owner_of::<Message>(self.exec, id.as_str()).await
    }

    /// A message in hand: its stream read once, for reading its content and recording the
    /// steps of one operation on it.
    pub async fn hold(&self, business: &BusinessId, id: &MessageId) -> Result<Held, AppError> {
        let (loaded, events) = self
            .exec
            .loaded_with_events::<Message>(business.as_str(), id.as_str())
            .await?;
        Held::found(id, loaded, events)
    }

    /// [`Messaging::hold`] for several messages of `business`, in one read of the log; in the order of `ids`,
    /// each `NotFound` if there is no such message.
    pub async fn hold_many(
        &self,
        business: &BusinessId,
        ids: &[MessageId],
    ) -> Result<Vec<Result<Held, AppError>>, AppError> {
        let keys: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
        let loaded = self
            .exec
            .loaded_many::<Message>(business.as_str(), &keys)
            .await?;
        Ok(ids
            .iter()
            .zip(loaded)
            .map(|(id, (loaded, events))| Held::found(id, loaded, events))
            .collect())
    }

    /// Records a step of a message in hand, for a number whose business and region (`home`)
    /// the caller knows.
    pub async fn record_held(
        &self,
        held: &mut Held,
        home: (&BusinessId, Region),
        command: MessageCommand,
    ) -> Result<Vec<MessageEvent>, AppError> {
        let mut meta = CommandMeta::new(home.0.as_str(), home.1, &Principal::processor("delivery"));
        if let Some(e) = held.loaded.state.epoch {
            meta = meta.with_epoch(e);
        }
        Ok(self
            .exec
            .execute_on(
                held.id.as_str(),
                &mut held.loaded,
                command,
                &meta,
                self.now(),
            )
            .await?)
    }

    /// [`Sealpost::read_content`] of a message in hand.
    pub async fn read_held_content(
        &self,
        principal: &Principal,
        purpose: Purpose,
        held: &Held,
    ) -> Result<Opened<MessageContent>, AppError> {
        let id = &held.id;
        let mut found = None;
        for e in &held.events {
            let region = region_of(e)?;
            match e.decode::<MessageEvent>()? {
                MessageEvent::OutboundMessageAccepted {
                    header, content, ..
                } => {
                    found = Some((
                        header.business_id,
                        region,
                        header.epoch,
                        header.subject_id,
                        content,
                    ))
                }
                MessageEvent::InboundMessageReceived { header, .. } => {
                    found = Some((
                        header.business_id,
                        region,
                        header.epoch,
                        header.subject_id,
                        Sealed::from_bytes(vec![]),
                    ))
                }
                MessageEvent::InboundMessageDecrypted { content, .. } => {
                    if let Some(f) = found.as_mut() {
                        f.4 = content;
                    }
                }
                _ => {}
            }
        }
        let (business, region, epoch, subject, content) = found.ok_or(DomainError::NotFound)?;
        let req = AccessRequest {
            principal,
            category: Category::MessageContent,
            purpose,
            object: id.as_str(),
            owner: Some(&business),
            region,
        };
        if content.as_bytes().is_empty() {
            // Not decrypted (yet): nothing to open, but the request is still decided and recorded.
            self.gate.authorize(&req).await?;
            return Err(AppError::Domain(DomainError::NotFound));
        }
        let scope = FieldScope::Message {
            epoch,
            subject,
            message: id.clone(),
        };
        let opened = self
            .gate
            .open(
                &req,
                FieldRef {
                    scope,
                    field: fields::CONTENT,
                    sealed: &content,
                },
            )
            .await?;
        // One decoding for every reader: typed content as sealed, or (stored before it was
        // typed) an inbound text's bare body.
        Ok(opened.map(|bytes| MessageContent::from_bytes(&bytes)))
    }
}

/// Opens a sealed field of message content (a message's or a media object's) through the
/// gate: decided and recorded as `principal` reading `object` of `owner` for `purpose`.
pub(crate) async fn open_content(
    gate: &AccessGate,
    principal: &Principal,
    purpose: Purpose,
    owner: &BusinessId,
    region: Region,
    object: &str,
    field: FieldRef<'_>,
) -> Result<Opened<Vec<u8>>, AppError> {
    let req = AccessRequest {
        principal,
        category: Category::MessageContent,
        purpose,
        object,
        owner: Some(owner),
        region,
    };
    Ok(gate.open(&req, field).await?)
}

pub(crate) fn text(
    opened: Opened<Vec<u8>>,
    what: &'static str,
) -> Result<Opened<String>, AppError> {
    Ok(match opened {
        Opened::Shredded => Opened::Shredded,
        Opened::Plain(b) => {
            Opened::Plain(String::from_utf8(b).map_err(|_| AppError::Corrupt(what))?)
        }
    })
}
