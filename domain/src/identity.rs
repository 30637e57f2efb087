//! Business Manager identities: access tokens of system users and of Sealpost's own principals.
//! A token itself is never stored: only a hash of it.

use crate::access::Principal;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The stream type of token events (one stream per token id).
pub const TOKEN_STREAM_TYPE: &str = "token";

/// Lets a token send and read messages.
pub const SCOPE_MESSAGING: &str = "whatsapp_business_messaging";
/// Lets a token manage numbers, templates and subscriptions.
pub const SCOPE_MANAGEMENT: &str = "whatsapp_business_management";

/// What happened to a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenEvent {
    /// A token was issued.
    TokenIssued {
        /// Random id of the token (not the token).
        token_id: String,
        /// Hex SHA-256 of the token's bytes.
        hash: String,
        /// Whose it is.
        principal: Principal,
        /// What it may do.
        scopes: Vec<String>,
        /// When.
        at: Timestamp,
    },
    /// The token was revoked, with immediate effect.
    TokenRevoked {
        /// When.
        at: Timestamp,
    },
}

crate::shim::domain_event!(TokenEvent {
    TokenIssued => "1",
    TokenRevoked => "1",
});
