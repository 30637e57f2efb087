//! `sealpost keys status | rotate ledger`: where the root keys are, each business's ledger key
//! per region with its version and age, and a rotation on demand (ADR 0024). Acts as the
//! operator principal `cli-operator`; a rotation is recorded in the log like a scheduled one.

use super::StoreLocation;
use anyhow::Context as _;
use sealpost_domain::time::DAY_MS;
use sealpost_domain::{BusinessId, Principal, PrincipalKind, Region};
use std::io::Write;

/// The principal `sealpost keys …` acts as.
pub fn cli_operator() -> Principal {
    Principal::of_kind(PrincipalKind::Operator, "cli-operator")
}

/// Prints the custody and every ledger key's head.
pub async fn status(at: &StoreLocation, out: &mut dyn Write) -> anyhow::Result<()> {
    let app = at.open().await?;
    let vault = app.store().vault();
    writeln!(out, "root keys: {}", vault.custody())?;
    let period = crate::app::ledger_rotation_ms();
    match period {
        0 => writeln!(out, "ledger keys: not rotated on a schedule")?,
        p => writeln!(out, "ledger keys: rotated every {} days", p / DAY_MS)?,
    }
    let now = app.now().millis();
    let heads = vault.key_store().ledger_heads().await?;
    writeln!(
        out,
        "business          region  version  made                  age (days)  next rotation"
    )?;
    for key in &heads {
        let next = match period {
            0 => "never".to_owned(),
            p => sealpost_domain::Timestamp::from_millis(key.created_at + p).utc_rfc3339(),
        };
        writeln!(
            out,
            "{:<17} {:<7} {:<8} {:<21} {:<11} {}",
            key.business_id,
            key.region,
            key.version,
            sealpost_domain::Timestamp::from_millis(key.created_at).utc_rfc3339(),
            (now - key.created_at).max(0) / DAY_MS,
            next
        )?;
    }
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
