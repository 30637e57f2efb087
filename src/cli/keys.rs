//! `sealpost keys status | rotate ledger | rotate root | rotate audit | retire root`: where the
//! root keys are and each region's generation, the audit signing key, each business's ledger
//! key per region with its version and age, and rotations on demand (ADR 0024–0026). Acts as the operator principal
//! `cli-operator`; every rotation is recorded in the log.

use super::StoreLocation;
use crate::tables::{drawn, table};
use anyhow::Context as _;
use sealpost_domain::time::DAY_MS;
use sealpost_domain::{BusinessId, Principal, PrincipalKind, Region};
use std::io::Write;

/// The principal `sealpost keys …` acts as.
pub fn cli_operator() -> Principal {
    Principal::of_kind(PrincipalKind::Operator, "cli-operator")
}

/// An age in days and hours (`3 d 4 h`), as people read it.
fn age(ms: i64) -> String {
    let hours = ms.max(0) / (DAY_MS / 24);
    format!("{} d {} h", hours / 24, hours % 24)
}

/// `sealpost keys status`: the custody, the audit keys, and every root and ledger key's head.
pub async fn status(at: &StoreLocation, out: &mut dyn Write) -> anyhow::Result<()> {
    let app = at.open().await?;
    let vault = app.store().vault();
    writeln!(out, "root keys: {}", vault.custody())?;
    let audit = app.audit().await?;
    writeln!(
        out,
        "audit signing key: generation {}, verifier key {}",
        audit.key_generation(),
        audit.verifier_key()
    )?;
    let region_logs = app.region_audits().await.unwrap_or_else(|e| {
        let _ = writeln!(
            out,
            "audit signing keys of the regions' own logs: not reachable now ({e})"
        );
        Vec::new()
    });
    for (region, log) in region_logs {
        writeln!(
            out,
            "audit signing key of {}'s own log: generation {}, verifier key {}",
            region.code(),
            log.key_generation(),
            log.verifier_key()
        )?;
    }
    let mut roots = table(&["region", "generation", "since", "left to rewrap"]);
    for root in app.root_key_status().await? {
        let since = match root.since {
            0 => "first".to_owned(),
            at => sealpost_domain::Timestamp::from_millis(at).utc_rfc3339(),
        };
        roots.add_row(vec![
            root.region,
            root.generation.to_string(),
            since,
            root.rewrap_pending.to_string(),
        ]);
    }
    writeln!(out, "{}", drawn(&roots))?;
    let period = crate::app::ledger_rotation_ms();
    match period {
        0 => writeln!(out, "ledger keys: not rotated on a schedule")?,
        p => writeln!(out, "ledger keys: rotated every {} days", p / DAY_MS)?,
    }
    let now = app.now().millis();
    let heads = vault.key_store().ledger_heads().await?;
    let mut ledger = table(&[
        "business",
        "region",
        "version",
        "made",
        "age",
        "next rotation",
    ]);
    for key in &heads {
        let next = match period {
            0 => "never".to_owned(),
            p => sealpost_domain::Timestamp::from_millis(key.created_at + p).utc_rfc3339(),
        };
        ledger.add_row(vec![
            key.business_id.clone(),
            key.region.clone(),
            key.version.to_string(),
            sealpost_domain::Timestamp::from_millis(key.created_at).utc_rfc3339(),
            age(now - key.created_at),
            next,
        ]);
    }
    writeln!(out, "{}", drawn(&ledger))?;
    writeln!(out, "{} ledger keys", heads.len())?;
    Ok(())
}

/// Rotates `business`'s ledger key in `region` now.
pub async fn rotate_ledger(
    at: &StoreLocation,
    (business, region): (&str, &str),
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let business = BusinessId::parse(business)
        .ok()
        .context("--business is not a business id")?;
    let region: Region = region
        .parse()
        .ok()
        .context("--region is not a region code")?;
    let app = at.open().await?;
    let rotated = app
        .rotate_ledger_key(&cli_operator(), &business, region)
        .await?;
    match rotated {
        Some(version) => writeln!(
            out,
            "ledger key of {} in {} rotated to version {version}; a running node seals under it within a minute",
            business.as_str(),
            region.code()
        )?,
        None => anyhow::bail!(
            "no ledger key of that business in that region: nothing was sealed there yet"
        ),
    }
    Ok(())
}

