//! The Cloud API's JSON shape of [`MessageContent`]: `type`, the object under the member of
//! that name, and `context`. Written and read through plain structs, one optional member per
//! type, so that no untyped JSON value is ever built.

use super::{
    ButtonReply, Contact, Context, Interactive, Location, Media, MessageContent, Payload, Reaction,
    System, Template, Text,
};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize)]
struct Out<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<&'a Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<&'a Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<&'a Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sticker: Option<&'a Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interactive: Option<&'a Interactive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<&'a Reaction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contacts: Option<&'a Vec<Contact>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    button: Option<&'a ButtonReply>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a System>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Context>,
}

/// A message in the Cloud API's shape: its `type` and the object under the member of that name.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct In {
    /// `text`, `image`, `audio`, `video`, `document`, `sticker`, `template`, `interactive`,
    /// `reaction`, `location`, `contacts`; inbound also `button`, `system`. A send without it is
    /// `text`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    kind: String,
    text: Option<Text>,
    image: Option<Media>,
    audio: Option<Media>,
    video: Option<Media>,
    document: Option<Media>,
    sticker: Option<Media>,
    template: Option<Template>,
    interactive: Option<Box<Interactive>>,
    reaction: Option<Reaction>,
    location: Option<Location>,
    contacts: Option<Vec<Contact>>,
    button: Option<ButtonReply>,
    system: Option<System>,
    context: Option<Context>,
}

impl Payload {
    /// The member name of this type (`text`, `image`, …), as in `"type":"text"`.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Payload::Text(_) => "text",
            Payload::Image(_) => "image",
            Payload::Audio(_) => "audio",
            Payload::Video(_) => "video",
            Payload::Document(_) => "document",
            Payload::Sticker(_) => "sticker",
            Payload::Template(_) => "template",
            Payload::Interactive(_) => "interactive",
            Payload::Reaction(_) => "reaction",
            Payload::Location(_) => "location",
            Payload::Contacts(_) => "contacts",
            Payload::Button(_) => "button",
            Payload::System(_) => "system",
        }
    }
}

impl Serialize for MessageContent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.payload;
        let mut out = Out {
            kind: p.type_name(),
            text: None,
            image: None,
            audio: None,
            video: None,
            document: None,
            sticker: None,
            template: None,
            interactive: None,
            reaction: None,
            location: None,
            contacts: None,
            button: None,
            system: None,
            context: self.context.as_ref(),
        };
        match p {
            Payload::Text(t) => out.text = Some(t),
            Payload::Image(m) => out.image = Some(m),
            Payload::Audio(m) => out.audio = Some(m),
            Payload::Video(m) => out.video = Some(m),
            Payload::Document(m) => out.document = Some(m),
            Payload::Sticker(m) => out.sticker = Some(m),
            Payload::Template(t) => out.template = Some(t),
            Payload::Interactive(i) => out.interactive = Some(i),
            Payload::Reaction(r) => out.reaction = Some(r),
            Payload::Location(l) => out.location = Some(l),
            Payload::Contacts(c) => out.contacts = Some(c),
            Payload::Button(b) => out.button = Some(b),
            Payload::System(x) => out.system = Some(x),
        }
        out.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = In::deserialize(d)?;
        let missing = || de::Error::custom("the object named by `type` is missing");
        let payload = match i.kind.as_str() {
            "text" => Payload::Text(i.text.ok_or_else(missing)?),
            "image" => Payload::Image(i.image.ok_or_else(missing)?),
            "audio" => Payload::Audio(i.audio.ok_or_else(missing)?),
            "video" => Payload::Video(i.video.ok_or_else(missing)?),
            "document" => Payload::Document(i.document.ok_or_else(missing)?),
            "sticker" => Payload::Sticker(i.sticker.ok_or_else(missing)?),
            "template" => Payload::Template(i.template.ok_or_else(missing)?),
            "interactive" => Payload::Interactive(i.interactive.ok_or_else(missing)?),
            "reaction" => Payload::Reaction(i.reaction.ok_or_else(missing)?),
            "location" => Payload::Location(i.location.ok_or_else(missing)?),
            "contacts" => Payload::Contacts(i.contacts.ok_or_else(missing)?),
            "button" => Payload::Button(i.button.ok_or_else(missing)?),
            // A system message may come with its details only.
            "system" => Payload::System(i.system.unwrap_or_default()),
            other => {
                return Err(de::Error::unknown_variant(
                    other,
                    &[
                        "text",
                        "image",
                        "audio",
                        "video",
                        "document",
                        "sticker",
                        "template",
                        "interactive",
                        "reaction",
                        "location",
                        "contacts",
                        "button",
                        "system",
                    ],
                ))
            }
        };
        Ok(MessageContent {
            payload,
            context: i.context,
        })
    }
}

/// The schema of [`MessageContent`] is its wire shape's.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for MessageContent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <In as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for MessageContent {
    fn name() -> std::borrow::Cow<'static, str> {
        "MessageContent".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <In as utoipa::ToSchema>::schemas(schemas);
    }
}
