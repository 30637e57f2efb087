//! One consumer as seen by one business: the sealed routing number, the 24-hour
//! customer-service window, erasure and expiry.

use crate::error::DomainError;
use crate::ids::{BusinessId, SubjectId};
use crate::sealed::Sealed;
use crate::shim::{cqrs_aggregate, domain_event, Decider};
use crate::time::{Timestamp, HOUR_MS};
use serde::{Deserialize, Serialize};

/// How long a customer-service window stays open after the consumer's last message.
pub const SERVICE_WINDOW_MS: i64 = 24 * HOUR_MS;

/// Where a subject is in its life.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubjectLifecycle {
    /// Not created yet.
    #[default]
    Unknown,
    /// Messages may flow.
    Active,
    /// Erased on request (GDPR Art. 17). The erasure fence: nothing may recreate it.
    Erased,
    /// Its last message expired and its keys were destroyed.
    Expired,
}

/// Why a subject's keys were destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShredReason {
    /// Its last message passed the retention period.
    Expired,
    /// An erasure request.
    Erasure,
}

/// Subject state. Holds no personal data in plaintext.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The subject's id.
    pub id: Option<SubjectId>,
    /// The business it belongs to.
    pub business_id: Option<BusinessId>,
    /// Lifecycle.
    pub lifecycle: SubjectLifecycle,
    /// End of the current customer-service window, if one was ever opened.
    pub window_open_until: Option<Timestamp>,
}

impl Subject {
    /// Whether a free-form (non-template) message may be sent at `now`.
    pub fn service_window_open(&self, now: Timestamp) -> bool {
        self.window_open_until.is_some_and(|until| now < until)
    }

    fn ensure_active(&self) -> Result<(), DomainError> {
        match self.lifecycle {
            SubjectLifecycle::Unknown => Err(DomainError::NotFound),
            SubjectLifecycle::Active => Ok(()),
            SubjectLifecycle::Erased => Err(DomainError::SubjectErased),
            SubjectLifecycle::Expired => Err(DomainError::SubjectExpired),
        }
    }
}

/// What a subject can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectCommand {
    /// Create the subject with its routing number sealed under its own subject key.
    Create {
        /// Random id.
        subject_id: SubjectId,
        /// The business.
        business_id: BusinessId,
        /// The phone number, sealed (subject scope).
        phone: Sealed,
    },
    /// The consumer sent a message at `now`: open or extend the service window.
    RecordInboundActivity,
    /// Erase the subject (GDPR Art. 17).
    Erase {
        /// The principal that asked (an id, never a person's data).
        requested_by: String,
    },
    /// The subject's last message expired; record that its keys were destroyed.
    Expire,
    /// The consumer's Signal identity key changed (a re-installed app, a new phone).
    RecordIdentityChange,
}

/// What happened to a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubjectEvent {
    /// A subject was created.
    SubjectCreated {
        /// Its id.
        subject_id: SubjectId,
        /// The business.
        business_id: BusinessId,
        /// The routing phone number, sealed under the subject key.
        phone: Sealed,
        /// When.
        at: Timestamp,
    },
    /// A customer-service window was opened or extended.
    ServiceWindowOpened {
        /// The consumer's message time.
        at: Timestamp,
        /// End of the window.
        until: Timestamp,
    },
    /// The subject was erased: its key, index entry and Signal session are destroyed and
    /// nothing may recreate it.
    SubjectErased {
        /// Who asked.
        requested_by: String,
        /// When.
        at: Timestamp,
    },
    /// The subject's keys were destroyed because its last message expired.
    SubjectExpired {
        /// When.
        at: Timestamp,
    },
    /// The consumer's Signal identity key changed; the new one was accepted (the consumer sees
    /// a "security code changed" notice, as in WhatsApp).
    ConsumerIdentityChanged {
        /// When.
        at: Timestamp,
    },
}

domain_event!(SubjectEvent {
    SubjectCreated => "1",
    ServiceWindowOpened => "1",
    SubjectErased => "1",
    SubjectExpired => "1",
    ConsumerIdentityChanged => "1",
});

impl Decider for Subject {
    type Command = SubjectCommand;
    type Event = SubjectEvent;

    fn decide(
        &self,
        command: SubjectCommand,
        now: Timestamp,
    ) -> Result<Vec<SubjectEvent>, DomainError> {
        match command {
            SubjectCommand::Create {
                subject_id,
                business_id,
                phone,
            } => match self.lifecycle {
                SubjectLifecycle::Unknown => Ok(vec![SubjectEvent::SubjectCreated {
                    subject_id,
                    business_id,
                    phone,
                    at: now,
                }]),
                SubjectLifecycle::Erased => Err(DomainError::SubjectErased),
                SubjectLifecycle::Active | SubjectLifecycle::Expired => {
                    Err(DomainError::AlreadyExists)
                }
            },
            SubjectCommand::RecordInboundActivity => {
                self.ensure_active()?;
                Ok(vec![SubjectEvent::ServiceWindowOpened {
                    at: now,
                    until: now.plus_millis(SERVICE_WINDOW_MS),
                }])
            }
            SubjectCommand::Erase { requested_by } => match self.lifecycle {
                SubjectLifecycle::Unknown => Err(DomainError::NotFound),
                // Repeating an erasure is safe: nothing more happens.
                SubjectLifecycle::Erased => Ok(vec![]),
                SubjectLifecycle::Active | SubjectLifecycle::Expired => {
                    Ok(vec![SubjectEvent::SubjectErased {
                        requested_by,
                        at: now,
                    }])
                }
            },
            SubjectCommand::RecordIdentityChange => {
                self.ensure_active()?;
                Ok(vec![SubjectEvent::ConsumerIdentityChanged { at: now }])
            }
            SubjectCommand::Expire => match self.lifecycle {
                SubjectLifecycle::Unknown => Err(DomainError::NotFound),
                SubjectLifecycle::Erased | SubjectLifecycle::Expired => Ok(vec![]),
                SubjectLifecycle::Active => Ok(vec![SubjectEvent::SubjectExpired { at: now }]),
            },
        }
    }

    fn apply(&mut self, event: SubjectEvent) {
        match event {
            SubjectEvent::SubjectCreated {
                subject_id,
                business_id,
                ..
            } => {
                self.id = Some(subject_id);
                self.business_id = Some(business_id);
                self.lifecycle = SubjectLifecycle::Active;
            }
            SubjectEvent::ServiceWindowOpened { until, .. } => {
                self.window_open_until =
                    Some(self.window_open_until.map_or(until, |u| u.max(until)));
            }
            SubjectEvent::SubjectErased { .. } => {
                self.lifecycle = SubjectLifecycle::Erased;
                self.window_open_until = None;
            }
            SubjectEvent::SubjectExpired { .. } => {
                self.lifecycle = SubjectLifecycle::Expired;
                self.window_open_until = None;
            }
            SubjectEvent::ConsumerIdentityChanged { .. } => {}
        }
    }
}

cqrs_aggregate!(Subject, "subject");
