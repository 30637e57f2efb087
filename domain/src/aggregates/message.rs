//! A message, outbound (business → consumer) or inbound (consumer → business).
//!
//! Outbound: accepted → encrypted for the device → sent (handed to transport) → delivered → read,
//! or failed. Inbound: received (ciphertext sealed) → decrypted (content sealed) → forwarded to
//! the business, or decryption failed. Either may be retransmitted while its keys live.
//! Receipts can arrive late, twice or out of order: a stale or repeated one decides to no events.

use crate::error::DomainError;
use crate::ids::{BusinessId, MessageId, PhoneNumberId, SubjectId};
use crate::sealed::Sealed;
use crate::shim::{cqrs_aggregate, domain_event, Decider};
use crate::time::{EpochId, Timestamp};
use serde::{Deserialize, Serialize};

/// The Cloud API message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Plain text.
    Text,
    /// An image.
    Image,
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// A document.
    Document,
    /// A sticker.
    Sticker,
    /// An approved template.
    Template,
    /// Buttons or a list.
    Interactive,
    /// A reaction to another message.
    Reaction,
    /// A place.
    Location,
    /// Contact cards.
    Contacts,
    /// A reply to an interactive button.
    Button,
    /// A system message.
    System,
    /// A type the business API does not know.
    Unknown,
}

impl MessageKind {
    /// Whether this kind may be sent outside a customer-service window.
    pub const fn allowed_outside_window(self) -> bool {
        matches!(self, MessageKind::Template)
    }
}

/// Pricing category of a conversation (billing, not personal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PricingCategory {
    /// Marketing template.
    Marketing,
    /// Utility template.
    Utility,
    /// Authentication template.
    Authentication,
    /// Free-form message inside a service window.
    Service,
}

/// How a delivered message is priced (per-message pricing): one rule, which the billing
/// projection counts by and the status webhooks say, so the two always agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pricing {
    /// Whether the business pays for it.
    pub billable: bool,
    /// Its category.
    pub category: PricingCategory,
    /// `regular`, or `free_customer_service` for a service message inside the window.
    pub kind: &'static str,
}

impl PricingCategory {
    /// How a delivered message of this category is priced: a service message (free-form,
    /// which the domain admits only inside the customer-service window) is free, a template
    /// of any category is billed.
    pub const fn pricing(self) -> Pricing {
        match self {
            PricingCategory::Service => Pricing {
                billable: false,
                category: self,
                kind: "free_customer_service",
            },
            _ => Pricing {
                billable: true,
                category: self,
                kind: "regular",
            },
        }
    }

    /// The Cloud API's name of the category.
    pub const fn name(self) -> &'static str {
        match self {
            PricingCategory::Marketing => "marketing",
            PricingCategory::Utility => "utility",
            PricingCategory::Authentication => "authentication",
            PricingCategory::Service => "service",
        }
    }
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Business → consumer.
    Outbound,
    /// Consumer → business.
    Inbound,
}

/// Where a message is in its lifecycle. The order of the outbound statuses is the order of
/// progress, so a stale receipt can be recognised by comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageStatus {
    /// Outbound, accepted and durably stored.
    Accepted,
    /// Outbound, encrypted with Signal for the consumer's device.
    Encrypted,
    /// Outbound, handed to the transport.
    Sent,
    /// Outbound, the device confirmed receipt.
    Delivered,
    /// Outbound, the consumer read it.
    Read,
    /// Outbound, could not be delivered.
    Failed,
    /// Inbound, ciphertext received from the transport.
    Received,
    /// Inbound, decrypted with the Signal session.
    Decrypted,
    /// Inbound, queued for the business.
    Forwarded,
    /// Inbound, could not be decrypted.
    DecryptionFailed,
}

/// Message state. Holds no plaintext: content lives sealed in the events.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The message id.
    pub id: Option<MessageId>,
    /// Direction.
    pub direction: Option<Direction>,
    /// The business.
    pub business_id: Option<BusinessId>,
    /// The business phone number.
    pub phone_number_id: Option<PhoneNumberId>,
    /// The consumer.
    pub subject_id: Option<SubjectId>,
    /// The retention epoch (which key shreds it).
    pub epoch: Option<EpochId>,
    /// The type.
    pub kind: Option<MessageKind>,
    /// Lifecycle status.
    pub status: Option<MessageStatus>,
    /// Times it was retransmitted.
    pub retransmissions: u32,
    /// Whether a retransmission was refused (its keys are gone); later requests add nothing.
    #[serde(default)]
    pub retransmission_refused: bool,
    /// Whether the business marked this inbound message read.
    #[serde(default)]
    pub read_by_business: bool,
}

