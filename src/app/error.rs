//! What the application layer's operations fail with.

use super::*;

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
    /// Stored content is not what it should be (corruption): alert.
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl AppError {
    /// Whether the failure is transient: the database (event or key store) is down,
    /// unreachable or busy, or the store is shutting down. HTTP answers 503 with the Cloud API's
    /// retryable code 131016; the client retries and the server reconnects by itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            AppError::Domain(_) | AppError::Inconsistent(_) => false,
            AppError::Gate(e) => e.is_unavailable(),
            AppError::Ledger(e) => e.is_unavailable(),
            AppError::Vault(e) => e.is_unavailable(),
            AppError::Retention(e) => e.is_unavailable(),
            AppError::Audit(e) => e.is_unavailable(),
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
