//! The `template` type: a template's name, language and the parameters of its components.

use super::Media;
use serde::{Deserialize, Serialize};

/// `template`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// Its language.
    pub language: Language,
    /// Header, body and button parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

/// A template's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Language {
    /// `en_US`.
    pub code: String,
    /// `deterministic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// One component of a template send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Component {
    /// `header`, `body`, `button`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a button: `quick_reply`, `url`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    /// For a button: its position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Index>,
    /// The values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
}

/// A button's index: clients send `"0"` or `0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Index {
    /// As a number.
    Number(u64),
    /// As a string.
    Text(String),
}

/// One template parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Parameter {
    /// `text`, `currency`, `date_time`, `image`, `document`, `video`, `payload`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// A named parameter's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_name: Option<String>,
    /// `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `payload` (quick-reply buttons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// `coupon_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// `date_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<Fallback>,
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Media>,
    /// `document`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Media>,
    /// `video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Media>,
}

/// A currency parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Currency {
    /// Shown where the amount cannot be localised.
    pub fallback_value: String,
    /// ISO 4217.
    pub code: String,
    /// The amount times 1,000.
    pub amount_1000: i64,
}

/// A parameter shown as its fallback text (`date_time`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fallback {
    /// The text.
    pub fallback_value: String,
}
