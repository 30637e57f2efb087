//! The `interactive` type: buttons, lists and calls to action, and the consumer's answer.

use super::Media;
use serde::{Deserialize, Serialize};

/// `interactive`: outbound `button`, `list`, `cta_url`, …; inbound `button_reply`, `list_reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactive {
    /// The interactive type.
    #[serde(rename = "type")]
    pub kind: String,
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
}

/// An interactive header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct TextObject {
    /// The text.
    pub text: String,
}

/// An interactive action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct ActionButton {
    /// `reply`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id and title.
    pub reply: Choice,
}

/// An id and a title (a button, a list row, the consumer's choice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct Section {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Rows.
    #[serde(default)]
    pub rows: Vec<Choice>,
}

/// A call to action's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionParameters {
    /// The button's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_text: Option<String>,
    /// Where it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
