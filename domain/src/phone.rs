//! Consumer phone numbers (E.164). Personal data: never printed, never serialized in plaintext.

use std::fmt;

/// A valid E.164 number held as its digits (no `+`). Its `Debug` output is redacted and it has
/// no `Display` and no `Serialize`: the only ways out are [`E164::expose_digits`], used by code
/// that seals it or hands it to the transport, and [`E164::matches_digits`], a comparison that
/// exposes nothing (the simulator finds a consumer's device by it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

/// Why a phone number was rejected. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Empty input or characters other than digits, spaces, dashes, dots, brackets and a leading `+`.
    #[error("phone number has invalid characters")]
    InvalidCharacters,
    /// Fewer than 8 or more than 15 digits.
    #[error("phone number has the wrong number of digits")]
    WrongLength,
    /// The country code cannot start with 0.
    #[error("phone number cannot start with 0")]
    LeadingZero,
}

impl E164 {
    /// Parses `15551234567`, `+1 555 123 4567`, `+1 (555) 123-4567` and the like.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::InvalidCharacters),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::InvalidCharacters);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::WrongLength);
        }
        if digits.starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        Ok(Self(digits))
    }

    /// The normalized digits (the Cloud API's `wa_id`). Personal data: seal it or hand it to
    /// the transport; never log it.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }

    /// The ISO country code of the number's calling code, as in business-scoped user ids
    /// (`US`, `DE`, …; `ZZ` when not in the table).
    pub fn country(&self) -> &'static str {
        const CODES: [(&str, &str); 30] = [
            ("971", "AE"),
            ("973", "BH"),
            ("1", "US"),
            ("7", "RU"),
            ("20", "EG"),
            ("27", "ZA"),
            ("30", "GR"),
            ("31", "NL"),
            ("32", "BE"),
            ("33", "FR"),
            ("34", "ES"),
            ("39", "IT"),
            ("41", "CH"),
            ("43", "AT"),
            ("44", "GB"),
            ("45", "DK"),
            ("46", "SE"),
            ("47", "NO"),
            ("48", "PL"),
            ("49", "DE"),
            ("52", "MX"),
            ("55", "BR"),
            ("61", "AU"),
            ("62", "ID"),
            ("65", "SG"),
            ("81", "JP"),
            ("82", "KR"),
            ("86", "CN"),
            ("91", "IN"),
            ("90", "TR"),
        ];
        CODES
            .iter()
            .find(|(cc, _)| self.0.starts_with(cc))
            .map_or("ZZ", |(_, iso)| iso)
    }

    /// Whether this number is the one written as `digits`.
    pub fn matches_digits(&self, digits: &str) -> bool {
        self.0 == digits
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_common_spellings() {
        for s in [
            "15551234567",
            "+15551234567",
            "+1 (555) 123-4567",
            " 1.555.123.4567 ",
        ] {
            let p = E164::parse(s).expect("valid");
            assert_eq!(p.expose_digits(), "15551234567");
        }
    }

    #[test]
    fn rejects_bad_input_without_echoing_it() {
        assert_eq!(E164::parse(""), Err(PhoneError::InvalidCharacters));
        assert_eq!(E164::parse("+"), Err(PhoneError::InvalidCharacters));
        assert_eq!(
            E164::parse("1555abc4567"),
            Err(PhoneError::InvalidCharacters)
        );
        assert_eq!(E164::parse("1234567"), Err(PhoneError::WrongLength));
        assert_eq!(
            E164::parse("1234567890123456"),
            Err(PhoneError::WrongLength)
        );
        assert_eq!(E164::parse("0155512345"), Err(PhoneError::LeadingZero));
        let err = E164::parse("15551234567x").expect_err("invalid");
        assert!(!err.to_string().contains("1555"));
    }

    #[test]
    fn debug_is_redacted() {
        let p = E164::parse("15551234567").expect("valid");
        assert_eq!(format!("{p:?}"), "E164(<redacted>)");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = E164::parse(&s);
        }

        #[test]
        fn valid_numbers_round_trip(d in "[1-9][0-9]{7,14}") {
            let p = E164::parse(&format!("+{d}")).expect("valid");
            prop_assert_eq!(p.expose_digits(), d.as_str());
        }
    }
}
