//! The `interactive` type: buttons, lists and calls to action, and the consumer's answer.

use super::Media;
use serde::{Deserialize, Serialize};

/// `interactive`: outbound `button`, `list`, `cta_url`, `location_request_message`, `flow`;
/// inbound `button_reply`, `list_reply`, `nfm_reply` (a flow's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interactive {
    /// The interactive type.
    #[serde(rename = "type")]
    pub kind: InteractiveKind,
    /// Header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<TextObject>,
    /// Footer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    /// What the consumer can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Inbound: the reply button pressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_reply: Option<Choice>,
    /// Inbound: the list row chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_reply: Option<Choice>,
    /// Inbound: what the consumer answered in a flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfm_reply: Option<FlowReply>,
}

/// The type of an interactive message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InteractiveKind {
    /// Up to three reply buttons.
    Button,
    /// A list of rows in sections.
    List,
    /// A button that opens a URL.
    CtaUrl,
    /// A request for the consumer's location (`action.name: "send_location"`).
    LocationRequestMessage,
    /// A WhatsApp Flow to open (`action.name: "flow"`; the flow is not run here).
    Flow,
    /// Inbound: a reply button was pressed.
    ButtonReply,
    /// Inbound: a list row was chosen.
    ListReply,
    /// Inbound: a flow's answer.
    NfmReply,
    /// Inbound: a type this build does not know (kept as such, never sent).
    #[serde(other)]
    Unsupported,
}

impl InteractiveKind {
    /// Whether a business may send it (the others are a consumer's answers).
    pub fn is_outbound(self) -> bool {
        matches!(
            self,
            Self::Button | Self::List | Self::CtaUrl | Self::LocationRequestMessage | Self::Flow
        )
    }
}

/// `nfm_reply`: a flow's answer, as the consumer's device sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowReply {
    /// The flow's answers, a JSON object as a string (with the `flow_token`).
    pub response_json: String,
    /// What the consumer saw as sent (`Sent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `flow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An interactive header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Header {
    /// `text`, `image`, `video`, `document`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Media>,
    /// Video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Media>,
    /// Document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Media>,
}

/// `{"text": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextObject {
    /// The text.
    pub text: String,
}

/// An interactive action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    /// A list's button label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    /// Reply buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<ActionButton>,
    /// A list's sections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<Section>,
    /// `cta_url`, `send_location`, `flow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A call to action's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<ActionParameters>,
}

/// A reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionButton {
    /// `reply`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id and title.
    pub reply: Choice,
}

/// An id and a title (a button, a list row, the consumer's choice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Choice {
    /// Chosen by the business.
    pub id: String,
    /// Shown.
    pub title: String,
    /// A list row's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A list section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Section {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Rows.
    #[serde(default)]
    pub rows: Vec<Choice>,
}

/// A call to action's or a flow's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionParameters {
    /// `cta_url`: the button's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_text: Option<String>,
    /// `cta_url`: where it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `flow`: the flow message version (`3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_message_version: Option<String>,
    /// `flow`: the business's token, echoed in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// `flow`: the flow's id (or its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// `flow`: the flow's name (or its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    /// `flow`: the button's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_cta: Option<String>,
    /// `flow`: `navigate` or `data_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action: Option<FlowAction>,
    /// `flow`: the first screen and its data, for `navigate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_payload: Option<FlowActionPayload>,
    /// `flow`: `draft` or `published`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// How a flow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FlowAction {
    /// On the screen named in the payload.
    Navigate,
    /// By asking the business's endpoint.
    DataExchange,
}

/// A flow's first screen and the data it opens with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowActionPayload {
    /// The screen's id.
    pub screen: String,
    /// Its data: a JSON object, kept as its text so the content stays typed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "json_object_text"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<String>,
}

/// A JSON object member kept as its compact text: read from an object, written as one.
mod json_object_text {
    use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        let parsed: Option<serde_json::Map<String, serde_json::Value>> = v
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(serde::ser::Error::custom)?;
        parsed.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let object = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?;
        object
            .map(|o| serde_json::to_string(&o).map_err(de::Error::custom))
            .transpose()
    }
}
