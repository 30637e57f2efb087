//! A business phone number's profile as consumers see it (`whatsapp_business_profile`):
//! business information in the matrix, kept on the number's own stream. An update names the
//! fields it changes; each is checked against the Cloud API's limits here, once.

use crate::DomainError;
use serde::{Deserialize, Serialize};

/// The industries a profile may name (`vertical`).
pub const VERTICALS: [&str; 19] = [
    "UNDEFINED",
    "OTHER",
    "AUTO",
    "BEAUTY",
    "APPAREL",
    "EDU",
    "ENTERTAIN",
    "EVENT_PLAN",
    "FINANCE",
    "GROCERY",
    "GOVT",
    "HOTEL",
    "HEALTH",
    "NONPROFIT",
    "PROF_SERVICES",
    "RETAIL",
    "TRAVEL",
    "RESTAURANT",
    "NOT_A_BIZ",
];

/// A profile, or the fields an update changes (`None`: unchanged; an empty string or list
/// clears the field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessProfile {
    /// The "About" text (1–139 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    /// Postal address (up to 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Description (up to 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Contact e-mail (up to 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Industry, one of [`VERTICALS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<String>,
    /// Up to two web sites, `http://` or `https://`, up to 256 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websites: Option<Vec<String>>,
    /// The handle of an uploaded profile picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture_handle: Option<String>,
}

fn at_most(value: &Option<String>, max: usize, name: &'static str) -> Result<(), DomainError> {
    match value {
        Some(v) if v.chars().count() > max => Err(DomainError::InvalidParameter(name)),
        _ => Ok(()),
    }
}

impl BusinessProfile {
    /// Checks an update against the Cloud API's limits (the parameter named, never echoed).
    pub fn check(&self) -> Result<(), DomainError> {
        if self.about.as_deref() == Some("") {
            return Err(DomainError::InvalidParameter("about"));
        }
        at_most(&self.about, 139, "about")?;
        at_most(&self.address, 256, "address")?;
        at_most(&self.description, 512, "description")?;
        at_most(&self.email, 128, "email")?;
        at_most(
            &self.profile_picture_handle,
            1_024,
            "profile_picture_handle",
        )?;
        if let Some(email) = self.email.as_deref().filter(|e| !e.is_empty()) {
            let valid = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
            });
            if !valid {
                return Err(DomainError::InvalidParameter("email"));
            }
        }
        if let Some(v) = self.vertical.as_deref() {
            if !v.is_empty() && !VERTICALS.contains(&v) {
                return Err(DomainError::InvalidParameter("vertical"));
            }
        }
        if let Some(sites) = &self.websites {
            let web = |s: &String| {
                (s.starts_with("https://") || s.starts_with("http://"))
                    && s.len() <= 256
                    && !s.contains(char::is_whitespace)
            };
            if sites.len() > 2 || !sites.iter().all(web) {
                return Err(DomainError::InvalidParameter("websites"));
            }
        }
        Ok(())
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// This profile with `update`'s fields applied.
    pub fn merged(&self, update: &BusinessProfile) -> BusinessProfile {
        fn pick<T: Clone>(new: &Option<T>, old: &Option<T>) -> Option<T> {
            new.clone().or_else(|| old.clone())
        }
        BusinessProfile {
            about: pick(&update.about, &self.about),
            address: pick(&update.address, &self.address),
            description: pick(&update.description, &self.description),
            email: pick(&update.email, &self.email),
            vertical: pick(&update.vertical, &self.vertical),
            websites: pick(&update.websites, &self.websites),
            profile_picture_handle: pick(
                &update.profile_picture_handle,
                &self.profile_picture_handle,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_the_cloud_apis() {
        let ok = BusinessProfile {
            about: Some("Fresh bread daily".into()),
            email: Some("shop@example.com".into()),
            vertical: Some("RETAIL".into()),
            websites: Some(vec!["https://example.com".into()]),
            ..Default::default()
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = |p: BusinessProfile, name| {
            assert_eq!(p.check(), Err(DomainError::InvalidParameter(name)), "{p:?}")
        };
        bad(
            BusinessProfile {
                about: Some("x".repeat(140)),
                ..Default::default()
            },
            "about",
        );
        bad(
            BusinessProfile {
                about: Some(String::new()),
                ..Default::default()
            },
            "about",
        );
        bad(
            BusinessProfile {
                email: Some("no-at-sign".into()),
                ..Default::default()
            },
            "email",
        );
        bad(
            BusinessProfile {
                vertical: Some("SPACESHIPS".into()),
                ..Default::default()
            },
            "vertical",
        );
        bad(
            BusinessProfile {
                websites: Some(vec![
                    "https://a.example".into(),
                    "https://b.example".into(),
                    "https://c.example".into(),
                ]),
                ..Default::default()
            },
            "websites",
        );
        bad(
            BusinessProfile {
                websites: Some(vec!["ftp://a.example".into()]),
                ..Default::default()
            },
            "websites",
        );
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let old = BusinessProfile {
            about: Some("a".into()),
            address: Some("b".into()),
            ..Default::default()
        };
        let update = BusinessProfile {
            address: Some(String::new()),
            email: Some("x@y.z".into()),
            ..Default::default()
        };
        let new = old.merged(&update);
        assert_eq!(new.about.as_deref(), Some("a"));
        assert_eq!(new.address.as_deref(), Some(""));
        assert_eq!(new.email.as_deref(), Some("x@y.z"));
    }
}