/// The facts a new outbound message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundHeader {
    /// The message id.
    pub message_id: MessageId,
    /// The business.
    pub business_id: BusinessId,
    /// The business phone number sending it.
    pub phone_number_id: PhoneNumberId,
    /// The consumer.
    pub subject_id: SubjectId,
    /// Its retention epoch.
    pub epoch: EpochId,
    /// Its type.
    pub kind: MessageKind,
    /// Its pricing category.
    pub category: PricingCategory,
}

/// The facts a new inbound message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundHeader {
    /// The message id.
    pub message_id: MessageId,
    /// The business.
    pub business_id: BusinessId,
    /// The business phone number it was sent to.
    pub phone_number_id: PhoneNumberId,
    /// The consumer.
    pub subject_id: SubjectId,
    /// Its retention epoch.
    pub epoch: EpochId,
}

/// What a message can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageCommand {
    /// Accept an outbound message from the business.
    AcceptOutbound {
        /// The header.
        header: OutboundHeader,
        /// The content, sealed under the message key.
        content: Sealed,
        /// `biz_opaque_callback_data`, sealed under the message key.
        callback_data: Option<Sealed>,
        /// Whether the consumer's service window is open now (read from the Subject).
        service_window_open: bool,
    },
    /// Encrypted with Signal for the device.
    RecordEncrypted,
    /// Handed to the transport.
    RecordSent,
    /// Encrypted and handed to the transport, recorded together once the transport took it
    /// (one commit for both transitions; a crash before it re-sends under the same id, which
    /// the device recognises).
    RecordHandedOver,
    /// Delivery receipt.
    RecordDelivered,
    /// Read receipt.
    RecordRead,
    /// Delivery failed with a Cloud API code (131026 undeliverable …).
    RecordFailed {
        /// The code.
        code: u32,
    },
    /// The transport asked for the message again and it was re-encrypted.
    RecordRetransmitted,
    /// The transport asked for the message again but its keys are gone.
    RefuseRetransmission,
    /// Ciphertext arrived from the consumer's device.
    ReceiveInbound {
        /// The header.
        header: InboundHeader,
        /// The Signal ciphertext, sealed under the message key.
        ciphertext: Sealed,
        /// The transport's envelope id, sealed under the message key.
        envelope: Option<Sealed>,
    },
    /// Decrypted with the Signal session.
    RecordDecrypted {
        /// The type the consumer sent.
        kind: MessageKind,
        /// The content, sealed under the message key.
        content: Sealed,
        /// The consumer's profile name, sealed under the message key.
        profile_name: Option<Sealed>,
    },
    /// Decryption failed (no session, bad MAC, identity changed without trust …).
    RecordDecryptionFailed {
        /// A short machine reason, never personal data.
        reason: String,
    },
    /// Queued for the business's webhook.
    RecordForwarded,
    /// The business marked an inbound message as read.
    MarkReadByBusiness,
}

