//! Message content, typed: what a business sends and what a consumer's device sends, in the
//! Cloud API's own shape (`{"type":"text","text":{"body":"hi"}}`, `{"type":"image","image":{…}}`,
//! with an optional `context`). Parsed once where it enters (the HTTP edge, a device's decrypted
//! plaintext), sealed as such, and carried typed through the pipeline, media, webhooks and
//! evidence. Its JSON form is the only encoding: the sealed bytes of a message, the Signal
//! plaintext a device reads, and the object a webhook carries under the message's type.
//!
//! Reading is tolerant (unknown members are dropped, as a Cloud API client would ignore them);
//! a payload that is not JSON of a known type is text, its bytes being the body. That also reads
//! the content stored before it was typed: an inbound text was kept as its bare body.

use crate::aggregates::message::MessageKind;
use serde::{Deserialize, Serialize};

/// One message's content and, for a reply, the message it answers. Its `Debug` names the type
/// only: content is personal data and never reaches a log.
#[derive(Clone, PartialEq)]
pub struct MessageContent {
    /// What the message carries.
    pub payload: Payload,
    /// The message this one replies to.
    pub context: Option<Context>,
}

/// What a message carries, by Cloud API type (`Debug` names the type only).
#[derive(Clone, PartialEq)]
pub enum Payload {
    /// Plain text.
    Text(Text),
    /// An image.
    Image(Media),
    /// Audio.
    Audio(Media),
    /// Video.
    Video(Media),
    /// A document.
    Document(Media),
    /// A sticker.
    Sticker(Media),
    /// An approved template with its parameters.
    Template(Template),
    /// Buttons, a list or a call to action; inbound, the consumer's answer to one.
    Interactive(Box<Interactive>),
    /// A reaction to another message (an empty emoji removes it).
    Reaction(Reaction),
    /// A place.
    Location(Location),
    /// Contact cards.
    Contacts(Vec<Contact>),
    /// Inbound: the consumer pressed a template's quick-reply button.
    Button(ButtonReply),
    /// Inbound: a system message (e.g. the consumer changed number).
    System(System),
}

/// `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Text {
    /// The text.
    pub body: String,
    /// Whether a link preview is wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

/// `image`, `audio`, `video`, `document`, `sticker`: by media id, by link, or (between Sealpost
/// and a device only) inline; inbound, as the business sees it, by id with type and hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Media {
    /// A media id (an uploaded object, or one made of an inbound attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An `https://` or `http://` link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The bytes, base64, inside the Signal message (never in a webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// SHA-256 of the bytes, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// File name (documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A voice note (audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// An animated sticker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
}

/// `reaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    /// The message reacted to.
    pub message_id: String,
    /// The emoji; empty removes the reaction.
    pub emoji: String,
}

/// `location`. Coordinates arrive as numbers or as decimal strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    /// Degrees north.
    #[serde(with = "coordinate")]
    #[cfg_attr(feature = "openapi", schema(schema_with = coordinate::schema))]
    pub latitude: f64,
    /// Degrees east.
    #[serde(with = "coordinate")]
    #[cfg_attr(feature = "openapi", schema(schema_with = coordinate::schema))]
    pub longitude: f64,
    /// The place's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `button` (inbound): a quick-reply button's text and payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ButtonReply {
    /// The button's text.
    pub text: String,
    /// The payload the business gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// `system` (inbound).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct System {
    /// What happened, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `user_changed_number`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The message a reply answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Context {
    /// Outbound: the id of the message answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Inbound: the id of the message answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Inbound: who sent the message answered (the business number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

mod coordinate {
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// A number, or a decimal number as a string (as clients send it).
    #[cfg(feature = "openapi")]
    pub fn schema() -> utoipa::openapi::schema::Schema {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
        Schema::OneOf(
            OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::Number))
                .item(ObjectBuilder::new().schema_type(Type::String))
                .build(),
        )
    }

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(f64),
            Text(String),
        }
        let v = match Either::deserialize(d)? {
            Either::Number(n) => n,
            Either::Text(t) => t.trim().parse().map_err(de::Error::custom)?,
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(de::Error::custom("a coordinate must be finite"))
        }
    }
}

mod contacts;
mod interactive;
mod template;
mod wire;

pub use contacts::{Address, Contact, ContactEmail, ContactName, ContactPhone, ContactUrl, Org};
pub use interactive::{
    Action, ActionButton, ActionParameters, Choice, FlowAction, FlowActionPayload, FlowReply,
    Header, Interactive, InteractiveKind, Section, TextObject,
};
pub use template::{Component, Currency, Fallback, Index, Language, Parameter, Template};

impl std::fmt::Debug for MessageContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MessageContent({}, <redacted>)",
            self.payload.type_name()
        )
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({}, <redacted>)", self.type_name())
    }
}

impl MessageContent {
    /// Content without a reply context.
    pub fn new(payload: Payload) -> Self {
        Self {
            payload,
            context: None,
        }
    }

    /// A text message.
    pub fn text(body: impl Into<String>) -> Self {
        Self::new(Payload::Text(Text {
            body: body.into(),
            preview_url: None,
        }))
    }

    /// The Cloud API message type.
    pub fn kind(&self) -> MessageKind {
        self.payload.kind()
    }

    /// The JSON form: what is sealed, what a device reads.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings, numbers and booleans cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads content as sealed or as a device sent it: JSON of a known type is typed; anything
    /// else (not JSON, an unknown type, a known type without its object) is text whose body is
    /// the bytes as UTF-8 (lossily).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Self::text(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// The media object, for the media types.
    pub fn media(&self) -> Option<&Media> {
        self.payload.media()
    }

    /// A text message's body.
    pub fn text_body(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(t) => Some(&t.body),
            _ => None,
        }
    }

    /// The media object, for the media types, to change.
    pub fn media_mut(&mut self) -> Option<&mut Media> {
        self.payload.media_mut()
    }
}

impl Payload {
    /// The Cloud API message type.
    pub fn kind(&self) -> MessageKind {
        match self {
            Payload::Text(_) => MessageKind::Text,
            Payload::Image(_) => MessageKind::Image,
            Payload::Audio(_) => MessageKind::Audio,
            Payload::Video(_) => MessageKind::Video,
            Payload::Document(_) => MessageKind::Document,
            Payload::Sticker(_) => MessageKind::Sticker,
            Payload::Template(_) => MessageKind::Template,
            Payload::Interactive(_) => MessageKind::Interactive,
            Payload::Reaction(_) => MessageKind::Reaction,
            Payload::Location(_) => MessageKind::Location,
            Payload::Contacts(_) => MessageKind::Contacts,
            Payload::Button(_) => MessageKind::Button,
            Payload::System(_) => MessageKind::System,
        }
    }

    fn media(&self) -> Option<&Media> {
        match self {
            Payload::Image(m)
            | Payload::Audio(m)
            | Payload::Video(m)
            | Payload::Document(m)
            | Payload::Sticker(m) => Some(m),
            _ => None,
        }
    }

    fn media_mut(&mut self) -> Option<&mut Media> {
        match self {
            Payload::Image(m)
            | Payload::Audio(m)
            | Payload::Video(m)
            | Payload::Document(m)
            | Payload::Sticker(m) => Some(m),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
