//! Identifiers. Every id here is random (made from bytes passed in by the caller) and says
//! nothing about a person: never a phone number, never a hash of one.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why an id was rejected. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty, too long or has characters its kind never has.
    #[error("malformed {0} id")]
    Malformed(&'static str),
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh id from random bits: 15 decimal digits, like the Graph API's ids.
            pub fn from_random(random: u64) -> Self {
                Self(format!("{}", 100_000_000_000_000u64 + random % 900_000_000_000_000))
            }

            /// Parses an id: 1 to 20 ASCII digits.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Malformed($label))
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

numeric_id!(
    /// A business (tenant) in Business Manager.
    BusinessId,
    "business"
);

/// The business id the deployment's own records carry (operator tokens, the access log of
/// principals without a business, persisted projections, the audit signing key): never a real
/// business's (a [`BusinessId`] is 15 digits).
pub const DEPLOYMENT: &str = "0";
numeric_id!(
    /// A business phone number, as it appears in `/{version}/{phone-number-id}/messages`.
    PhoneNumberId,
    "phone number"
);
numeric_id!(
    /// A media object (`POST /{version}/{phone-number-id}/media`, or an inbound attachment).
    MediaId,
    "media"
);

/// One consumer as seen by one business. Random; the only link to a phone number is the sealed
/// field in `SubjectCreated` and the blind index, both destroyed with the subject's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectId(String);

impl SubjectId {
    const PREFIX: &'static str = "sub_";

    /// A fresh subject id from 16 random bytes.
    pub fn from_random(random: [u8; 16]) -> Self {
        let mut s = String::with_capacity(36);
        s.push_str(Self::PREFIX);
        for b in random {
            s.push_str(&format!("{b:02x}"));
        }
        Self(s)
    }

    /// Parses `sub_` followed by 32 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.strip_prefix(Self::PREFIX) {
            Some(hex)
                if hex.len() == 32
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(IdError::Malformed("subject")),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SubjectId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SubjectId> for String {
    fn from(id: SubjectId) -> String {
        id.0
    }
}

/// A message id in the Cloud API's form, `wamid.` followed by base64.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    const PREFIX: &'static str = "wamid.";

    /// A fresh message id from 18 random bytes (`wamid.` + 24 base64 characters).
    pub fn from_random(random: [u8; 18]) -> Self {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        Self(format!("{}{body}", Self::PREFIX))
    }

    /// Parses `wamid.` followed by 1 to 200 base64 (standard or URL-safe) characters.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.strip_prefix(Self::PREFIX) {
            Some(body)
                if !body.is_empty()
                    && body.len() <= 200
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b)) =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(IdError::Malformed("message")),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MessageId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn message_ids_look_like_cloud_api_ids() {
        let id = MessageId::from_random([7; 18]);
        assert!(id.as_str().starts_with("wamid."));
        assert_eq!(MessageId::parse(id.as_str()), Ok(id.clone()));
        assert!(
            MessageId::parse("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
                .is_ok()
        );
        assert!(MessageId::parse("wamid.").is_err());
        assert!(MessageId::parse("msg.abc").is_err());
        assert!(MessageId::parse("wamid.a b").is_err());
    }

    #[test]
    fn numeric_ids_are_fifteen_digits() {
        let id = BusinessId::from_random(u64::MAX);
        assert_eq!(id.as_str().len(), 15);
        assert!(PhoneNumberId::parse("106540352242922").is_ok());
        assert!(PhoneNumberId::parse("10654035224292x").is_err());
        assert!(PhoneNumberId::parse("").is_err());
    }

    #[test]
    fn ids_reject_bad_json() {
        assert!(serde_json::from_str::<SubjectId>("\"sub_zz\"").is_err());
        let s = SubjectId::from_random([0xab; 16]);
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(serde_json::from_str::<SubjectId>(&json).expect("parses"), s);
    }

    proptest! {
        #[test]
        fn random_ids_always_parse(r in any::<u64>(), b in any::<[u8; 16]>()) {
            let id = PhoneNumberId::from_random(r);
            prop_assert_eq!(PhoneNumberId::parse(id.as_str()), Ok(id));
            let s = SubjectId::from_random(b);
            prop_assert_eq!(SubjectId::parse(s.as_str()), Ok(s));
        }
    }
}
