//! The record rendered: pretty JSON, and a Markdown document whose table cells cannot be
//! broken by configured text.

use super::processor::purpose_label;
use super::record::{RegionRecord, Ropa};
use sealpost_domain::access::{Category, Purpose};
use sealpost_domain::time::Timestamp;
use std::fmt::Write as _;

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
        for st in &p.transfers.stores {
            let name = st
                .region
                .as_deref()
                .map_or("home store".to_owned(), |r| format!("{r} store"));
            let checkpoint = st.checkpoint.as_ref().map_or(String::new(), |c| {
                format!(
                    "; checkpoint of size {} with root {}, signed by {}",
                    c.size, c.root, c.public_key
                )
            });
            let _ = writeln!(
                out,
                "- {}: {}; holds {}{}",
                md(&name),
                md(&st.location),
                md(&st.holds),
                md(&checkpoint)
            );
        }
        if !p.transfers.stores.is_empty() {
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
