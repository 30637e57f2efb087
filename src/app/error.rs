//! What the application layer's operations fail with.

use super::*;
use sealpost_domain::ports::signal::SignalError;
use sealpost_domain::ports::transport::TransportError;

/// Application errors. `Display` never contains personal data.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A domain rule refused the command: answer with its Cloud API code.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The access gate refused the read (recorded), or could not record its decision.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// Storage failed: retry later when [`AppError::is_unavailable`] (HTTP 503), else alert.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Keys failed (destroyed keys on write map to [`DomainError::SubjectErased`] first).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The retention process failed: it resumes on its next pass.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// The tamper-evident log failed.
    #[error(transparent)]
    Audit(#[from] sealpost_audit::log::AuditError),
    /// Stored data does not parse as what it must be (an id, a number, Signal state, a
    /// description): corruption. Alert; retrying does not help.
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A stream lacks what its first events must have given it (a message without its number,
    /// a number without its business): an earlier partial write or a bug. Alert.
    #[error("state is incomplete: {0}")]
    Incomplete(&'static str),
    /// Our own data would not encode (JSON): a bug. Alert.
    #[error("could not encode {0}")]
    Encode(&'static str),
    /// The Signal library refused an operation on a business account or session.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The transport refused the message or could not be reached; the pipeline retries.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A number this pipeline or recorder does not serve (not attached yet): attach it first.
    #[error("the phone number is not attached")]
    NotAttached,
    /// A key that must exist is missing or destroyed: the data it guards is gone.
    #[error("key missing: {0}")]
    KeyMissing(&'static str),
    /// A file of the data directory could not be written.
    #[error("{what} could not be written: {source}")]
    File {
        /// Which file.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

impl AppError {
    /// Whether the failure is transient: the database (event or key store) is down,
    /// unreachable or busy, or the store is shutting down. HTTP answers 503 with the Cloud API's
    /// retryable code 131016; the client retries and the server reconnects by itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            AppError::Domain(_)
            | AppError::Corrupt(_)
            | AppError::Incomplete(_)
            | AppError::Encode(_)
            | AppError::Signal(_)
            | AppError::Transport(_)
            | AppError::NotAttached
            | AppError::KeyMissing(_)
            | AppError::File { .. } => false,
            AppError::Gate(e) => e.is_unavailable(),
            AppError::Ledger(e) => e.is_unavailable(),
            AppError::Vault(e) => e.is_unavailable(),
            AppError::Retention(e) => e.is_unavailable(),
            AppError::Audit(e) => e.is_unavailable(),
        }
    }
}

impl AppError {
    /// Whether a write was refused because this node's lease on the work was taken over by
    /// another node (ADR 0016): the worker stops that work; not a failure to alert on.
    pub fn is_fenced(&self) -> bool {
        match self {
            AppError::Ledger(LedgerError::Store(e) | LedgerError::Vault(VaultError::Store(e)))
            | AppError::Vault(VaultError::Store(e)) => e.is_fenced(),
            _ => false,
        }
    }
}

impl From<ExecError> for AppError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Domain(d) => AppError::Domain(d),
            ExecError::Ledger(l) => AppError::Ledger(l),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Ledger(LedgerError::Store(e))
    }
}