/// The region a `--region` names.
fn region_arg(region: &str) -> anyhow::Result<Region> {
    region.parse().ok().context("--region is not a region code")
}

/// Gives `region`'s root key its next generation and rewraps everything under the older ones,
/// showing progress.
pub async fn rotate_root(
    at: &StoreLocation,
    region: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let region = region_arg(region)?;
    let app = at.open().await?;
    let operator = cli_operator();
    let generation = app.rotate_root_key(&operator, region).await?;
    writeln!(
        out,
        "root key of {} rotated to generation {generation}; new keys are wrapped under it (a running node follows within a minute)",
        region.code()
    )?;
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} rewrapping: {pos} keys and accounts")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let shown = bar.clone();
    let rows = app
        .rewrap_root_keys(&operator, region, &mut move |n| shown.set_position(n))
        .await?;
    bar.finish_and_clear();
    let settled = app.now().millis() + sealpost_adapters::vault::ROOT_SETTLE_MS;
    writeln!(
        out,
        "rewrapped {rows} keys and accounts under generation {generation}; generation {} may be destroyed from {} with `sealpost keys retire root --region {} --generation {}`",
        generation - 1,
        sealpost_domain::Timestamp::from_millis(settled).utc_rfc3339(),
        region.code(),
        generation - 1
    )?;
    Ok(())
}

/// Destroys an old generation of a region's root key, if that is safe now.
pub async fn retire_root(
    at: &StoreLocation,
    (region, generation): (&str, u32),
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use sealpost_adapters::vault::Retirement;
    let region = region_arg(region)?;
    let app = at.open().await?;
    let operator = cli_operator();
    let mut retired = app.retire_root_key(&operator, region, generation).await?;
    if retired == Retirement::Pending {
        // What a stopped rewrap left (or a node that wrapped late): finished here, then again.
        let rows = app.rewrap_root_keys(&operator, region, &mut |_| {}).await?;
        writeln!(
            out,
            "rewrapped {rows} keys and accounts left under older generations"
        )?;
        retired = app.retire_root_key(&operator, region, generation).await?;
    }
    match retired {
        Retirement::Destroyed => writeln!(
            out,
            "generation {generation} of the root key of {} destroyed: nothing wrapped under it opens again",
            region.code()
        )?,
        Retirement::Absent => anyhow::bail!(
            "generation {generation} of the root key of {} is not in this node's custody (destroyed before, or kept elsewhere): nothing was destroyed",
            region.code()
        ),
        Retirement::Refused(why) => anyhow::bail!("not destroyed: {why}"),
        Retirement::Current => {
            anyhow::bail!("generation {generation} is not older than the region's current root key: rotate first")
        }
        Retirement::Settling(from) => anyhow::bail!(
            "the rotation away from generation {generation} is too recent; it may be destroyed from {}",
            sealpost_domain::Timestamp::from_millis(from).utc_rfc3339()
        ),
        Retirement::Pending => anyhow::bail!(
            "keys are still wrapped under generation {generation} after a rewrap: another process is wrapping under it; try again in a minute"
        ),
    }
    Ok(())
}

/// Hands the home log, or Local Storage region `region`'s own, over to a new signing key now.
pub async fn rotate_audit(
    at: &StoreLocation,
    region: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let region: Option<Region> = match region {
        None => None,
        Some(code) => Some(
            code.parse()
                .ok()
                .filter(|r: &Region| r.is_local_storage())
                .with_context(|| {
                    format!("{code} is not a Local Storage region: the home log's key needs no --region")
                })?,
        ),
    };
    let app = at.open().await?;
    let (generation, checkpoint) = app
        .rotate_audit_key(&cli_operator(), region)
        .await?
        .context("that region has no store yet, so no log of its own")?;
    writeln!(
        out,
        "audit signing key rotated to generation {generation}; the hand-over checkpoint (size {}) is signed by the old and the new key:\n{}",
        checkpoint.size, checkpoint.note
    )?;
    writeln!(
        out,
        "new verifier key: {}",
        checkpoint.verifier_key().unwrap_or_default()
    )?;
    Ok(())
}
