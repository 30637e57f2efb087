//! The GDPR Art. 30 record of processing activities, generated from the data-availability
//! matrix and the configuration.
//!
//! The record has two parts: the processor's record (Art. 30(2): Sealpost processes on behalf of
//! each business) and, per tenant, the controller's part in the Art. 30(1) shape (the business is
//! the controller of its own data). Nothing category-specific is hand-written per recipient or
//! purpose: recipients are the principal kinds whose matrix cell is `Yes` or `Own`, purposes are
//! those recipients' [`PrincipalKind::purposes`] (less advertising, which the gate refuses for every
//! category but business information), and retention follows the configured periods. Only the
//! data subjects, the retention wording and whether a category survives shredding are chosen per
//! [`Category`], by an exhaustive `match`, so a new category cannot slip in undescribed.
//!
//! [`build_with`] takes the matrix rows as a parameter (so a test can prove that the record follows
//! the matrix); [`build`] uses [`MATRIX`]. Pure: no clock (the time comes in as
//! [`RopaInput::generated_at`]), no I/O.

use sealpost_domain::access::{Availability, Category, MatrixRow, PrincipalKind, Purpose, MATRIX};
use sealpost_domain::time::Timestamp;
use sealpost_domain::Region;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How long data in use may sit outside its storage region (docs/design.md, "Local Storage").
pub const DATA_IN_USE_MAX_MINUTES: u32 = 60;

/// The processor's role, as stated in the record.
pub const PROCESSOR_ROLE: &str = "processor (GDPR Art. 28) on behalf of each business";

/// What the record is generated from, besides the matrix: the deployment's configuration and its
/// tenants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RopaInput {
    /// When the record is generated, in milliseconds since the Unix epoch (UTC).
    pub generated_at: i64,
    /// The operator running Sealpost (the processor), e.g. `"Sealpost (self-hosted)"`.
    pub processor_name: String,
    /// Message retention in days (30): epoch keys are destroyed once this has passed.
    pub retention_days: u32,
    /// Granularity of the retention-epoch keys, in hours (1).
    pub epoch_hours: u32,
    /// How long billing lines are kept, in days.
    pub billing_retention_days: u32,
    /// Statistics groups smaller than this are suppressed (5).
    pub statistics_min_group: u32,
    /// The event store, e.g. `"sqlite (embedded)"` or `"postgres"`.
    pub store: String,
    /// Where the region root keys come from, e.g. `"key file in the data directory (0600)"` or
    /// `"environment"`.
    pub root_key_source: String,
    /// The businesses (controllers) Sealpost processes for.
    pub tenants: Vec<TenantInput>,
}

/// One business (tenant, controller) as the record needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantInput {
    /// The business id (random, never personal).
    pub business_id: String,
    /// The business's name.
    pub name: String,
    /// The ids of the business's phone numbers.
    pub phone_number_ids: Vec<String>,
    /// Codes of the regions where this tenant's data is stored, e.g. `"EU"`, `"DE"`.
    pub regions: Vec<String>,
    /// Hosts of the business's own webhook endpoints (the business is the recipient there).
    pub webhook_hosts: Vec<String>,
}

/// The record of processing activities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ropa {
    /// When it was generated, in milliseconds since the Unix epoch (UTC).
    pub generated_at: i64,
    /// The processor's record (GDPR Art. 30(2)).
    pub processor: ProcessorRecord,
    /// One controller part per tenant (GDPR Art. 30(1) shape), in input order.
    pub controllers: Vec<ControllerRecord>,
}

/// The processor's record (GDPR Art. 30(2)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorRecord {
    /// The processor (the operator running Sealpost).
    pub name: String,
    /// Its role: [`PROCESSOR_ROLE`].
    pub role: String,
    /// The categories of processing carried out on behalf of each business: one per purpose of
    /// the processor's own pipelines.
    pub activities: Vec<ProcessingActivity>,
    /// One record per matrix row, in matrix order.
    pub categories: Vec<CategoryRecord>,
    /// Where data is stored, and what may leave a region.
    pub transfers: Transfers,
    /// General description of the technical and organisational security measures.
    pub security_measures: Vec<String>,
}

/// One purpose of processing and the categories of data it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessingActivity {
    /// The purpose.
    pub purpose: Purpose,
    /// The purpose in words.
    pub description: String,
    /// The categories of data that may be read for it (matrix `Yes`/`Own` of a principal kind
    /// acting for the purpose).
    pub categories: Vec<Category>,
}