/// What happened to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageEvent {
    /// The business's message was accepted and durably stored.
    OutboundMessageAccepted {
        /// The header.
        header: OutboundHeader,
        /// The content, sealed under the message key.
        content: Sealed,
        /// `biz_opaque_callback_data`, sealed.
        callback_data: Option<Sealed>,
        /// When.
        at: Timestamp,
    },
    /// Encrypted with Signal for the consumer's device.
    MessageEncrypted {
        /// When.
        at: Timestamp,
    },
    /// Handed to the transport (`sent`).
    MessageSent {
        /// When.
        at: Timestamp,
    },
    /// The device confirmed receipt (`delivered`).
    MessageDelivered {
        /// When.
        at: Timestamp,
    },
    /// The consumer read it (`read`).
    MessageRead {
        /// When.
        at: Timestamp,
    },
    /// Delivery failed (`failed`).
    MessageFailed {
        /// The Cloud API code.
        code: u32,
        /// When.
        at: Timestamp,
    },
    /// Re-encrypted and handed to the transport again.
    MessageRetransmitted {
        /// When.
        at: Timestamp,
    },
    /// A retransmission was refused because the message's keys were destroyed.
    RetransmissionRefused {
        /// When.
        at: Timestamp,
    },
    /// Ciphertext arrived from the consumer.
    InboundMessageReceived {
        /// The header.
        header: InboundHeader,
        /// The Signal ciphertext, sealed.
        ciphertext: Sealed,
        /// The transport's envelope id, sealed: the business's read receipt goes back under
        /// it (since v2; `None` in v1 events).
        envelope: Option<Sealed>,
        /// When.
        at: Timestamp,
    },
    /// The ciphertext was decrypted.
    InboundMessageDecrypted {
        /// The type.
        kind: MessageKind,
        /// The content, sealed.
        content: Sealed,
        /// The profile name, sealed.
        profile_name: Option<Sealed>,
        /// When.
        at: Timestamp,
    },
    /// The ciphertext could not be decrypted.
    InboundDecryptionFailed {
        /// Why (machine reason, no personal data).
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// Queued for the business.
    InboundMessageForwarded {
        /// When.
        at: Timestamp,
    },
    /// The business marked the inbound message as read (blue ticks for the consumer).
    InboundMessageRead {
        /// When.
        at: Timestamp,
    },
}

domain_event!(MessageEvent {
    OutboundMessageAccepted => "1",
    MessageEncrypted => "1",
    MessageSent => "1",
    MessageDelivered => "1",
    MessageRead => "1",
    MessageFailed => "1",
    MessageRetransmitted => "1",
    RetransmissionRefused => "1",
    InboundMessageReceived => "2",
    InboundMessageDecrypted => "1",
    InboundDecryptionFailed => "1",
    InboundMessageForwarded => "1",
    InboundMessageRead => "1",
});

impl Message {
    fn require(&self, direction: Direction) -> Result<MessageStatus, DomainError> {
        match (self.direction, self.status) {
            (Some(d), Some(s)) if d == direction => Ok(s),
            (None, _) | (_, None) => Err(DomainError::NotFound),
            _ => Err(DomainError::InvalidTransition("wrong direction")),
        }
    }

    /// Moves an outbound message forward to `to` unless it is already there, past it, or failed.
    fn advance(
        &self,
        to: MessageStatus,
        event: MessageEvent,
    ) -> Result<Vec<MessageEvent>, DomainError> {
        let status = self.require(Direction::Outbound)?;
        if status == MessageStatus::Failed || status >= to {
            return Ok(vec![]);
        }
        Ok(vec![event])
    }
}

impl Decider for Message {
    type Command = MessageCommand;
    type Event = MessageEvent;

