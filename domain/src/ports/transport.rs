//! The transport port: the WhatsApp role (ADR 0011). It routes Signal ciphertext between
//! consumer devices and Sealpost by phone number, holds the key directory of published prekeys,
//! and never holds a plaintext byte: everything it carries is ciphertext, receipts or reports
//! about message ids. `adapters::transport` implements it (the simulated network, the HTTP
//! client of a transport process).

use super::signal::{Bundle, DirectoryEntry};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a ciphertext is written: in a human-readable form (the transport process's JSON) as one
/// base64 string, a third larger than the bytes instead of the three or four times of an array
/// of numbers (a file inside a message crosses that route); in a binary form (the world
/// store's postcard rows) as the bytes, as before. A JSON array of numbers, as earlier versions
/// wrote it, still reads.
pub mod ciphertext_form {
    use base64::Engine as _;
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    /// Writes `bytes` (base64 when human-readable).
    pub fn serialize<S: Serializer>(bytes: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            bytes.serialize(s)
        }
    }

    /// Reads what [`serialize`] wrote, or an array of numbers.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("base64 or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| E::custom("ciphertext is not base64"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(Either)
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}

/// Where an envelope goes: a phone number's digits (business or consumer) and a device.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// Digits of the number. The transport knows phone numbers; it never logs them.
    pub handle: String,
    /// Device id.
    pub device: u8,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address(<redacted>, device {})", self.device)
    }
}

/// A delivery or read receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Receipt {
    /// The device has the message.
    Delivered,
    /// The consumer read it.
    Read,
}

/// What an envelope carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// A Signal message (ciphertext only).
    Message {
        /// Wire form from [`super::signal::Encrypted::ciphertext`]; base64 in JSON
        /// ([`ciphertext_form`]).
        #[serde(with = "ciphertext_form")]
        ciphertext: Vec<u8>,
    },
    /// A receipt for message `of`.
    Receipt {
        /// Which.
        receipt: Receipt,
        /// The message id it is for.
        of: String,
    },
    /// The device asks for message `of` again (re-installed, lost ciphertext).
    Retransmit {
        /// The message id.
        of: String,
    },
    /// The receiver could not decrypt message `of` (it has no session, for example after an
    /// erasure destroyed it): the sender starts a new session and sends the message again under
    /// a new id, as Signal's decryption-error messages make it do.
    Resend {
        /// The envelope id that could not be decrypted.
        of: String,
    },
    /// The consumer reports the business as spam (kept by the transport, not delivered).
    SpamReport,
    /// The consumer blocks the business (kept by the transport, not delivered).
    Block,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Message { ciphertext } => write!(f, "Message({} bytes)", ciphertext.len()),
            Payload::Receipt { receipt, .. } => write!(f, "Receipt({receipt:?})"),
            Payload::Retransmit { .. } => f.write_str("Retransmit"),
            Payload::Resend { .. } => f.write_str("Resend"),
            Payload::SpamReport => f.write_str("SpamReport"),
            Payload::Block => f.write_str("Block"),
        }
    }
}

/// One routed item. Its id is the message id (for messages) or a fresh id (receipts), so a
/// receiver recognises duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Stable id.
    pub id: String,
    /// Sender.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// Contents.
    pub payload: Payload,
}

/// Transport failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The recipient is not known to the network: undeliverable (code 131026).
    #[error("recipient unknown to the transport")]
    UnknownRecipient,
    /// The transport refused the business's traffic (integrity throttle, code 131048).
    #[error("throttled by the transport")]
    Throttled,
    /// The transport could not be reached: retry with backoff.
    #[error("transport unavailable: {0}")]
    Unavailable(String),
}

/// Where the transport writes its integrity signals (its own stream, classified
/// `integrity signals`). Failures are the sink's to report; the transport goes on.
#[async_trait]
pub trait IntegritySink: Send + Sync + fmt::Debug {
    /// Records what the transport observed about the business number `business`.
    async fn record(&self, business: &str, events: Vec<crate::integrity::IntegrityEvent>);
}

/// The transport port.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Declares `handle` a business number with a messaging-limit tier (integrity signals are
    /// computed for businesses).
    async fn register_business(
        &self,
        handle: &str,
        tier: crate::aggregates::business::MessagingLimitTier,
    ) -> Result<(), TransportError>;
    /// Publishes (replaces) a party's key directory entry.
    async fn publish(&self, handle: &str, entry: DirectoryEntry) -> Result<(), TransportError>;
    /// Adds one-time prekeys to a party's entry.
    async fn add_prekeys(
        &self,
        handle: &str,
        prekeys: Vec<(u32, Vec<u8>)>,
    ) -> Result<(), TransportError>;
    /// Replaces a party's signed prekey (id, public key, signature) after a rotation.
    async fn update_signed_prekey(
        &self,
        handle: &str,
        signed: (u32, Vec<u8>, Vec<u8>),
    ) -> Result<(), TransportError>;
    /// How many one-time prekeys a party has left in the directory.
    async fn prekeys_left(&self, handle: &str) -> Result<usize, TransportError>;
    /// A prekey bundle for a party (consumes one one-time prekey), or `None` if unknown.
    async fn fetch_bundle(
        &self,
        handle: &str,
        device: u8,
    ) -> Result<Option<Bundle>, TransportError>;
    /// Routes an envelope (queued while the recipient is offline).
    async fn send(&self, envelope: Envelope) -> Result<(), TransportError>;
    /// Takes up to `max` envelopes waiting for `handle`, with a lease: they are not handed out
    /// again while it lasts, and are handed out again after it unless acknowledged
    /// (at-least-once; a receiver recognises a redelivered envelope by its id).
    async fn take_inbox(&self, handle: &str, max: usize) -> Result<Vec<Envelope>, TransportError>;
    /// Acknowledges taken envelopes of `handle` by id once the receiver has recorded them: the
    /// transport forgets them. Ids not taken, or unknown, are ignored.
    async fn ack(&self, handle: &str, ids: &[String]) -> Result<(), TransportError>;
    /// Up to `max` batches of integrity signals about `handle` not yet acknowledged, oldest
    /// first. A transport in another process keeps them until the node serving the number
    /// takes them; one in the node's process hands them to its sink at once and keeps none.
    async fn take_signals(
        &self,
        handle: &str,
        max: usize,
    ) -> Result<Vec<SignalBatch>, TransportError> {
        let _ = (handle, max);
        Ok(Vec::new())
    }
    /// Acknowledges the signal batches of `handle` up to and including `through`, once they
    /// are recorded: the transport forgets them.
    async fn ack_signals(&self, handle: &str, through: u64) -> Result<(), TransportError> {
        let _ = (handle, through);
        Ok(())
    }
}

/// Integrity signals the transport recorded together, with an id that orders them per number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalBatch {
    /// Increasing per transport.
    pub id: u64,
    /// What it observed.
    pub events: Vec<crate::integrity::IntegrityEvent>,
}