/// The record of one category of data (one matrix row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryRecord {
    /// The category.
    pub category: Category,
    /// Its label (the matrix row label).
    pub label: String,
    /// Which system holds it (from the matrix).
    pub held_by: String,
    /// Whose data it is.
    pub data_subjects: String,
    /// Who may receive it: every principal kind whose cell is `Yes` or `Own`.
    pub recipients: Vec<Recipient>,
    /// The purposes it may be read for: the union of the recipients' purposes, in
    /// [`Purpose::ALL`] order.
    pub purposes: Vec<Purpose>,
    /// How long it is kept and how it goes.
    pub retention: String,
    /// Whether it survives crypto-shredding of content and phone numbers.
    pub survives_shredding: bool,
}

/// One recipient of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    /// The principal kind (matrix column).
    pub kind: PrincipalKind,
    /// Its label.
    pub label: String,
    /// Whether it receives only its own business's data (cell `Own`).
    pub own_only: bool,
    /// The purposes it may read this category for.
    pub purposes: Vec<Purpose>,
}

/// What kind of storage region a region code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    /// A default region (NA, EU): where data lives without a Local Storage election.
    Default,
    /// An in-country Local Storage region.
    LocalStorage,
    /// A code that names no known storage region (a configuration error, shown as such).
    Unrecognised,
}

impl RegionKind {
    /// The kind in words.
    pub const fn label(self) -> &'static str {
        match self {
            RegionKind::Default => "default region",
            RegionKind::LocalStorage => "in-country Local Storage",
            RegionKind::Unrecognised => "unrecognised region code",
        }
    }
}

/// One storage region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRecord {
    /// The region code (`"DE"`, `"EU"`, …), normalised to upper case.
    pub code: String,
    /// Default, Local Storage or unrecognised.
    pub kind: RegionKind,
}

/// Where data is stored and what may leave a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfers {
    /// Every region any tenant stores data in, defaults first, without repeats.
    pub regions: Vec<RegionRecord>,
    /// The statement on regions and data in use.
    pub statement: String,
}

/// One category a recipient of a tenant's data may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryGrant {
    /// The category.
    pub category: Category,
    /// Whether only the business's own data (cell `Own`).
    pub own_only: bool,
}

/// A recipient of one tenant's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecipient {
    /// The recipient in words.
    pub recipient: String,
    /// The principal kind (matrix column) it is.
    pub kind: PrincipalKind,
    /// The host, for one of the business's own webhook endpoints.
    pub webhook_host: Option<String>,
    /// What it may receive, per the matrix.
    pub categories: Vec<CategoryGrant>,
}

/// The part of the record for one controller (tenant), in the GDPR Art. 30(1) shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerRecord {
    /// The business id.
    pub business_id: String,
    /// The business's name (the controller).
    pub name: String,
    /// Its phone number ids.
    pub phone_number_ids: Vec<String>,
    /// The regions its data is stored in.
    pub regions: Vec<RegionRecord>,
    /// The purposes its data is processed for, each with the categories it applies to.
    pub purposes: Vec<ProcessingActivity>,
    /// The categories of its data (every matrix row; details in
    /// [`ProcessorRecord::categories`]).
    pub categories: Vec<Category>,
    /// Who receives its data: its own webhook endpoints (what Sealpost's pipelines hold and the
    /// business may receive), then the matrix's principal kinds.
    pub recipients: Vec<TenantRecipient>,
}

/// Builds the record from [`MATRIX`] and `input`.
pub fn build(input: &RopaInput) -> Ropa {
    build_with(&MATRIX, input)
}

/// Builds the record from the given matrix rows and `input`.
pub fn build_with(matrix: &[MatrixRow], input: &RopaInput) -> Ropa {
    let categories: Vec<CategoryRecord> = matrix
        .iter()
        .map(|row| category_record(row, input))
        .collect();
    let all_regions: Vec<RegionRecord> = regions(
        input
            .tenants
            .iter()
            .flat_map(|t| t.regions.iter().map(String::as_str)),
    );
    let processor = ProcessorRecord {
        name: input.processor_name.clone(),
        role: PROCESSOR_ROLE.to_owned(),
        activities: activities(matrix),
        transfers: Transfers {
            statement: transfer_statement(&all_regions),
            regions: all_regions,
        },
        security_measures: security_measures(matrix, input),
        categories,
    };
    let controllers = input
        .tenants
        .iter()
        .map(|t| controller_record(matrix, &processor.categories, t))
        .collect();
    Ropa {
        generated_at: input.generated_at,
        processor,
        controllers,
    }
}

