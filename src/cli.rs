//! The evidence commands of the `sealpost` binary: `audit verify | export | access |
//! checkpoint | public-key`, `report retention | ropa` and `erase`. They open the store like
//! `serve` does (embedded data directory or `--database-url`) and act as a command-line auditor
//! or DPO principal, so every read they make is decided and recorded by the access gate.

pub mod args;
pub mod keys;

use crate::app::evidence::{ErasureOutcome, ErasureTarget};
use crate::app::Sealpost;
use anyhow::Context as _;
use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::store::{postgres, RegionLayout, Stores};
use sealpost_audit::log::{parse_public_key, read_witness, witness_path};
use sealpost_audit::verify::{self, Bundle, Verdict};
use sealpost_domain::{Principal, PrincipalKind, RetentionPolicy};
use sealpost_projections::evidence::{AccessEntry, AccessQuery};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The principal `sealpost audit …` acts as.
pub fn cli_auditor() -> Principal {
    Principal::of_kind(PrincipalKind::Auditor, "cli-auditor")
}

/// The principal `sealpost report …` and `sealpost erase` act as.
pub fn cli_dpo() -> Principal {
    Principal::of_kind(PrincipalKind::Dpo, "cli-dpo")
}

/// Where the store is.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    /// The data directory (embedded store, root keys, witness file).
    pub data_dir: PathBuf,
    /// Postgres instead of the embedded store.
    pub database_url: Option<String>,
    /// Where each Local Storage region's Postgres store is (a URL with `{region}`).
    pub region_database_url: Option<String>,
}

impl StoreLocation {
    /// Opens the whole application over the store.
    pub async fn open(&self) -> anyhow::Result<Sealpost> {
        if self.database_url.is_none() && !self.data_dir.join("events.db").exists() {
            anyhow::bail!(
                "no store in {} (pass --data-dir or --database-url)",
                self.data_dir.display()
            );
        }
        Ok(Sealpost::open(
            &self.data_dir,
            self.database_url.as_deref(),
            self.region_database_url.as_deref(),
            4,
            Arc::new(SystemClock),
            RetentionPolicy::default(),
        )
        .await?)
    }

    /// Opens only the raw stores (what `audit verify` reads: no keys are needed).
    pub async fn stores(&self) -> anyhow::Result<Stores> {
        match &self.database_url {
            Some(url) => {
                let pool = postgres::connect(url, None, 2).await?;
                postgres::migrate(&pool).await?;
                let regions = RegionLayout::postgres_beside(
                    url,
                    self.region_database_url.as_deref(),
                    2,
                    postgres::Limits::default(),
                )?;
                Ok(Stores::postgres(pool, regions))
            }
            None => {
                if !self.data_dir.join("events.db").exists() {
                    anyhow::bail!("no store in {}", self.data_dir.display());
                }
                Ok(Stores::sqlite(&self.data_dir).await?)
            }
        }
    }

    /// The default witness file.
    pub fn witness(&self) -> PathBuf {
        witness_path(&self.data_dir)
    }
}

/// Options of `audit verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Verify this offline bundle instead of the store.
    pub bundle: Option<PathBuf>,
    /// Checkpoints published outside the store (default: the data directory's witness file).
    pub witness: Option<PathBuf>,
    /// The published public key (hex).
    pub public_key: Option<String>,
    /// Print JSON instead of text.
    pub json: bool,
}

