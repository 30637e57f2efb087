//! Ledger keys rotate in operation (ADR 0024): every business's ledger key in every region
//! whose newest version is older than the rotation period gets a new version, scheduled by the
//! retention pass; an operator may ask for one at any time. Each rotation is recorded first
//! (`LedgerKeyRotated` on the business's retention ledger, at most once per version) and the
//! key made after, so a pass that stops in between is finished by the next one. Events from
//! then on are sealed under the new version; earlier versions stay for reading.

use super::RetentionError;
use sealpost_adapters::exec::Executor;
use sealpost_adapters::vault::VaultError;
use sealpost_domain::time::DAY_MS;
use sealpost_domain::{BusinessId, Principal, Region, RetentionCommand, RotationReason, Timestamp};

/// How long a ledger key version seals new events before the next one (30 days).
pub const DEFAULT_LEDGER_ROTATION_MS: i64 = 30 * DAY_MS;

/// Ledger keys rotated in one pass at most (the rest in the next pass: after an upgrade every
/// key is due at once).
const ROTATIONS_PER_PASS: usize = 100;

/// Rotates `business`'s ledger key in `region` now, for `reason`, acting as `principal`:
/// records the rotation, then makes exactly the version it recorded. `None` when the business
/// has no ledger key there (nothing was ever sealed there to rotate from), or when `from` is
/// given and the newest version is no longer that one (rotated meanwhile).
pub async fn rotate_ledger_key(
    exec: &Executor,
    principal: &Principal,
    (business, region): (&BusinessId, Region),
    (reason, from): (RotationReason, Option<u32>),
    now: Timestamp,
) -> Result<Option<u32>, RetentionError> {
    let vault = exec.store().vault().clone();
    let Some(head) = vault
        .key_store()
        .latest_ledger(business.as_str(), region.code())
        .await
        .map_err(VaultError::from)?
    else {
        return Ok(None);
    };
    if from.is_some_and(|v| v != head.version) {
        return Ok(None);
    }
    let version = head.version + 1;
    let command = RetentionCommand::RotateLedgerKey {
        business_id: business.clone(),
        region,
        version,
        reason,
    };
    super::record_on_ledger(exec, principal, (business.as_str(), region), command, now).await?;
    // The version recorded, not one past whatever is newest by now: two rotations asked at
    // once record one version and make that one.
    vault
        .advance_ledger_key(business.as_str(), region, version, now)
        .await?;
    tracing::info!(
        region = region.code(),
        version,
        ?reason,
        "ledger key rotated"
    );
    Ok(Some(version))
}

/// Rotates every ledger key whose newest version is `period_ms` old or older; how many.
pub(super) async fn rotate_due(
    exec: &Executor,
    principal: &Principal,
    period_ms: i64,
    now: Timestamp,
) -> Result<u64, RetentionError> {
    if period_ms <= 0 {
        return Ok(0);
    }
    let heads = exec
        .store()
        .vault()
        .key_store()
        .ledger_heads()
        .await
        .map_err(VaultError::from)?;
    let due = heads
        .into_iter()
        .filter(|h| now.millis() - h.created_at >= period_ms)
        .take(ROTATIONS_PER_PASS);
    let mut rotated = 0;
    for head in due {
        let (Ok(business), Ok(region)) = (
            BusinessId::parse(&head.business_id),
            head.region.parse::<Region>(),
        ) else {
            // One unreadable row does not hold up the others' rotation.
            tracing::error!("a ledger key row names no business or region; not rotated");
            continue;
        };
        let at = (&business, region);
        let why = (RotationReason::Scheduled, Some(head.version));
        if rotate_ledger_key(exec, principal, at, why, now)
            .await?
            .is_some()
        {
            rotated += 1;
        }
    }
    Ok(rotated)
}
