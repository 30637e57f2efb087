//! The key rotations the DPO's retention report lists (ADR 0024): every `LedgerKeyRotated` in
//! the log, of one business or all, read by event type and opened (each is small; a business
//! rotates a key a month per region).

use super::{AppError, Evidence};
use sealpost_domain::{BusinessId, RetentionEvent, RotationReason};
use sealpost_projections::report::KeyRotationRow;

/// Rotations read per query.
const PAGE: u32 = 500;

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
            let page = self
                .store
                .log()
                .read_types(after, &["LedgerKeyRotated"], PAGE)
                .await?;
            let Some(last) = page.last().map(|r| r.position) else {
                break;
            };
            let wanted = page
                .into_iter()
                .filter(|r| r.position <= up_to)
                .filter(|r| scope.is_none_or(|b| r.header.business_id == b.as_str()))
                .collect();
            for e in self.store.open_rows(wanted).await? {
                if let RetentionEvent::LedgerKeyRotated {
                    business_id,
                    region,
                    version,
                    reason,
                    at,
                } = e.decode::<RetentionEvent>()?
                {
                    rows.push(KeyRotationRow {
                        business_id: business_id.as_str().to_owned(),
                        region: region.code().to_owned(),
                        key: "ledger".to_owned(),
                        version,
                        reason: match reason {
                            RotationReason::Scheduled => "scheduled",
                            RotationReason::OnDemand => "on demand",
                        }
                        .to_owned(),
                        at: at.millis(),
                    });
                }
            }
            if last >= up_to {
                break;
            }
            after = last;
        }
        Ok(rows)
    }
}
