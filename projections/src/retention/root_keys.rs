//! Region root keys rotate online (ADR 0025), recorded on the deployment's retention ledger of
//! the region (business `0`): a rotation's generation is made in the custody, then recorded
//! (`RootKeyRotated`, once per generation), then made current, so a rotation that stops in
//! between is finished by the next ask and none is recorded that the custody could not make;
//! a rewrap is recorded when it moved rows (`RootKeysRewrapped`); an old generation's
//! destruction is recorded once this node destroyed it (`RootKeyDestroyed`). The retention
//! pass finishes, hourly, any rewrap a rotation left to do.

use super::RetentionError;
use sealpost_adapters::exec::Executor;
use sealpost_adapters::vault::Retirement;
use sealpost_domain::{Principal, Region, RetentionCommand, RotationReason, Timestamp, DEPLOYMENT};

/// Records `command` on the deployment's retention ledger of `region`.
async fn record(
    exec: &Executor,
    principal: &Principal,
    region: Region,
    command: RetentionCommand,
    now: Timestamp,
) -> Result<(), RetentionError> {
    super::record_on_ledger(exec, principal, (DEPLOYMENT, region), command, now).await
}

/// Gives `region`'s root key its next generation now, for `reason`: recorded, made in the
/// custody and made current (this process wraps under it at once, other nodes within a
/// minute). Returns the new generation. What was wrapped before still opens; a rewrap
/// ([`rewrap_root_keys`]) moves it.
pub async fn rotate_root_key(
    exec: &Executor,
    principal: &Principal,
    region: Region,
    reason: RotationReason,
    now: Timestamp,
) -> Result<u32, RetentionError> {
    let vault = exec.store().vault().clone();
    let (current, _) = vault.root_head(region).await?;
    let generation = current + 1;
    vault.make_root(region, generation)?;
    let command = RetentionCommand::RotateRootKey {
        region,
        generation,
        reason,
    };
    record(exec, principal, region, command, now).await?;
    vault.advance_root(region, generation, now).await?;
    tracing::info!(
        region = region.code(),
        generation,
        ?reason,
        "root key rotated"
    );
    Ok(generation)
}

/// Rewraps every key and Signal account of `region` still under an older root-key generation;
/// `progress` hears the running count. Records how many when there were any.
pub async fn rewrap_root_keys(
    exec: &Executor,
    principal: &Principal,
    region: Region,
    progress: &mut (dyn FnMut(u64) + Send),
    now: Timestamp,
) -> Result<u64, RetentionError> {
    let vault = exec.store().vault().clone();
    let (generation, rows) = vault.rewrap_root(region, progress).await?;
    let command = RetentionCommand::RecordRewrap {
        region,
        generation,
        rows,
    };
    record(exec, principal, region, command, now).await?;
    if rows > 0 {
        tracing::info!(
            region = region.code(),
            generation,
            rows,
            "rewrapped under the region's root key"
        );
    }
    Ok(rows)
}

/// Destroys generation `generation` of `region`'s root key if that is safe now
/// ([`sealpost_adapters::vault::Vault::retire_root`]), finishing first a rewrap that left rows
/// under it (a node that wrapped a key under it before it learnt the rotation), and records
/// the destruction. A generation this node's custody does not hold is not recorded: it may be
/// held elsewhere.
pub async fn retire_root_key(
    exec: &Executor,
    principal: &Principal,
    (region, generation): (Region, u32),
    now: Timestamp,
) -> Result<Retirement, RetentionError> {
    let vault = exec.store().vault().clone();
    let mut retired = vault.retire_root(region, generation, now).await?;
    if retired == Retirement::Pending {
        rewrap_root_keys(exec, principal, region, &mut |_| {}, now).await?;
        retired = vault.retire_root(region, generation, now).await?;
    }
    if retired == Retirement::Destroyed {
        let command = RetentionCommand::RecordRootKeyDestroyed { region, generation };
        record(exec, principal, region, command, now).await?;
        tracing::info!(
            region = region.code(),
            generation,
            "old root key generation destroyed"
        );
    }
    Ok(retired)
}

/// Finishes the rewrap of every region that was rotated and still has rows under an older
/// generation (a rotation whose rewrap stopped, or a key a node wrapped under the old
/// generation before it learnt the new one); how many rows.
pub(super) async fn rewrap_pending(
    exec: &Executor,
    principal: &Principal,
    now: Timestamp,
) -> Result<u64, RetentionError> {
    let vault = exec.store().vault().clone();
    let mut rows = 0;
    for region in Region::ALL {
        if vault.root_state(region).await?.pending > 0 {
            rows += rewrap_root_keys(exec, principal, region, &mut |_| {}, now).await?;
        }
    }
    Ok(rows)
}