/// Whether `purpose` can apply to `category` at all. Mirrors the gate
/// (`sealpost_domain::access::decide`): no Cloud API data is used for advertising, so advertising
/// is refused for every category but business information.
fn purpose_applies(purpose: Purpose, category: Category) -> bool {
    purpose != Purpose::Advertising || category == Category::BusinessInformation
}

/// The principal kinds whose cell is `Yes` or `Own`, with whether it is `Own`.
fn grants(row: &MatrixRow) -> impl Iterator<Item = (PrincipalKind, bool)> + '_ {
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
fn ordered_purposes(set: impl IntoIterator<Item = Purpose>) -> Vec<Purpose> {
    let set: Vec<Purpose> = set.into_iter().collect();
    Purpose::ALL
        .into_iter()
        .filter(|p| set.contains(p))
        .collect()
}

fn category_record(row: &MatrixRow, input: &RopaInput) -> CategoryRecord {
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
fn purpose_label(purpose: Purpose) -> &'static str {
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
fn activities(matrix: &[MatrixRow]) -> Vec<ProcessingActivity> {
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

/// One region code, parsed and normalised.
fn region_record(code: &str) -> RegionRecord {
    match code.trim().parse::<Region>() {
        Ok(region) => RegionRecord {
            code: region.code().to_owned(),
            kind: if region.is_local_storage() {
                RegionKind::LocalStorage
            } else {
                RegionKind::Default
            },
        },
        Err(_) => RegionRecord {
            code: code.trim().to_uppercase(),
            kind: RegionKind::Unrecognised,
        },
    }
}

/// The regions named by `codes`: known ones in [`Region::ALL`] order (defaults first), then
/// unrecognised codes alphabetically; no repeats.
fn regions<'a>(codes: impl Iterator<Item = &'a str>) -> Vec<RegionRecord> {
    let mut out: Vec<RegionRecord> = codes.map(region_record).collect();
    let rank = |r: &RegionRecord| {
        Region::ALL
            .iter()
            .position(|k| k.code() == r.code && r.kind != RegionKind::Unrecognised)
            .unwrap_or(Region::ALL.len())
    };
    out.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.code.cmp(&b.code)));
    out.dedup();
    out
}

/// The codes of `regions` of one kind, comma-separated, or `"none"`.
fn codes_of(regions: &[RegionRecord], kind: RegionKind) -> String {
    let codes: Vec<&str> = regions
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.code.as_str())
        .collect();
    if codes.is_empty() {
        "none".to_owned()
    } else {
        codes.join(", ")
    }
}

fn transfer_statement(regions: &[RegionRecord]) -> String {
    let defaults: Vec<&str> = Region::ALL
        .iter()
        .filter(|r| !r.is_local_storage())
        .map(|r| r.code())
        .collect();
    let mut s = format!(
        "Default regions (no Local Storage election): {}; in use: {}. In-country Local Storage \
         regions in use: {}. Each region has its own store and its own root key; content and \
         sealed metadata of a phone number that elected Local Storage are written only in its \
         region. Data in use may sit elsewhere for at most {DATA_IN_USE_MAX_MINUTES} minutes.",
        defaults.join(" and "),
        codes_of(regions, RegionKind::Default),
        codes_of(regions, RegionKind::LocalStorage),
    );
    if regions.iter().any(|r| r.kind == RegionKind::Unrecognised) {
        let _ = write!(
            s,
            " Unrecognised region codes in the configuration: {}.",
            codes_of(regions, RegionKind::Unrecognised)
        );
    }
    s
}

