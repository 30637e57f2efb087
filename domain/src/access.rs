//! The data-availability matrix and the access decision it implies.
//!
//! [`MATRIX`] is the one place the matrix of docs/design.md lives: the access gate decides by
//! it, the documentation table is rendered from it ([`matrix_markdown`]) and so will be the
//! record of processing. Deciding is pure; recording each decision is the gate's job (crate
//! `audit`).

use crate::ids::BusinessId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A class of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Message content (text, media, template parameters, profile names).
    MessageContent,
    /// The consumer's phone number.
    ConsumerPhoneNumber,
    /// Non-identifiable statistics.
    Statistics,
    /// Integrity signals per business (held by the transport).
    IntegritySignals,
    /// Business information (Business Manager).
    BusinessInformation,
    /// Billing per business.
    Billing,
    /// The access log itself.
    AccessLog,
}

impl Category {
    /// Every category, in the matrix's row order.
    pub const ALL: [Category; 7] = [
        Category::MessageContent,
        Category::ConsumerPhoneNumber,
        Category::Statistics,
        Category::IntegritySignals,
        Category::BusinessInformation,
        Category::Billing,
        Category::AccessLog,
    ];

    /// The row label of the matrix.
    pub const fn label(self) -> &'static str {
        match self {
            Category::MessageContent => "message content",
            Category::ConsumerPhoneNumber => "consumer phone number",
            Category::Statistics => "non-identifiable statistics",
            Category::IntegritySignals => "integrity signals (per business)",
            Category::BusinessInformation => "business information",
            Category::Billing => "billing (per business)",
            Category::AccessLog => "access log",
        }
    }
}

/// A kind of principal: one column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// Sealpost's own pipelines (delivery, retransmission, retention) acting on the business's
    /// behalf: the "Cloud API" that holds content and numbers.
    Processor,
    /// The rest of the operator: analytics, ads, support.
    Operator,
    /// The WhatsApp transport.
    Transport,
    /// The business, for its own data.
    Business,
    /// An auditor.
    Auditor,
    /// The data-protection officer.
    Dpo,
}

impl PrincipalKind {
    /// Every principal kind, in the matrix's column order.
    pub const ALL: [PrincipalKind; 6] = [
        PrincipalKind::Processor,
        PrincipalKind::Operator,
        PrincipalKind::Transport,
        PrincipalKind::Business,
        PrincipalKind::Auditor,
        PrincipalKind::Dpo,
    ];

    /// The column label.
    pub const fn label(self) -> &'static str {
        match self {
            PrincipalKind::Processor => "Sealpost pipelines (processor)",
            PrincipalKind::Operator => "rest of the operator (analytics, ads, support)",
            PrincipalKind::Transport => "WhatsApp transport",
            PrincipalKind::Business => "business (own data)",
            PrincipalKind::Auditor => "auditor",
            PrincipalKind::Dpo => "DPO",
        }
    }

    /// The purposes this kind of principal may act for.
    pub const fn purposes(self) -> &'static [Purpose] {
        match self {
            PrincipalKind::Processor => &[
                Purpose::Delivery,
                Purpose::Retransmission,
                Purpose::Retention,
                Purpose::Billing,
            ],
            PrincipalKind::Operator => &[
                Purpose::Analytics,
                Purpose::Advertising,
                Purpose::Support,
                Purpose::Billing,
            ],
            PrincipalKind::Transport => &[Purpose::Delivery, Purpose::Integrity],
            PrincipalKind::Business => &[Purpose::BusinessApi],
            PrincipalKind::Auditor => &[Purpose::Audit],
            PrincipalKind::Dpo => &[Purpose::DataProtection],
        }
    }
}