    fn decide(
        &self,
        command: MessageCommand,
        now: Timestamp,
    ) -> Result<Vec<MessageEvent>, DomainError> {
        use MessageCommand as C;
        use MessageEvent as E;
        use MessageStatus as S;
        match command {
            C::AcceptOutbound {
                header,
                content,
                callback_data,
                service_window_open,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                if !service_window_open && !header.kind.allowed_outside_window() {
                    return Err(DomainError::OutsideServiceWindow);
                }
                if content.as_bytes().is_empty() {
                    return Err(DomainError::InvalidParameter("content"));
                }
                Ok(vec![E::OutboundMessageAccepted {
                    header,
                    content,
                    callback_data,
                    at: now,
                }])
            }
            C::RecordEncrypted => self.advance(S::Encrypted, E::MessageEncrypted { at: now }),
            C::RecordSent => self.advance(S::Sent, E::MessageSent { at: now }),
            C::RecordHandedOver => {
                let mut events = self.advance(S::Encrypted, E::MessageEncrypted { at: now })?;
                if !self
                    .advance(S::Sent, E::MessageSent { at: now })?
                    .is_empty()
                {
                    events.push(E::MessageSent { at: now });
                }
                Ok(events)
            }
            C::RecordDelivered => self.advance(S::Delivered, E::MessageDelivered { at: now }),
            C::RecordRead => self.advance(S::Read, E::MessageRead { at: now }),
            C::RecordFailed { code } => {
                let status = self.require(Direction::Outbound)?;
                if matches!(status, S::Delivered | S::Read | S::Failed) {
                    return Ok(vec![]);
                }
                Ok(vec![E::MessageFailed { code, at: now }])
            }
            C::RecordRetransmitted => {
                if self.id.is_none() {
                    return Err(DomainError::NotFound);
                }
                Ok(vec![E::MessageRetransmitted { at: now }])
            }
            C::RefuseRetransmission => {
                if self.id.is_none() {
                    return Err(DomainError::NotFound);
                }
                if self.retransmission_refused {
                    return Ok(vec![]);
                }
                Ok(vec![E::RetransmissionRefused { at: now }])
            }
            C::ReceiveInbound {
                header,
                ciphertext,
                envelope,
            } => {
                if self.id.is_some() {
                    // The same message id again: a duplicate from the transport, not shown twice.
                    return if self.direction == Some(Direction::Inbound) {
                        Ok(vec![])
                    } else {
                        Err(DomainError::AlreadyExists)
                    };
                }
                Ok(vec![E::InboundMessageReceived {
                    header,
                    ciphertext,
                    envelope,
                    at: now,
                }])
            }
            C::RecordDecrypted {
                kind,
                content,
                profile_name,
            } => match self.require(Direction::Inbound)? {
                S::Received => Ok(vec![E::InboundMessageDecrypted {
                    kind,
                    content,
                    profile_name,
                    at: now,
                }]),
                S::Decrypted | S::Forwarded => Ok(vec![]),
                _ => Err(DomainError::InvalidTransition("decryption already failed")),
            },
            C::RecordDecryptionFailed { reason } => match self.require(Direction::Inbound)? {
                S::Received => Ok(vec![E::InboundDecryptionFailed { reason, at: now }]),
                _ => Ok(vec![]),
            },
            C::RecordForwarded => match self.require(Direction::Inbound)? {
                S::Decrypted => Ok(vec![E::InboundMessageForwarded { at: now }]),
                S::Forwarded => Ok(vec![]),
                _ => Err(DomainError::InvalidTransition("not decrypted")),
            },
            C::MarkReadByBusiness => match self.require(Direction::Inbound)? {
                S::Forwarded if !self.read_by_business => {
                    Ok(vec![E::InboundMessageRead { at: now }])
                }
                S::Forwarded => Ok(vec![]),
                _ => Err(DomainError::InvalidParameter("message_id")),
            },
        }
    }

    fn apply(&mut self, event: MessageEvent) {
        use MessageEvent as E;
        use MessageStatus as S;
        match event {
            E::OutboundMessageAccepted { header, .. } => {
                self.id = Some(header.message_id);
                self.direction = Some(Direction::Outbound);
                self.business_id = Some(header.business_id);
                self.phone_number_id = Some(header.phone_number_id);
                self.subject_id = Some(header.subject_id);
                self.epoch = Some(header.epoch);
                self.kind = Some(header.kind);
                self.status = Some(S::Accepted);
            }
            E::MessageEncrypted { .. } => self.status = Some(S::Encrypted),
            E::MessageSent { .. } => self.status = Some(S::Sent),
            E::MessageDelivered { .. } => self.status = Some(S::Delivered),
            E::MessageRead { .. } => self.status = Some(S::Read),
            E::MessageFailed { .. } => self.status = Some(S::Failed),
            E::MessageRetransmitted { .. } => self.retransmissions += 1,
            E::RetransmissionRefused { .. } => self.retransmission_refused = true,
            E::InboundMessageReceived { header, .. } => {
                self.id = Some(header.message_id);
                self.direction = Some(Direction::Inbound);
                self.business_id = Some(header.business_id);
                self.phone_number_id = Some(header.phone_number_id);
                self.subject_id = Some(header.subject_id);
                self.epoch = Some(header.epoch);
                self.status = Some(S::Received);
            }
            E::InboundMessageDecrypted { kind, .. } => {
                self.kind = Some(kind);
                self.status = Some(S::Decrypted);
            }
            E::InboundDecryptionFailed { .. } => self.status = Some(S::DecryptionFailed),
            E::InboundMessageForwarded { .. } => self.status = Some(S::Forwarded),
            E::InboundMessageRead { .. } => self.read_by_business = true,
        }
    }
}

cqrs_aggregate!(Message, "message");
