//! The one error type of the domain. Each variant says how a caller handles it; none carries
//! personal data, so `Display` is safe to return to clients and to log.

/// A command was refused by the domain rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The aggregate already exists; creating it again is refused. HTTP 400, Cloud API code 100.
    #[error("already exists")]
    AlreadyExists,
    /// The command needs an aggregate that was never created. HTTP 400, code 100.
    #[error("does not exist")]
    NotFound,
    /// A free-form message outside the 24-hour customer-service window. HTTP 400, code 131047.
    #[error(
        "more than 24 hours have passed since the recipient last replied to the sender number"
    )]
    OutsideServiceWindow,
    /// The subject was erased (GDPR Art. 17): the erasure fence refuses every later command.
    /// HTTP 400, code 131026 (undeliverable).
    #[error("the recipient was erased")]
    SubjectErased,
    /// The subject's keys expired with its last message; a new message creates a new subject.
    /// HTTP 400, code 131026.
    #[error("the recipient's data has expired")]
    SubjectExpired,
    /// The command does not fit the aggregate's lifecycle (for example a decryption result for
    /// an outbound message). A bug in the caller: HTTP 500, code 131000.
    #[error("command does not fit the current state: {0}")]
    InvalidTransition(&'static str),
    /// Local Storage can only be changed while the number is unregistered. HTTP 400, code 100.
    #[error("storage configuration can only change while the phone number is unregistered")]
    RegionLocked,
    /// More than 10 register/deregister calls in 72 hours. HTTP 429, code 133016.
    #[error("register/deregister rate limit reached")]
    RegistrationRateLimited,
    /// An argument broke a rule (named, never echoed). HTTP 400, code 131009.
    #[error("parameter value is not valid: {0}")]
    InvalidParameter(&'static str),
}

impl DomainError {
    /// The Cloud API error code a client branches on.
    pub const fn cloud_code(&self) -> u32 {
        match self {
            DomainError::AlreadyExists | DomainError::NotFound | DomainError::RegionLocked => 100,
            DomainError::OutsideServiceWindow => 131_047,
            DomainError::SubjectErased | DomainError::SubjectExpired => 131_026,
            DomainError::InvalidTransition(_) => 131_000,
            DomainError::RegistrationRateLimited => 133_016,
            DomainError::InvalidParameter(_) => 131_009,
        }
    }

    /// The HTTP status that goes with [`DomainError::cloud_code`].
    pub const fn http_status(&self) -> u16 {
        match self {
            DomainError::InvalidTransition(_) => 500,
            DomainError::RegistrationRateLimited => 429,
            _ => 400,
        }
    }
}