/// Why data is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Delivering a message.
    Delivery,
    /// Retransmitting a message.
    Retransmission,
    /// Applying retention (shredding, expiry).
    Retention,
    /// Computing or reading billing.
    Billing,
    /// Operator analytics.
    Analytics,
    /// Advertising.
    Advertising,
    /// Operator support.
    Support,
    /// Integrity protection (transport).
    Integrity,
    /// The business using its own API.
    BusinessApi,
    /// An audit.
    Audit,
    /// Data-protection work (reports, erasure).
    DataProtection,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 11] = [
        Purpose::Delivery,
        Purpose::Retransmission,
        Purpose::Retention,
        Purpose::Billing,
        Purpose::Analytics,
        Purpose::Advertising,
        Purpose::Support,
        Purpose::Integrity,
        Purpose::BusinessApi,
        Purpose::Audit,
        Purpose::DataProtection,
    ];
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// Available.
    Yes,
    /// Available only for the principal's own business.
    Own,
    /// Not available.
    No,
}

impl Availability {
    const fn label(self) -> &'static str {
        match self {
            Availability::Yes => "yes",
            Availability::Own => "own only",
            Availability::No => "no",
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct MatrixRow {
    /// The category.
    pub category: Category,
    /// Which system holds it.
    pub held_by: &'static str,
    /// Availability per principal kind, in [`PrincipalKind::ALL`] order.
    pub cells: [Availability; 6],
}

use Availability::{No, Own, Yes};

/// The data-availability matrix of docs/design.md. Columns, in [`PrincipalKind::ALL`] order:
/// processor, rest of the operator, transport, business (own), auditor, DPO.
#[rustfmt::skip] // a table: one row a category
pub const MATRIX: [MatrixRow; 7] = [
    // category                          held by                         processor, rest, transport, business, auditor, DPO
    row(Category::MessageContent,           "Cloud API (Sealpost)",         [Yes, No, No, Own, No, No]),
    row(Category::ConsumerPhoneNumber,      "Cloud API (Sealpost)",         [Yes, No, Yes, Own, No, No]),
    row(Category::Statistics,               "Cloud API (Sealpost)",         [Yes, Yes, Yes, Yes, Yes, Yes]),
    row(Category::IntegritySignals,         "WhatsApp client (transport)",  [No, No, Yes, Own, No, No]),
    row(Category::BusinessInformation,      "Business Manager",             [Yes, Yes, Yes, Yes, Yes, Yes]),
    row(Category::Billing,                  "WhatsApp",                     [Yes, Yes, Yes, Yes, Yes, Yes]),
    row(Category::AccessLog,                "audit",                        [No, No, No, Own, Yes, Yes]),
];

const fn row(category: Category, held_by: &'static str, cells: [Availability; 6]) -> MatrixRow {
    MatrixRow {
        category,
        held_by,
        cells,
    }
}

/// The matrix cell for a principal kind and a category.
pub fn availability(kind: PrincipalKind, category: Category) -> Availability {
    let row = MATRIX
        .iter()
        .find(|r| r.category == category)
        .expect("MATRIX has one row per Category (checked by a test)");
    let col = PrincipalKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("PrincipalKind::ALL lists every kind");
    row.cells[col]
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Its kind (matrix column).
    pub kind: PrincipalKind,
    /// A stable id of the principal (token id, pipeline name). Never personal data.
    pub id: String,
    /// The business it belongs to (for `Business` principals).
    pub business: Option<BusinessId>,
}

impl Principal {
    /// One of Sealpost's own pipelines.
    pub fn processor(name: &str) -> Self {
        Self {
            kind: PrincipalKind::Processor,
            id: name.to_owned(),
            business: None,
        }
    }

    /// A principal of a kind that belongs to no business.
    pub fn of_kind(kind: PrincipalKind, id: &str) -> Self {
        Self {
            kind,
            id: id.to_owned(),
            business: None,
        }
    }

    /// A business's own principal.
    pub fn business(business: BusinessId, id: &str) -> Self {
        Self {
            kind: PrincipalKind::Business,
            id: id.to_owned(),
            business: Some(business),
        }
    }
}

/// Why a read was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// The matrix says no for this principal kind and category.
    Matrix,
    /// The datum belongs to another business.
    NotOwner,
    /// The principal kind may not act for this purpose.
    Purpose,
    /// No Cloud API data is used for advertising.
    Advertising,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::Matrix => "not available to this principal",
            DenyReason::NotOwner => "belongs to another business",
            DenyReason::Purpose => "purpose not allowed for this principal",
            DenyReason::Advertising => "never used for advertising",
        })
    }
}

