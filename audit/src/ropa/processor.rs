//! The processor's part, read off the matrix: who receives each category and for which
//! purposes, its data subjects and retention (the one hand-written `match`), the processing
//! activities and the security measures.

use super::record::{CategoryRecord, ProcessingActivity, Recipient};
use super::RopaInput;
use sealpost_domain::access::{Availability, Category, MatrixRow, PrincipalKind, Purpose};

/// Whether `purpose` can apply to `category` at all. Mirrors the gate
/// (`sealpost_domain::access::decide`): no Cloud API data is used for advertising, so advertising
/// is refused for every category but business information.
fn purpose_applies(purpose: Purpose, category: Category) -> bool {
    purpose != Purpose::Advertising || category == Category::BusinessInformation
}

/// The principal kinds whose cell is `Yes` or `Own`, with whether it is `Own`.
pub(super) fn grants(row: &MatrixRow) -> impl Iterator<Item = (PrincipalKind, bool)> + '_ {
    PrincipalKind::ALL
        .into_iter()
        .zip(row.cells)
        .filter_map(|(kind, cell)| match cell {
            Availability::Yes => Some((kind, false)),
            Availability::Own => Some((kind, true)),
            Availability::No => None,
        })
}

/// The purposes `kind` may read `category` for.
fn purposes_for(kind: PrincipalKind, category: Category) -> Vec<Purpose> {
    kind.purposes()
        .iter()
        .copied()
        .filter(|p| purpose_applies(*p, category))
        .collect()
}

/// The purposes in `set`, in [`Purpose::ALL`] order, without repeats.
pub(super) fn ordered_purposes(set: impl IntoIterator<Item = Purpose>) -> Vec<Purpose> {
    let set: Vec<Purpose> = set.into_iter().collect();
    Purpose::ALL
        .into_iter()
        .filter(|p| set.contains(p))
        .collect()
}

pub(super) fn category_record(row: &MatrixRow, input: &RopaInput) -> CategoryRecord {
    let category = row.category;
    let recipients: Vec<Recipient> = grants(row)
        .map(|(kind, own_only)| Recipient {
            kind,
            label: kind.label().to_owned(),
            own_only,
            purposes: purposes_for(kind, category),
        })
        .collect();
    let purposes = ordered_purposes(recipients.iter().flat_map(|r| r.purposes.iter().copied()));
    let (data_subjects, retention, survives_shredding) = describe(category, input);
    CategoryRecord {
        category,
        label: category.label().to_owned(),
        held_by: row.held_by.to_owned(),
        data_subjects: data_subjects.to_owned(),
        recipients,
        purposes,
        retention,
        survives_shredding,
    }
}

/// Data subjects, retention and survival of shredding for one category.
fn describe(category: Category, input: &RopaInput) -> (&'static str, String, bool) {
    let days = input.retention_days;
    let hours = input.epoch_hours;
    match category {
        Category::MessageContent => (
            "consumers who message the business",
            format!(
                "at most {days} days: the retention-epoch key ({hours}-hour epochs) is destroyed \
                 once epoch start + {days} days has passed (crypto-shredding); erasure destroys \
                 the subject key at once"
            ),
            false,
        ),
        Category::ConsumerPhoneNumber => (
            "consumers who message the business",
            format!(
                "with the subject's last message, at most {days} days: the subject key and the \
                 blind-index entry are deleted when the subject's last message expires; erasure \
                 deletes them at once"
            ),
            false,
        ),
        Category::Statistics => (
            "none (non-identifiable)",
            format!(
                "kept; non-identifiable counts, groups smaller than {} are suppressed",
                input.statistics_min_group
            ),
            true,
        ),
        Category::IntegritySignals => (
            "businesses (tenants)",
            "held by the transport, not by Sealpost".to_owned(),
            true,
        ),
        Category::BusinessInformation => (
            "businesses (tenants)",
            "while the tenant exists".to_owned(),
            true,
        ),
        Category::Billing => (
            "businesses (tenants)",
            format!(
                "{} days (billing lines carry no content and no phone number)",
                input.billing_retention_days
            ),
            true,
        ),
        Category::AccessLog => (
            "principals of the business, auditors, DPOs",
            "kept for audit; tamper-evident (Merkle log with signed checkpoints); records random \
             ids only"
                .to_owned(),
            true,
        ),
    }
}

/// A purpose in words.
pub(super) fn purpose_label(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Delivery => "delivery",
        Purpose::Retransmission => "retransmission",
        Purpose::Retention => "retention (shredding, expiry)",
        Purpose::Billing => "billing",
        Purpose::Analytics => "analytics",
        Purpose::Advertising => "advertising",
        Purpose::Support => "support",
        Purpose::Integrity => "integrity protection",
        Purpose::BusinessApi => "the business's use of its own API",
        Purpose::Audit => "audit",
        Purpose::DataProtection => "data protection (reports, erasure)",
    }
}

/// One activity per purpose of the processor's pipelines, with the categories they may read.
pub(super) fn activities(matrix: &[MatrixRow]) -> Vec<ProcessingActivity> {
    let kind = PrincipalKind::Processor;
    kind.purposes()
        .iter()
        .map(|&purpose| ProcessingActivity {
            purpose,
            description: purpose_label(purpose).to_owned(),
            categories: matrix
                .iter()
                .filter(|row| {
                    grants(row).any(|(k, _)| k == kind) && purpose_applies(purpose, row.category)
                })
                .map(|row| row.category)
                .collect(),
        })
        .collect()
}

pub(super) fn security_measures(matrix: &[MatrixRow], input: &RopaInput) -> Vec<String> {
    let store = input.store.to_lowercase();
    let key_removal = if store.contains("postgres") {
        "the key table is vacuumed (VACUUM FULL) within a second of shredding"
    } else if store.contains("sqlite") {
        "SQLite secure_delete is on and the WAL is checkpointed within a second of shredding"
    } else {
        "SQLite secure_delete with a WAL checkpoint, or VACUUM of the Postgres key table, after \
         shredding"
    };
    vec![
        format!(
            "Encryption at rest: AES-256-GCM-SIV for every event payload under a per-business \
             ledger key per region, wrapped by the region root key; the associated data binds \
             each row to its stream, sequence, type and version. Store: {}.",
            input.store
        ),
        format!(
            "Crypto-shredding: every personal field is sealed under a message key derived from a \
             per-epoch key ({}-hour epochs) and a per-subject key; destroying either key shreds \
             it. Epoch keys are destroyed after {} days; erasure destroys the subject key.",
            input.epoch_hours, input.retention_days
        ),
        "End-to-end encryption with the consumer: Signal protocol (PQXDH, with post-quantum \
         prekeys); the transport only ever sees ciphertext."
            .to_owned(),
        format!(
            "Root keys (one per region, wrapping every other key): {}.",
            input.root_key_source
        ),
        format!(
            "Access gate: every read of classified data is decided by the data-availability matrix \
             ({} categories × {} principal kinds), and every decision, allowed or denied, is \
             recorded with principal, category, purpose, object and time.",
            matrix.len(),
            PrincipalKind::ALL.len()
        ),
        "Tamper-evident log: an append-only Merkle tree (RFC 6962) over the sealed rows, with \
         Ed25519-signed checkpoints and inclusion and consistency proofs."
            .to_owned(),
        format!(
            "Destroyed keys are removed from the bytes of the key store: {key_removal}. Copies can \
             linger in WAL archives, backups and replicas until they are rotated out."
        ),
        "No personal data in logs, traces, metrics, error bodies or panic messages; ids in \
         plaintext columns are random."
            .to_owned(),
    ]
}
