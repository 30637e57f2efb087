//! A business's message templates. Free-form messages need an open service window; outside
//! it only an approved template may be sent. Approval is a simple review step: a template is
//! approved once [`REVIEW_MS`] has passed since it was submitted.

use crate::error::DomainError;
use crate::ids::BusinessId;
use crate::shim::{cqrs_aggregate, domain_event, Decider};
use crate::time::{Timestamp, SECOND_MS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long the review of a new template takes.
pub const REVIEW_MS: i64 = 60 * SECOND_MS;

/// A template as stored (business information, never personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Its id.
    pub id: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// The components, as the Cloud API's JSON.
    pub components: String,
    /// When it was submitted.
    pub submitted_at: Timestamp,
    /// Whether its review's outcome was recorded (`TemplateReviewed`, which the
    /// `message_template_status_update` webhook tells of).
    #[serde(default)]
    pub reviewed: bool,
}

/// The templates of one business, by (name, language).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateLibrary {
    /// The business.
    pub business_id: Option<BusinessId>,
    /// Live templates.
    pub templates: BTreeMap<(String, String), Template>,
}

impl TemplateLibrary {
    /// The category of an approved template, or `None` (unknown, deleted or still in review).
    pub fn approved(&self, name: &str, language: &str, now: Timestamp) -> Option<&Template> {
        self.templates
            .get(&(name.to_owned(), language.to_owned()))
            .filter(|t| now.millis() >= t.submitted_at.millis() + REVIEW_MS)
    }

    /// `APPROVED` or `PENDING`.
    pub fn status(t: &Template, now: Timestamp) -> &'static str {
        if now.millis() >= t.submitted_at.millis() + REVIEW_MS {
            "APPROVED"
        } else {
            "PENDING"
        }
    }
}

/// What the library can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateCommand {
    /// Submit a template for review.
    Create {
        /// The business.
        business_id: BusinessId,
        /// A random id.
        id: String,
        /// Lowercase letters, digits and underscores.
        name: String,
        /// Language code (`en_US`).
        language: String,
        /// Category.
        category: String,
        /// Components JSON.
        components: String,
    },
    /// Delete every language of a template.
    Delete {
        /// Its name.
        name: String,
    },
    /// Record the outcome of every review that is over and not recorded yet.
    RecordReviews,
}

/// What happened to the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateEvent {
    /// A template was submitted for review.
    TemplateSubmitted {
        /// The business.
        business_id: BusinessId,
        /// Its id.
        id: String,
        /// Name.
        name: String,
        /// Language.
        language: String,
        /// Category.
        category: String,
        /// Components JSON.
        components: String,
        /// When.
        at: Timestamp,
    },
    /// A template's review is over: `APPROVED` (the review approves every template).
    TemplateReviewed {
        /// Its id.
        id: String,
        /// Name.
        name: String,
        /// Language.
        language: String,
        /// `APPROVED`.
        status: String,
        /// When.
        at: Timestamp,
    },
    /// A template (every language) was deleted.
    TemplateDeleted {
        /// Name.
        name: String,
        /// When.
        at: Timestamp,
    },
}

domain_event!(TemplateEvent {
    TemplateSubmitted => "1",
    TemplateDeleted => "1",
    TemplateReviewed => "1",
});

impl Decider for TemplateLibrary {
    type Command = TemplateCommand;
    type Event = TemplateEvent;

    fn decide(
        &self,
        command: TemplateCommand,
        now: Timestamp,
    ) -> Result<Vec<TemplateEvent>, DomainError> {
        match command {
            TemplateCommand::Create {
                business_id,
                id,
                name,
                language,
                category,
                components,
            } => {
                if name.is_empty()
                    || name.len() > 512
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    return Err(DomainError::InvalidParameter("name"));
                }
                if !(2..=8).contains(&language.len())
                    || !language
                        .bytes()
                        .all(|b| b.is_ascii_alphabetic() || b == b'_')
                {
                    return Err(DomainError::InvalidParameter("language"));
                }
                if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&category.as_str()) {
                    return Err(DomainError::InvalidParameter("category"));
                }
                if self
                    .templates
                    .contains_key(&(name.clone(), language.clone()))
                {
                    return Err(DomainError::AlreadyExists);
                }
                Ok(vec![TemplateEvent::TemplateSubmitted {
                    business_id,
                    id,
                    name,
                    language,
                    category,
                    components,
                    at: now,
                }])
            }
            TemplateCommand::Delete { name } => {
                if !self.templates.keys().any(|(n, _)| *n == name) {
                    return Err(DomainError::NotFound);
                }
                Ok(vec![TemplateEvent::TemplateDeleted { name, at: now }])
            }
            TemplateCommand::RecordReviews => Ok(self
                .templates
                .iter()
                .filter(|(_, t)| !t.reviewed && TemplateLibrary::status(t, now) == "APPROVED")
                .map(|((name, language), t)| TemplateEvent::TemplateReviewed {
                    id: t.id.clone(),
                    name: name.clone(),
                    language: language.clone(),
                    status: "APPROVED".into(),
                    at: now,
                })
                .collect()),
        }
    }

    fn apply(&mut self, event: TemplateEvent) {
        match event {
            TemplateEvent::TemplateSubmitted {
                business_id,
                id,
                name,
                language,
                category,
                components,
                at,
            } => {
                self.business_id = Some(business_id);
                self.templates.insert(
                    (name, language),
                    Template {
                        id,
                        category,
                        components,
                        submitted_at: at,
                        reviewed: false,
                    },
                );
            }
            TemplateEvent::TemplateReviewed { name, language, .. } => {
                if let Some(t) = self.templates.get_mut(&(name, language)) {
                    t.reviewed = true;
                }
            }
            TemplateEvent::TemplateDeleted { name, .. } => {
                self.templates.retain(|(n, _), _| *n != name)
            }
        }
    }
}

cqrs_aggregate!(TemplateLibrary, "templates");
