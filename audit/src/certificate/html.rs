//! The erasure certificate as a page a DPO can print and file: one self-contained HTML5
//! document (inline CSS, no script, font, image or link) saying what was erased, when, how,
//! at which log position, with the proof and the signed checkpoint note.

use super::ErasureCertificate;
use crate::html::escape as e;
use crate::log::{Checkpoint, InclusionProof};
use crate::verify::BundleRow;
use sealpost_domain::Timestamp;

/// Inline style: A4 pages, sections kept whole, long hashes wrapped.
const STYLE: &str = "\
@page{size:A4;margin:18mm 16mm}\
body{font:11pt/1.45 'DejaVu Sans',Arial,sans-serif;color:#111;margin:0}\
main{max-width:820px;margin:0 auto;padding:24px}\
h1{font-size:20pt;margin:0 0 4px}h2{font-size:13pt;margin:22px 0 6px;border-bottom:1px solid #999}\
section{break-inside:avoid}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:3px 6px;border-bottom:1px solid #ddd}\
th{width:30%;font-weight:600}\
code,pre{font:9pt/1.35 'DejaVu Sans Mono',monospace;word-break:break-all;white-space:pre-wrap}\
pre{background:#f4f4f4;padding:8px;border:1px solid #ddd}\
.meta{color:#444}.ok{color:#0a5}";

/// `ms` as an RFC 3339 UTC time.
fn time(ms: i64) -> String {
    Timestamp::from_millis(ms).utc_rfc3339()
}

/// One table row.
fn row(h: &mut String, label: &str, value: &str) {
    h.push_str(&format!("<tr><th>{}</th><td>{value}</td></tr>\n", e(label)));
}

/// The rows of a proven log entry.
fn entry(h: &mut String, event: &BundleRow) {
    row(
        h,
        "Log position",
        &format!(
            "<strong data-field=\"position\">{}</strong>",
            event.position
        ),
    );
    row(h, "Event", &e(&event.event_type));
    row(h, "Recorded", &time(event.recorded_at));
    row(h, "Region", &e(&event.region));
    row(
        h,
        "Payload SHA-256",
        &format!("<code>{}</code>", e(&event.payload_sha256)),
    );
    if let Some(leaf) = &event.leaf {
        row(h, "Leaf hash", &format!("<code>{}</code>", e(leaf)));
    }
}

/// The inclusion proof and the checkpoint it leads to.
fn proof(h: &mut String, proof: &InclusionProof, checkpoint: &Checkpoint) {
    h.push_str("<table>\n");
    row(h, "Tree size", &proof.size.to_string());
    let path: Vec<String> = proof.path.iter().map(|p| e(p)).collect();
    row(
        h,
        "Audit path (leaf to root)",
        &format!("<code>{}</code>", path.join("<br>")),
    );
    row(h, "Log", &e(&checkpoint.origin));
    row(
        h,
        "Root hash",
        &format!("<code>{}</code>", e(&checkpoint.root)),
    );
    row(h, "Signed", &time(checkpoint.signed_at));
    row(
        h,
        "Signing key (Ed25519)",
        &format!("<code>{}</code>", e(&checkpoint.public_key)),
    );
    h.push_str("</table>\n");
    if checkpoint.note.is_empty() {
        h.push_str("<p>Signed before checkpoints were notes: the JSON certificate's signature is its proof.</p>\n");
    } else {
        h.push_str(&format!(
            "<p>The signed checkpoint (C2SP signed note):</p>\n<pre data-field=\"note\">{}</pre>\n",
            e(&checkpoint.note)
        ));
    }
}

impl ErasureCertificate {
    /// The certificate as one self-contained, printable HTML5 page.
    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(16 * 1024);
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        h.push_str(&format!(
            "<title>Certificate of erasure — subject {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
            e(&self.subject_id)
        ));
        h.push_str(&format!(
            "<header>\n<h1>Certificate of erasure</h1>\n<p class=\"meta\">GDPR Art. 17 · {} · \
             the data subject is named by a random id; this certificate holds no phone number</p>\n</header>\n",
            e(&self.format)
        ));

        h.push_str("<section>\n<h2>What was erased</h2>\n<table>\n");
        row(
            &mut h,
            "Data subject",
            &format!(
                "<code data-field=\"subject_id\">{}</code>",
                e(&self.subject_id)
            ),
        );
        row(&mut h, "Controller (business)", &e(&self.business_id));
        if let Some(number) = &self.phone_number_id {
            row(&mut h, "Business phone number id", &e(number));
        }
        let categories: Vec<String> = self
            .categories
            .iter()
            .map(|c| format!("<li>{}</li>", e(c)))
            .collect();
        row(
            &mut h,
            "Categories",
            &format!("<ul>{}</ul>", categories.concat()),
        );
        h.push_str("</table>\n</section>\n");

        h.push_str("<section>\n<h2>When, and who asked</h2>\n<table>\n");
        row(&mut h, "Requested", &time(self.requested_at));
        let completed = match self.completed_at {
            Some(at) => format!("<span class=\"ok\">{}</span>", time(at)),
            None => "not yet: the keys are destroyed by the next retention run".to_owned(),
        };
        row(&mut h, "Keys destroyed", &completed);
        row(
            &mut h,
            "Requested by",
            &format!("{} ({})", e(&self.requested_by), e(&self.requested_by_kind)),
        );
        h.push_str("</table>\n</section>\n");

        h.push_str(&format!(
            "<section>\n<h2>How</h2>\n<p>{}</p>\n</section>\n",
            e(&self.method)
        ));

        h.push_str("<section>\n<h2>Where it is recorded</h2>\n<table>\n");
        entry(&mut h, &self.event);
        h.push_str("</table>\n");
        proof(&mut h, &self.inclusion_proof, &self.checkpoint);
        h.push_str("</section>\n");

        if let Some(region) = &self.region {
            h.push_str(&format!(
                "<section>\n<h2>In the subject's region ({})</h2>\n<p>The erasure's body is in \
                 the region's own log; the home entry above references it.</p>\n<table>\n",
                e(&region.region)
            ));
            row(
                &mut h,
                "Reference",
                &format!("<code>{}</code>", e(&region.reference)),
            );
            entry(&mut h, &region.event);
            h.push_str("</table>\n");
            proof(&mut h, &region.inclusion_proof, &region.checkpoint);
            h.push_str("</section>\n");
        }

        h.push_str(
            "<section>\n<h2>How to check it</h2>\n<p>The JSON form of this certificate verifies \
             with the log's published key (<code>GET /sealpost/v1/audit/public-key</code>): the \
             entry's leaf hash with the audit path gives the root hash, which the checkpoint \
             signs. The checkpoint note verifies with any C2SP signed-note verifier under the \
             key <code>?format=vkey</code> publishes, and <code>sealpost audit verify</code> \
             checks the whole log.</p>\n</section>\n",
        );
        h.push_str("</main>\n</body>\n</html>\n");
        h
    }
}