/// The outcome of asking the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Decision {
    /// Allowed.
    Allowed,
    /// Denied, and why.
    Denied(DenyReason),
}

impl Decision {
    /// Whether it is allowed.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// Decides a read of `category` owned by `owner` (the business the datum belongs to) by
/// `principal` for `purpose`. Pure: recording the decision is the gate's job.
pub fn decide(
    principal: &Principal,
    category: Category,
    purpose: Purpose,
    owner: Option<&BusinessId>,
) -> Decision {
    if !principal.kind.purposes().contains(&purpose) {
        return Decision::Denied(DenyReason::Purpose);
    }
    if purpose == Purpose::Advertising && category != Category::BusinessInformation {
        return Decision::Denied(DenyReason::Advertising);
    }
    match availability(principal.kind, category) {
        Availability::No => Decision::Denied(DenyReason::Matrix),
        Availability::Yes => Decision::Allowed,
        Availability::Own => match (principal.business.as_ref(), owner) {
            (Some(mine), Some(theirs)) if mine == theirs => Decision::Allowed,
            _ => Decision::Denied(DenyReason::NotOwner),
        },
    }
}

/// The matrix as a Markdown table (for the docs and the record of processing).
pub fn matrix_markdown() -> String {
    let mut out = String::from("| category | held by |");
    for k in PrincipalKind::ALL {
        out.push(' ');
        out.push_str(k.label());
        out.push_str(" |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(PrincipalKind::ALL.len()));
    for row in MATRIX {
        out.push_str("\n| ");
        out.push_str(row.category.label());
        out.push_str(" | ");
        out.push_str(row.held_by);
        out.push_str(" |");
        for c in row.cells {
            out.push(' ');
            out.push_str(c.label());
            out.push_str(" |");
        }
    }
    out.push('\n');
    out
}

/// What the access log records: every decision, allowed or denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessEvent {
    /// One decision about one read.
    AccessDecided {
        /// Who asked.
        principal: Principal,
        /// Which class of data.
        category: Category,
        /// Why.
        purpose: Purpose,
        /// The object read (a message id, subject id, …: random ids only).
        object: String,
        /// The business the object belongs to.
        owner: Option<BusinessId>,
        /// The decision.
        decision: Decision,
        /// When.
        at: crate::time::Timestamp,
    },
    /// Reads by a system pipeline, counted per minute per purpose instead of one event each.
    AccessCounted {
        /// The pipeline.
        principal: Principal,
        /// Which class of data.
        category: Category,
        /// Why.
        purpose: Purpose,
        /// The business the objects belong to.
        owner: Option<BusinessId>,
        /// The start of the minute (ms since the Unix epoch).
        minute: crate::time::Timestamp,
        /// Allowed reads in that minute.
        allowed: u64,
        /// Denied reads in that minute.
        denied: u64,
    },
}

/// The stream type of access-log events.
pub const ACCESS_STREAM_TYPE: &str = "access";

crate::shim::domain_event!(AccessEvent {
    AccessDecided => "1",
    AccessCounted => "1",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_has_one_row_per_category_in_order() {
        let cats: Vec<Category> = MATRIX.iter().map(|r| r.category).collect();
        assert_eq!(cats, Category::ALL.to_vec());
    }

    #[test]
    fn markdown_has_a_line_per_category() {
        let md = matrix_markdown();
        assert_eq!(md.lines().count(), 2 + Category::ALL.len());
        assert!(md.contains(
            "| message content | Cloud API (Sealpost) | yes | no | no | own only | no | no |"
        ));
    }
}
