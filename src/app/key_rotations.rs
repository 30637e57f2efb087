//! The key rotations the DPO's retention report lists (ADR 0024, 0025): every `LedgerKeyRotated`
//! in the log, of one business or all, and every step of a root-key rotation (rotated,
//! rewrapped, old generation destroyed), which concerns every business of its region; read by
//! event type and opened (each is small; a business rotates a key a month per region).

use super::{AppError, Evidence};
use sealpost_domain::{BusinessId, RetentionEvent, RotationReason, DEPLOYMENT};
use sealpost_projections::report::KeyRotationRow;

/// Rotations read per query.
const PAGE: u32 = 500;

/// The event types listed: a ledger key's rotation, the audit signing key's, and each step of
/// a root key's.
const LISTED: [&str; 5] = [
    "LedgerKeyRotated",
    "AuditKeyRotated",
    "RootKeyRotated",
    "RootKeysRewrapped",
    "RootKeyDestroyed",
];

/// How a rotation's reason reads in the report.
fn reason(r: RotationReason) -> &'static str {
    match r {
        RotationReason::Scheduled => "scheduled",
        RotationReason::OnDemand => "on demand",
    }
}

impl Evidence<'_> {
    /// The ledger-key rotations recorded up to `up_to` (a checkpoint's size), of `scope` when
    /// given, in log order.
    pub(super) async fn key_rotations(
        &self,
        scope: Option<&BusinessId>,
        up_to: u64,
    ) -> Result<Vec<KeyRotationRow>, AppError> {
        let mut rows = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.log().read_types(after, &LISTED, PAGE).await?;
            let Some(last) = page.last().map(|r| r.position) else {
                break;
            };
            let wanted = page
                .into_iter()
                .filter(|r| r.position <= up_to)
                .filter(|r| {
                    // A root key's steps are the deployment's, and every business's.
                    let root = r.header.business_id == DEPLOYMENT
                        && (r.header.event_type.starts_with("Root")
                            || r.header.event_type == "AuditKeyRotated");
                    root || scope.is_none_or(|b| r.header.business_id == b.as_str())
                })
                .collect();
            for e in self.store.open_rows(wanted).await? {
                rows.extend(row(e.decode::<RetentionEvent>()?));
            }
            if last >= up_to {
                break;
            }
            after = last;
        }
        Ok(rows)
    }
}

/// The report's line for a recorded rotation step (none for an epoch's shredding).
fn row(event: RetentionEvent) -> Option<KeyRotationRow> {
    let (business, region, key, version, why, at) = match event {
        RetentionEvent::LedgerKeyRotated {
            business_id,
            region,
            version,
            reason: why,
            at,
        } => (
            business_id.as_str().to_owned(),
            region,
            "ledger",
            version,
            reason(why).to_owned(),
            at,
        ),
        RetentionEvent::RootKeyRotated {
            region,
            generation,
            reason: why,
            at,
        } => (
            DEPLOYMENT.to_owned(),
            region,
            "root",
            generation,
            reason(why).to_owned(),
            at,
        ),
        RetentionEvent::RootKeysRewrapped {
            region,
            generation,
            rows,
            at,
        } => {
            let why = format!("{rows} keys rewrapped");
            (DEPLOYMENT.to_owned(), region, "root", generation, why, at)
        }
        RetentionEvent::RootKeyDestroyed {
            region,
            generation,
            at,
        } => {
            let why = "old generation destroyed".to_owned();
            (DEPLOYMENT.to_owned(), region, "root", generation, why, at)
        }
        RetentionEvent::AuditKeyRotated {
            region,
            generation,
            reason: why,
            at,
            ..
        } => (
            DEPLOYMENT.to_owned(),
            region,
            "audit",
            generation,
            reason(why).to_owned(),
            at,
        ),
        RetentionEvent::EpochKeyShredded { .. } => return None,
    };
    Some(KeyRotationRow {
        business_id: business,
        region: region.code().to_owned(),
        key: key.to_owned(),
        version,
        reason: why,
        at: at.millis(),
    })
}