fn security_measures(matrix: &[MatrixRow], input: &RopaInput) -> Vec<String> {
    let store = input.store.to_lowercase();
    let key_removal = if store.contains("postgres") {
        "the key table is vacuumed (VACUUM) after shredding"
    } else if store.contains("sqlite") {
        "SQLite secure_delete is on and the WAL is checkpointed after shredding"
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

fn controller_record(
    matrix: &[MatrixRow],
    categories: &[CategoryRecord],
    tenant: &TenantInput,
) -> ControllerRecord {
    let grants_of = |kind: PrincipalKind| -> Vec<CategoryGrant> {
        matrix
            .iter()
            .filter_map(|row| {
                grants(row)
                    .find(|(k, _)| *k == kind)
                    .map(|(_, own_only)| CategoryGrant {
                        category: row.category,
                        own_only,
                    })
            })
            .collect()
    };
    // Sealpost can push to a webhook only what its own pipelines hold.
    let pushed: Vec<CategoryGrant> = grants_of(PrincipalKind::Business)
        .into_iter()
        .filter(|g| {
            grants_of(PrincipalKind::Processor)
                .iter()
                .any(|p| p.category == g.category)
        })
        .collect();
    let mut recipients: Vec<TenantRecipient> = tenant
        .webhook_hosts
        .iter()
        .map(|host| TenantRecipient {
            recipient: format!("the business's own webhook endpoint at {host}"),
            kind: PrincipalKind::Business,
            webhook_host: Some(host.clone()),
            categories: pushed.clone(),
        })
        .collect();
    recipients.extend(PrincipalKind::ALL.into_iter().filter_map(|kind| {
        let categories = grants_of(kind);
        (!categories.is_empty()).then(|| TenantRecipient {
            recipient: kind.label().to_owned(),
            kind,
            webhook_host: None,
            categories,
        })
    }));
    ControllerRecord {
        business_id: tenant.business_id.clone(),
        name: tenant.name.clone(),
        phone_number_ids: tenant.phone_number_ids.clone(),
        regions: regions(tenant.regions.iter().map(String::as_str)),
        purposes: ordered_purposes(categories.iter().flat_map(|c| c.purposes.iter().copied()))
            .into_iter()
            .map(|purpose| ProcessingActivity {
                purpose,
                description: purpose_label(purpose).to_owned(),
                categories: categories
                    .iter()
                    .filter(|c| c.purposes.contains(&purpose))
                    .map(|c| c.category)
                    .collect(),
            })
            .collect(),
        categories: categories.iter().map(|c| c.category).collect(),
        recipients,
    }
}

/// Text made safe for one Markdown table cell or line: no line breaks, no bare `|`.
fn md(s: &str) -> String {
    s.replace(['\r', '\n'], " ").replace('|', "\\|")
}

fn join_purposes(purposes: &[Purpose]) -> String {
    if purposes.is_empty() {
        return "none".to_owned();
    }
    purposes
        .iter()
        .map(|p| purpose_label(*p))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_categories(categories: &[Category]) -> String {
    if categories.is_empty() {
        return "none".to_owned();
    }
    categories
        .iter()
        .map(|c| c.label())
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_regions(regions: &[RegionRecord]) -> String {
    if regions.is_empty() {
        return "none".to_owned();
    }
    regions
        .iter()
        .map(|r| format!("{} ({})", md(&r.code), r.kind.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_text(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items.iter().map(|s| md(s)).collect::<Vec<_>>().join(", ")
}

impl Ropa {
    /// The record as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("a Ropa has only string map keys and plain fields, so it always serializes")
    }

    /// The record as a readable Markdown document.
    pub fn to_markdown(&self) -> String {
        let p = &self.processor;
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(out, "# Record of processing activities\n");
        let _ = writeln!(
            out,
            "GDPR Art. 30, generated at {} from the data-availability matrix and the \
             configuration.\n",
            Timestamp::from_millis(self.generated_at).utc_rfc3339()
        );

        let _ = writeln!(out, "## Processor\n");
        let _ = writeln!(out, "- Name: {}", md(&p.name));
        let _ = writeln!(out, "- Role: {}", md(&p.role));
        let _ = writeln!(
            out,
            "- Controllers: {} (see \"Controllers (per tenant)\")\n",
            self.controllers.len()
        );
        let _ = writeln!(out, "### Categories of processing\n");
        for a in &p.activities {
            let _ = writeln!(
                out,
                "- {}: {}",
                a.description,
                join_categories(&a.categories)
            );
        }
        out.push('\n');

        let _ = writeln!(out, "## Categories of personal data\n");
        let _ = writeln!(
            out,
            "| category | held by | data subjects | recipients | purposes | retention | survives \
             shredding |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for c in &p.categories {
            let recipients = if c.recipients.is_empty() {
                "none".to_owned()
            } else {
                c.recipients
                    .iter()
                    .map(|r| {
                        if r.own_only {
                            format!("{} (own only)", r.label)
                        } else {
                            r.label.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                md(&c.label),
                md(&c.held_by),
                md(&c.data_subjects),
                md(&recipients),
                md(&join_purposes(&c.purposes)),
                md(&c.retention),
                if c.survives_shredding { "yes" } else { "no" }
            );
        }
        out.push('\n');

        let _ = writeln!(out, "## Transfers and regions\n");
        let _ = writeln!(out, "{}\n", md(&p.transfers.statement));
        for r in &p.transfers.regions {
            let _ = writeln!(out, "- {}: {}", md(&r.code), r.kind.label());
        }
        if !p.transfers.regions.is_empty() {
            out.push('\n');
        }

        let _ = writeln!(out, "## Security measures\n");
        for m in &p.security_measures {
            let _ = writeln!(out, "- {}", md(m));
        }
        out.push('\n');

        let _ = writeln!(out, "## Controllers (per tenant)\n");
        if self.controllers.is_empty() {
            let _ = writeln!(out, "No tenants.");
        }
        for c in &self.controllers {
            let _ = writeln!(
                out,
                "### {} (business {})\n",
                md(&c.name),
                md(&c.business_id)
            );
            let _ = writeln!(out, "- Controller: {}", md(&c.name));
            let _ = writeln!(out, "- Business id: {}", md(&c.business_id));
            let _ = writeln!(
                out,
                "- Phone number ids: {}",
                join_text(&c.phone_number_ids)
            );
            let _ = writeln!(out, "- Regions: {}", join_regions(&c.regions));
            let _ = writeln!(out, "- Purposes:");
            for a in &c.purposes {
                let _ = writeln!(
                    out,
                    "  - {}: {}",
                    a.description,
                    join_categories(&a.categories)
                );
            }
            let _ = writeln!(out, "- Categories: {}", join_categories(&c.categories));
            let _ = writeln!(out, "- Recipients:");
            for r in &c.recipients {
                let grants = r
                    .categories
                    .iter()
                    .map(|g| {
                        if g.own_only {
                            format!("{} (own only)", g.category.label())
                        } else {
                            g.category.label().to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(out, "  - {}: {}", md(&r.recipient), grants);
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_domain::access::{decide, Principal};
    use sealpost_domain::ids::BusinessId;

    fn tenant(id: &str, name: &str, phone: &str, regions: &[&str], host: &str) -> TenantInput {
        TenantInput {
            business_id: id.to_owned(),
            name: name.to_owned(),
            phone_number_ids: vec![phone.to_owned()],
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            webhook_hosts: vec![host.to_owned()],
        }
    }

    fn input() -> RopaInput {
        RopaInput {
            generated_at: 1_700_000_000_000,
            processor_name: "Sealpost (self-hosted)".to_owned(),
            retention_days: 30,
            epoch_hours: 1,
            billing_retention_days: 400,
            statistics_min_group: 5,
            store: "sqlite (embedded)".to_owned(),
            root_key_source: "key file in the data directory (0600)".to_owned(),
            tenants: vec![
                tenant(
                    "111111111111111",
                    "Alpha Bakery",
                    "555000111",
                    &["EU", "de"],
                    "hooks.alpha.example",
                ),
                tenant(
                    "222222222222222",
                    "Beta Garage",
                    "555000222",
                    &["NA", "GB"],
                    "hooks.beta.example",
                ),
            ],
        }
    }

    fn record(ropa: &Ropa, category: Category) -> &CategoryRecord {
        ropa.processor
            .categories
            .iter()
            .find(|c| c.category == category)
            .expect("every matrix category has a record")
    }

    #[test]
    fn every_matrix_category_appears_exactly_once() {
        let ropa = build(&input());
        for category in Category::ALL {
            let n = ropa
                .processor
                .categories
                .iter()
                .filter(|c| c.category == category)
                .count();
            assert_eq!(n, 1, "{category:?}");
        }
        assert_eq!(ropa.processor.categories.len(), MATRIX.len());
    }

    #[test]
    fn message_content_goes_to_processor_and_own_business_only() {
        let ropa = build(&input());
        let content = record(&ropa, Category::MessageContent);
        let recipients: Vec<(PrincipalKind, &str, bool)> = content
            .recipients
            .iter()
            .map(|r| (r.kind, r.label.as_str(), r.own_only))
            .collect();
        assert_eq!(
            recipients,
            vec![
                (
                    PrincipalKind::Processor,
                    PrincipalKind::Processor.label(),
                    false
                ),
                (PrincipalKind::Business, "business (own data)", true),
            ]
        );
        assert!(!content.purposes.contains(&Purpose::Advertising));
        assert!(!content.purposes.contains(&Purpose::Analytics));
        assert!(!content.survives_shredding);
        assert!(content.retention.contains("30 days"));
    }

    #[test]
    fn flipping_one_matrix_cell_changes_the_recipients() {
        let col = PrincipalKind::ALL
            .iter()
            .position(|k| *k == PrincipalKind::Operator)
            .expect("operator is a column");
        let mut matrix = MATRIX;
        let row = matrix
            .iter_mut()
            .find(|r| r.category == Category::MessageContent)
            .expect("message content is a row");
        assert_eq!(row.cells[col], Availability::No);
        row.cells[col] = Availability::Yes;

        let before = build(&input());
        let after = build_with(&matrix, &input());
        assert_ne!(before, after);
        let content = record(&after, Category::MessageContent);
        assert!(content
            .recipients
            .iter()
            .any(|r| r.kind == PrincipalKind::Operator));
        assert!(content.purposes.contains(&Purpose::Analytics));
        // The gate's advertising rule still holds.
        assert!(!content.purposes.contains(&Purpose::Advertising));
        assert!(after
            .to_markdown()
            .contains("| message content | Cloud API (Sealpost) |"));
        assert_ne!(before.to_markdown(), after.to_markdown());
        // The per-tenant recipients follow too.
        let operator = after.controllers[0]
            .recipients
            .iter()
            .find(|r| r.kind == PrincipalKind::Operator)
            .expect("the operator receives something");
        assert!(operator
            .categories
            .iter()
            .any(|g| g.category == Category::MessageContent));
    }

    #[test]
    fn listed_purposes_are_allowed_by_the_gate() {
        let ropa = build(&input());
        let owner = BusinessId::from_random(7);
        for c in &ropa.processor.categories {
            for r in &c.recipients {
                let principal = if r.kind == PrincipalKind::Business {
                    Principal::business(owner.clone(), "token")
                } else {
                    Principal::of_kind(r.kind, "principal")
                };
                for p in &r.purposes {
                    assert!(
                        decide(&principal, c.category, *p, Some(&owner)).is_allowed(),
                        "{:?} {:?} {:?}",
                        c.category,
                        r.kind,
                        p
                    );
                }
            }
        }
    }

    #[test]
    fn two_tenants_appear_with_their_regions() {
        let ropa = build(&input());
        assert_eq!(ropa.controllers.len(), 2);
        let a = &ropa.controllers[0];
        let b = &ropa.controllers[1];
        assert_eq!(a.business_id, "111111111111111");
        assert_eq!(b.business_id, "222222222222222");
        let codes = |c: &ControllerRecord| -> Vec<String> {
            c.regions.iter().map(|r| r.code.clone()).collect()
        };
        assert_eq!(codes(a), vec!["EU", "DE"]);
        assert_eq!(codes(b), vec!["NA", "GB"]);
        assert_eq!(a.phone_number_ids, vec!["555000111"]);
        assert_eq!(
            a.recipients[0].webhook_host.as_deref(),
            Some("hooks.alpha.example")
        );
        assert_eq!(a.recipients[0].kind, PrincipalKind::Business);
        assert_eq!(a.categories, Category::ALL.to_vec());
        // The webhook carries only what Sealpost holds: not the access log, not integrity signals.
        let pushed: Vec<Category> = a.recipients[0]
            .categories
            .iter()
            .map(|g| g.category)
            .collect();
        assert!(pushed.contains(&Category::MessageContent));
        assert!(!pushed.contains(&Category::AccessLog));
        assert!(!pushed.contains(&Category::IntegritySignals));
        // Advertising is a purpose for business information only.
        let ads = a
            .purposes
            .iter()
            .find(|p| p.purpose == Purpose::Advertising)
            .expect("business information may be used for advertising");
        assert_eq!(ads.categories, vec![Category::BusinessInformation]);
    }

    #[test]
    fn regions_mark_de_as_local_storage() {
        let ropa = build(&input());
        let regions = &ropa.processor.transfers.regions;
        let kind = |code: &str| {
            regions
                .iter()
                .find(|r| r.code == code)
                .map(|r| r.kind)
                .expect("region listed")
        };
        assert_eq!(kind("DE"), RegionKind::LocalStorage);
        assert_eq!(kind("GB"), RegionKind::LocalStorage);
        assert_eq!(kind("EU"), RegionKind::Default);
        assert_eq!(kind("NA"), RegionKind::Default);
        assert_eq!(regions.len(), 4, "no repeats");
        let statement = &ropa.processor.transfers.statement;
        assert!(statement.contains("Local Storage regions in use: DE, GB"));
        assert!(statement.contains("at most 60 minutes"));
    }

    #[test]
    fn unknown_region_codes_are_flagged() {
        let mut i = input();
        i.tenants[0].regions.push("XX".to_owned());
        let ropa = build(&i);
        let last = ropa
            .processor
            .transfers
            .regions
            .last()
            .expect("regions listed");
        assert_eq!(last.code, "XX");
        assert_eq!(last.kind, RegionKind::Unrecognised);
        assert!(ropa.processor.transfers.statement.contains("Unrecognised"));
    }

    #[test]
    fn retention_and_security_follow_the_configuration() {
        let mut i = input();
        i.retention_days = 14;
        i.billing_retention_days = 90;
        i.statistics_min_group = 11;
        i.store = "postgres".to_owned();
        i.root_key_source = "environment".to_owned();
        let ropa = build(&i);
        assert!(record(&ropa, Category::MessageContent)
            .retention
            .contains("14 days"));
        assert!(record(&ropa, Category::Billing)
            .retention
            .contains("90 days"));
        assert!(record(&ropa, Category::Statistics)
            .retention
            .contains("smaller than 11"));
        let measures = ropa.processor.security_measures.join("\n");
        assert!(measures.contains("VACUUM"));
        assert!(
            measures.contains("Root keys (one per region, wrapping every other key): environment.")
        );
        assert!(measures.contains("AES-256-GCM-SIV"));
        assert!(measures.contains("PQXDH"));
        assert!(measures.contains("Ed25519"));
    }

    #[test]
    fn markdown_has_every_category_and_keeps_tenants_apart() {
        let ropa = build(&input());
        let md = ropa.to_markdown();
        for heading in [
            "# Record of processing activities",
            "## Processor",
            "## Categories of personal data",
            "## Transfers and regions",
            "## Security measures",
            "## Controllers (per tenant)",
        ] {
            assert!(md.contains(heading), "{heading}");
        }
        for category in Category::ALL {
            assert!(md.contains(category.label()), "{category:?}");
        }
        let (_, tenants) = md
            .split_once("## Controllers (per tenant)")
            .expect("controllers section");
        let sections: Vec<&str> = tenants.split("\n### ").skip(1).collect();
        assert_eq!(sections.len(), 2);
        let alpha = [
            "111111111111111",
            "Alpha Bakery",
            "555000111",
            "hooks.alpha.example",
            "DE (in-country Local Storage)",
            "EU (default region)",
        ];
        let beta = [
            "222222222222222",
            "Beta Garage",
            "555000222",
            "hooks.beta.example",
            "GB (in-country Local Storage)",
            "NA (default region)",
        ];
        for (section, own, other) in [(sections[0], alpha, beta), (sections[1], beta, alpha)] {
            for s in own {
                assert!(section.contains(s), "{s} missing from its own section");
            }
            for s in other {
                assert!(!section.contains(s), "{s} leaked into another section");
            }
        }
        // Nor does any tenant's data appear in the processor part above.
        let (processor, _) = md
            .split_once("## Controllers (per tenant)")
            .expect("controllers section");
        for s in [
            "Alpha Bakery",
            "Beta Garage",
            "hooks.alpha.example",
            "555000222",
        ] {
            assert!(!processor.contains(s), "{s}");
        }
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        let mut i = input();
        i.tenants[0].name = "Pipe | Name\n# Heading".to_owned();
        let md = build(&i).to_markdown();
        assert!(md.contains("Pipe \\| Name # Heading"));
        assert!(!md.contains("\n# Heading"));
    }

    #[test]
    fn json_round_trips() {
        let ropa = build(&input());
        let json = ropa.to_json();
        let back: Ropa = serde_json::from_str(&json).expect("the JSON parses back");
        assert_eq!(back, ropa);
        let input_json = serde_json::to_string(&input()).expect("input serializes");
        let input_back: RopaInput = serde_json::from_str(&input_json).expect("input parses");
        assert_eq!(build(&input_back), ropa);
    }
}
