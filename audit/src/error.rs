//! Why an audit-log operation failed (shared by the log and its tiles).

use sealpost_adapters::store::StoreError;
use sealpost_adapters::vault::VaultError;

/// Why an audit-log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed: retry later (HTTP 503) when [`StoreError::is_unavailable`], else
    /// alert (HTTP 500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing key could not be loaded (HTTP 500; check the root key).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The rows or leaves are not contiguous: run `sealpost audit verify`.
    #[error("the log is not contiguous at position {0}: run `sealpost audit verify`")]
    Gap(u64),
    /// A proof was asked for a position or size the log does not have (HTTP 400).
    #[error("position {position} is not in a tree of size {size}")]
    OutOfRange {
        /// The position asked for.
        position: u64,
        /// The tree size.
        size: u64,
    },
    /// The witness file could not be read or written.
    #[error("witness file: {0}")]
    Witness(String),
}

impl AuditError {
    /// Whether the failure is transient (the database is down or busy): retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            AuditError::Store(e) => e.is_unavailable(),
            AuditError::Vault(e) => e.is_unavailable(),
            AuditError::Gap(_) | AuditError::OutOfRange { .. } | AuditError::Witness(_) => false,
        }
    }
}
