//! What the evidence routes answer with, and the queries they read: typed, so that the OpenAPI
//! document describes them (ADR 0028).

use sealpost_adapters::store::AccessEntry;
use sealpost_audit::certificate::ErasureCertificate;
use sealpost_audit::log::{Checkpoint, ConsistencyProof, InclusionProof};
use sealpost_domain::{MessageContent, MessageKind};
use sealpost_projections::evidence::{BillingRow, StatRow};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The access log's query.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read as a map, member by member; this is its schema.
pub(in crate::http) struct AccessParams {
    /// A principal's id.
    pub(super) principal: Option<String>,
    /// `business`, `operator`, `auditor`, `dpo`, …
    pub(super) principal_kind: Option<String>,
    /// A data category of the matrix.
    pub(super) category: Option<String>,
    /// A purpose.
    pub(super) purpose: Option<String>,
    /// `allowed` or `denied`.
    pub(super) decision: Option<String>,
    /// The object read.
    pub(super) object: Option<String>,
    /// A business.
    pub(super) business_id: Option<String>,
    /// From (ms).
    pub(super) from: Option<i64>,
    /// To (ms).
    pub(super) to: Option<i64>,
    /// The cursor of the next page.
    pub(super) after: Option<u64>,
    /// At most this many entries.
    pub(super) limit: Option<u64>,
}

/// An evidence query narrowed to one business.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the `Asked` extractor; this is its schema.
pub(in crate::http) struct BusinessQuery {
    /// A business (a business's own token is always narrowed to its own).
    pub(super) business_id: Option<String>,
}

/// A page of the access log.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct AccessLog {
    /// The entries, in log order.
    pub(super) data: Vec<AccessEntry>,
    /// The next page's cursor.
    pub(super) paging: Next,
    /// The checkpoint the page is consistent with.
    pub(super) checkpoint: Checkpoint,
}

/// Where the next page starts.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct Next {
    /// The `after` of the next page; none at the end.
    pub(super) next: Option<String>,
}

/// The keys checkpoints verify under.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct PublicKeys {
    /// The home log's.
    #[serde(flatten)]
    pub(super) home: LogKey,
    /// Always `Ed25519`.
    pub(super) algorithm: &'static str,
    /// Each Local Storage region's own log's, by region code.
    pub(super) regions: BTreeMap<String, LogKey>,
}

/// A log's signing key.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct LogKey {
    /// The log's name.
    pub(super) origin: String,
    /// The Ed25519 public key, hex.
    pub(super) public_key: String,
    /// The C2SP note verifier key.
    pub(super) vkey: String,
}

/// An inclusion or a consistency proof.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(in crate::http) enum Proof {
    /// A row is in the tree.
    Inclusion(InclusionProof),
    /// A tree is a prefix of a larger one.
    Consistency(ConsistencyProof),
}

/// Statistics.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct Statistics {
    /// The groups.
    pub(super) data: Vec<StatRow>,
    /// Groups of fewer consumers are suppressed.
    pub(super) min_group: u32,
    /// The checkpoint the figures are consistent with.
    pub(super) checkpoint: Checkpoint,
}

/// Billing lines.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct Billing {
    /// The lines.
    pub(super) data: Vec<BillingRow>,
    /// The checkpoint the figures are consistent with.
    pub(super) checkpoint: Checkpoint,
}

/// The outcome of an erasure request.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct Erased {
    /// Whether anything was erased.
    pub(super) erased: bool,
    /// The erasure certificate, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) certificate: Option<Box<ErasureCertificate>>,
    /// Why nothing was, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<&'static str>,
}

/// A business's read of one of its messages.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct MessageRead {
    /// The message's id.
    pub(super) id: String,
    /// Its type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<MessageKind>,
    /// The Cloud API message object it was sent or received as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<MessageContent>,
    /// `true`: its key was destroyed; nothing of it can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) shredded: Option<bool>,
}