/// `sealpost audit verify`: 0 when everything verifies, 1 when tampering was found.
pub async fn audit_verify(
    at: &StoreLocation,
    opts: &VerifyOptions,
    out: &mut dyn Write,
    err: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let key = match &opts.public_key {
        Some(k) => Some(parse_public_key(k).context("--public-key is not a hex Ed25519 key")?),
        None => None,
    };
    let witness_file = opts.witness.clone().unwrap_or_else(|| at.witness());
    let witness = read_witness(&witness_file)?;
    if key.is_none() {
        writeln!(
            err,
            "note: no --public-key given; trusting the key of the earliest checkpoint (witness and store) and the keys its hand-overs link to"
        )?;
    }
    let (verdict, regions) = match &opts.bundle {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            let bundle: Bundle = serde_json::from_str(&text).context("not an audit bundle")?;
            if bundle.format != verify::BUNDLE_FORMAT {
                anyhow::bail!("unknown bundle format {:?}", bundle.format);
            }
            (
                verify::verify_bundle(&bundle, &witness, key.as_ref()),
                Vec::new(),
            )
        }
        None => {
            let stores = at.stores().await?;
            let bar = rows_bar("verified", stores.events.head().await.unwrap_or(0));
            let mut progress = |n: u64| bar.set_position(n);
            // The home log's references to the regions' bodies, noted in the same read.
            let mut references = verify::HomeReferences::new();
            let verdict = verify::verify_store_seeing(
                stores.events.as_ref(),
                &witness,
                key.as_ref(),
                &mut progress,
                &mut |row| verify::note_reference(&mut references, row),
            )
            .await?;
            let regions = verify_regions(&stores, references, &bar).await?;
            bar.finish_and_clear();
            (verdict, regions)
        }
    };
    let ok = verdict.is_ok() && regions.iter().all(RegionVerdict::is_ok);
    if opts.json {
        let mut v = serde_json::to_value(&verdict)?;
        if !regions.is_empty() {
            v["regions"] = serde_json::to_value(&regions)?;
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        print_verdict(&verdict, out)?;
        for r in &regions {
            match (&r.location, &r.verdict) {
                (Some(location), Some(verdict)) => {
                    writeln!(
                        out,
                        "store {} ({location}): its own log of the region's sealed event bodies",
                        r.region
                    )?;
                    print_verdict(verdict, out)?;
                }
                _ => writeln!(
                    out,
                    "store {}: none, though the home log references its bodies",
                    r.region
                )?,
            }
            writeln!(
                out,
                "references from the home log: {} checked, {} broken{}",
                r.references.checked,
                r.references.broken.len(),
                r.references
                    .broken
                    .first()
                    .map(|p| format!(" (first at home position {p})"))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// What `audit verify` found in one Local Storage region's own store.
#[derive(Debug, serde::Serialize)]
struct RegionVerdict {
    region: String,
    /// Where its store is; `None` when the home log references a region with no store.
    location: Option<String>,
    verdict: Option<verify::Verdict>,
    references: verify::References,
}

impl RegionVerdict {
    fn is_ok(&self) -> bool {
        self.verdict.as_ref().is_some_and(Verdict::is_ok) && self.references.broken.is_empty()
    }
}

/// Verifies each Local Storage region's log against its own checkpoints (signed by the
/// region's key: trusted as stored) and the home log's references to its bodies, for every
/// region with a store and every region the home log references.
async fn verify_regions(
    stores: &Stores,
    mut references: verify::HomeReferences,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<RegionVerdict>> {
    let mut located: std::collections::BTreeMap<String, String> = stores
        .layout()
        .await?
        .into_iter()
        .filter_map(|s| Some((s.region?.code().to_owned(), s.location)))
        .collect();
    let codes: std::collections::BTreeSet<String> =
        located.keys().chain(references.keys()).cloned().collect();
    let mut out = Vec::new();
    for code in codes {
        let log = match code.parse::<sealpost_domain::Region>() {
            Ok(region) if located.contains_key(&code) => {
                stores.regions.events_for_read(region).await?
            }
            _ => None,
        };
        let verdict = match &log {
            Some(log) => {
                // The bar goes on past the rows already verified, over this region's too.
                let start = bar.position();
                bar.inc_length(log.head().await?);
                let mut progress = |n: u64| bar.set_position(start + n);
                Some(verify::verify_store(log.as_ref(), &[], None, &mut progress).await?)
            }
            None => None,
        };
        let mine = references.remove(&code).unwrap_or_default();
        out.push(RegionVerdict {
            references: verify::verify_references(&mine, log.as_deref()).await?,
            location: located.remove(&code),
            region: code,
            verdict,
        });
    }
    Ok(out)
}

fn print_verdict(v: &Verdict, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "rows: {}  leaves: {}  checkpoints: {}",
        v.rows, v.leaves, v.checkpoints
    )?;
    if let Some(c) = &v.latest_good {
        writeln!(
            out,
            "newest verified checkpoint: size {} root {} signed {}",
            c.size,
            c.root,
            sealpost_domain::Timestamp::from_millis(c.signed_at).utc_rfc3339()
        )?;
    }
    if v.is_ok() {
        writeln!(out, "OK: the log verifies")?;
    } else {
        for f in &v.findings {
            writeln!(out, "TAMPERED {f}")?;
        }
        if let Some(p) = v.first_bad_position() {
            writeln!(out, "FAILED: first bad position {p}")?;
        }
    }
    Ok(())
}

/// A progress bar on standard error over the `total` rows of the log (drawn only on a
/// terminal); `audit verify` lengthens it by each region's rows as it reaches them.
fn rows_bar(what: &str, total: u64) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} rows {what} ({{per_sec}}, {{eta}} left)"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    )
    .with_style(style)
}

/// `sealpost audit export --out FILE`.
pub async fn audit_export(
    at: &StoreLocation,
    file: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let app = at.open().await?;
    let audit = app.audit().await?;
    let bar = rows_bar("exported", app.stores().events.head().await.unwrap_or(0));
    let mut progress = |n: u64| bar.set_position(n);
    let bundle = verify::export(
        audit,
        app.stores().events.as_ref(),
        app.now(),
        &mut progress,
    )
    .await?;
    bar.finish_and_clear();
    write_file(file, serde_json::to_string_pretty(&bundle)?.as_bytes())?;
    writeln!(
        out,
        "{} rows, {} checkpoints, {} destruction proofs → {}",
        bundle.rows.len(),
        bundle.checkpoints.len(),
        bundle.destructions.len(),
        file.display()
    )?;
    Ok(())
}

/// `sealpost audit access …`: one page, as a table or JSON.
pub async fn audit_access(
    at: &StoreLocation,
    query: AccessQuery,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let app = at.open().await?;
    let (page, checkpoint) = app.evidence().access_log(&cli_auditor(), query).await?;
    app.gate().flush().await?;
    if json {
        let v = serde_json::json!({
            "data": page.entries,
            "paging": { "next": page.next },
            "checkpoint": checkpoint,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>8}  {:<20}  {:<10} {:<18} {:<30} {:<16} {:<8} {:>6}  object",
        "position", "time", "kind", "principal", "category", "purpose", "decision", "count"
    )?;
    for e in &page.entries {
        writeln!(out, "{}", table_row(e))?;
    }
    writeln!(
        out,
        "{} entries; consistent with checkpoint size {} root {}{}",
        page.entries.len(),
        checkpoint.size,
        checkpoint.root,
        page.next
            .map(|n| format!("; next page: --after {n}"))
            .unwrap_or_default()
    )?;
    Ok(())
}

/// The snake_case serde name of an enum value.
fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn table_row(e: &AccessEntry) -> String {
    format!(
        "{:>8}  {:<20}  {:<10} {:<18} {:<30} {:<16} {:<8} {:>6}  {}",
        e.position,
        sealpost_domain::Timestamp::from_millis(e.at).utc_rfc3339(),
        name(&e.principal_kind),
        e.principal,
        e.category.label(),
        name(&e.purpose),
        e.decision,
        e.count,
        e.object.as_deref().unwrap_or("-")
    )
}

/// `sealpost report retention --format html|json|csv --out FILE`.
pub async fn report_retention(
    at: &StoreLocation,
    format: &str,
    file: Option<&Path>,
    business: Option<&sealpost_domain::BusinessId>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let app = at.open().await?;
    let bar = rows_bar("folded", 0);
    let report = app
        .evidence()
        .retention_report_showing(&cli_dpo(), business, &mut |at, head| {
            bar.set_length(head);
            bar.set_position(at);
        })
        .await;
    bar.finish_and_clear();
    let report = report?;
    app.gate().flush().await?;
    let text = match format {
        "html" => report.to_html(),
        "csv" => report.to_csv(),
        "json" => report.to_json(),
        other => anyhow::bail!("unknown format {other:?} (html, json or csv)"),
    };
    emit(file, &text, out)
}

/// `sealpost report ropa --format md|json --out FILE`.
pub async fn report_ropa(
    at: &StoreLocation,
    format: &str,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let app = at.open().await?;
    let root_keys = app.store().vault().custody();
    let ropa = app
        .evidence()
        .record_of_processing("Sealpost (self-hosted)", &root_keys)
        .await?;
    let text = match format {
        "md" | "markdown" => ropa.to_markdown(),
        "json" => ropa.to_json(),
        other => anyhow::bail!("unknown format {other:?} (md or json)"),
    };
    emit(file, &text, out)
}

/// `sealpost erase …`: erases a subject as the DPO and writes the certificate.
pub async fn erase(
    at: &StoreLocation,
    target: ErasureTarget,
    (file, html): (Option<&Path>, bool),
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let app = at.open().await?;
    let outcome = app
        .evidence()
        .erase_with_certificate(&cli_dpo(), target)
        .await?;
    // The command is the whole erasure: the key's bytes leave the files before it ends.
    app.store().vault().scrub().await?;
    match outcome {
        ErasureOutcome::Erased(cert) if html => emit(file, &cert.to_html(), out),
        ErasureOutcome::Erased(cert) => emit(file, &serde_json::to_string_pretty(&cert)?, out),
        ErasureOutcome::NothingHeld => {
            writeln!(
                out,
                "nothing is held for this consumer on this number (never known, expired or already erased)"
            )?;
            Ok(())
        }
    }
}

fn emit(file: Option<&Path>, text: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    match file {
        Some(path) => {
            write_file(path, text.as_bytes())?;
            writeln!(out, "{}", path.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Writes a file atomically (temporary file, then rename), so a crash never leaves half a report.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
