//! The `sealpost` binary.

use anyhow::Context as _;
use clap::Parser as _;
use sealpost::app::evidence::{ErasureTarget, TargetError};
use sealpost::cli::VerifyOptions;
use sealpost_adapters::telemetry;
use sealpost_projections::evidence::AccessQuery;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use sealpost::cli::args::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = telemetry::TelemetryConfig::from_env("sealpost");
    let mut config = config;
    if std::env::var_os(telemetry::LOG_FILTER_ENV).is_none() {
        // The demo's story goes to stdout; keep logs to warnings unless asked.
        config.default_filter = "warn".into();
    }
    let _telemetry = telemetry::init(&config).context("telemetry")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match cli.command {
        Command::Openapi => {
            let document = sealpost::http::openapi()
                .to_pretty_json()
                .context("the OpenAPI document")?;
            writeln!(std::io::stdout(), "{document}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { data_dir } => runtime.block_on(async {
            let temp;
            let dir = match data_dir {
                Some(d) => {
                    if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                        anyhow::bail!("--data-dir must be empty or absent");
                    }
                    d
                }
                None => {
                    temp = tempfile::tempdir().context("temporary data directory")?;
                    temp.path().to_path_buf()
                }
            };
            let mut out = std::io::stdout().lock();
            let outcome = sealpost::demo::run(&dir, &mut out).await?;
            Ok(if outcome.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }),
        Command::Serve {
            config,
            listen,
            data_dir,
            database_url,
            region_database_url,
            connect_timeout,
            sim_clock,
            lease_ttl,
            lease_renew,
            transport_url,
            webhook_ca_file,
            webhook_allow_http,
        } => runtime.block_on(async {
            let file = match &config {
                Some(path) => sealpost::config::FileConfig::load(path)?,
                None => sealpost::config::FileConfig::default(),
            };
            let config = sealpost::http::ServeConfig {
                listen: listen
                    .or(file.listen)
                    .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))),
                data_dir: data_dir
                    .or(file.data_dir)
                    .unwrap_or_else(|| PathBuf::from("./sealpost-data")),
                database_url: database_url.or(file.database_url),
                region_database_url: region_database_url.or(file.region_database_url),
                connect_timeout: connect_timeout
                    .or(file.connect_timeout_seconds)
                    .map_or(
                        sealpost_adapters::store::postgres::DEFAULT_CONNECT_TIMEOUT,
                        std::time::Duration::from_secs,
                    ),
                sim_clock: sim_clock || file.sim_clock.unwrap_or(false),
                throughput: (
                    file.throughput_per_second
                        .unwrap_or(sealpost::http::THROUGHPUT_STANDARD),
                    file.upgraded_throughput_per_second
                        .unwrap_or(sealpost::http::THROUGHPUT_HIGH),
                ),
                leases: {
                    let default = sealpost::nodes::LeaseTiming::default();
                    sealpost::nodes::LeaseTiming::new(
                        lease_ttl
                            .or(file.lease_ttl_seconds)
                            .map_or(default.ttl, std::time::Duration::from_secs),
                        lease_renew
                            .or(file.lease_renew_seconds)
                            .map_or(default.renew_every, std::time::Duration::from_secs),
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                },
                transport_url: transport_url.or(file.transport_url),
                webhook_ca_file: webhook_ca_file.or(file.webhook_ca_file),
                webhook_allow_http: webhook_allow_http
                    || file.webhook_allow_http.unwrap_or(false),
            };
            sealpost::http::serve(config, shutdown_signal(), |bound| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "sealpost serving on http://{bound}");
                let _ = out.flush();
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Tenant {
            action:
                TenantAction::Add {
                    name,
                    display_number,
                    data_dir,
                    database_url,
                    region_database_url,
                },
        } => runtime.block_on(async {
            let path = sealpost::bootstrap::add_tenant(
                &data_dir,
                database_url.as_deref(),
                region_database_url.as_deref(),
                &name,
                &display_number,
            )
            .await?;
            writeln!(std::io::stdout(), "{}", path.display())?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Audit { action } => runtime.block_on(audit(action)),
        Command::Report { action } => runtime.block_on(async {
            let mut out = std::io::stdout().lock();
            match action {
                ReportAction::Retention {
                    store,
                    format,
                    out: file,
                    business,
                } => {
                    let business = business
                        .map(|b| sealpost_domain::BusinessId::parse(&b))
                        .transpose()
                        .map_err(|_| anyhow::anyhow!("--business is not a business id"))?;
                    sealpost::cli::report_retention(
                        &store.location(),
                        &format,
                        file.as_deref(),
                        business.as_ref(),
                        &mut out,
                    )
                    .await?
                }
                ReportAction::Ropa {
                    store,
                    format,
                    out: file,
                } => {
                    sealpost::cli::report_ropa(
                        &store.location(),
                        &format,
                        file.as_deref(),
                        &mut out,
                    )
                    .await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Keys { action } => runtime.block_on(async {
            let mut out = std::io::stdout().lock();
            match action {
                KeysAction::Status { store } => {
                    sealpost::cli::keys::status(&store.location(), &mut out).await?
                }
                KeysAction::Rotate {
                    kind,
                    business,
                    region,
                    store,
                } => {
                    let at = store.location();
                    match (kind.as_str(), business, region) {
                        ("audit", None, region) => {
                            sealpost::cli::keys::rotate_audit(&at, region.as_deref(), &mut out)
                                .await?
                        }
                        ("audit", ..) => anyhow::bail!("an audit key is a log's: no --business (--region for a Local Storage region's own log)"),
                        ("root", None, Some(region)) => {
                            sealpost::cli::keys::rotate_root(&at, &region, &mut out).await?
                        }
                        ("root", ..) => anyhow::bail!("a root key is a region's: --region and no --business"),
                        (_, Some(business), Some(region)) => {
                            let key = (business.as_str(), region.as_str());
                            sealpost::cli::keys::rotate_ledger(&at, key, &mut out).await?
                        }
                        _ => anyhow::bail!("a ledger key is a business's in a region: --business and --region"),
                    }
                }
                KeysAction::Retire {
                    region,
                    generation,
                    store,
                    ..
                } => {
                    let at = (region.as_str(), generation);
                    sealpost::cli::keys::retire_root(&store.location(), at, &mut out).await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Nodes { store } => runtime.block_on(async {
            let stores = store.location().stores().await?;
            let rows = stores.leases.leases().await?;
            write!(
                std::io::stdout(),
                "{}",
                sealpost::nodes::describe(&rows, sealpost::nodes::wall_clock_ms())
            )?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Projections {
            action: ProjectionAction::Rebuild { name, store },
        } => runtime.block_on(async {
            if !sealpost::projections::NAMES.contains(&name.as_str()) {
                anyhow::bail!(
                    "no projection named {name:?}; one of: {}",
                    sealpost::projections::NAMES.join(", ")
                );
            }
            let app = store.location().open().await?;
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)",
                )
                .map_err(|e| anyhow::anyhow!("progress bar: {e}"))?
                .progress_chars("=> "),
            );
            bar.set_message(format!("rebuilding {name}"));
            let mut progress = |at, head| {
                bar.set_length(head);
                bar.set_position(at);
            };
            let reached = if name == sealpost::projections::EVIDENCE {
                app.evidence().rebuild_evidence(&mut progress).await?
            } else {
                sealpost::projections::rebuild(app.store(), &name, &mut progress)
                    .await?
                    .unwrap_or_default()
            };
            bar.finish_and_clear();
            writeln!(
                std::io::stdout(),
                "rebuilt {name} up to log position {reached}"
            )?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Erase {
            store,
            subject,
            phone_number_id,
            wa_id,
            user_id,
            out: file,
            format,
        } => runtime.block_on(async {
            let target = ErasureTarget::from_fields(
                subject.as_deref(),
                phone_number_id.as_deref(),
                wa_id.as_deref(),
                user_id.as_deref(),
            )
            .map_err(|e| {
                // The request's field names, as this command's flags.
                let flag = |field: &str| match field {
                    "subject_id" => "--subject".to_owned(),
                    other => format!("--{}", other.replace('_', "-")),
                };
                match e {
                    TargetError::Missing(field) => anyhow::anyhow!("{} is needed", flag(field)),
                    TargetError::Invalid(field) => anyhow::anyhow!("{} is not valid", flag(field)),
                    TargetError::NotExactlyOne => anyhow::anyhow!(
                        "name the subject: --subject, or --phone-number-id with --wa-id or --user-id"
                    ),
                }
            })?;
            let mut out = std::io::stdout().lock();
            let how = (file.as_deref(), format == "html");
            sealpost::cli::erase(&store.location(), target, how, &mut out).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Transport { listen, data_dir } => runtime.block_on(async {
            // The network outlives this process: what it accepted is there after a restart.
            let store = std::sync::Arc::new(
                sealpost_adapters::transport::world::WorldStore::open(&data_dir)
                    .await
                    .context("the transport's store")?,
            );
            // Its integrity signals wait for the node that serves each number (issue 13).
            let signals =
                std::sync::Arc::new(sealpost_adapters::transport::signals::SignalQueue::default());
            let network = sealpost_adapters::transport::sim::SimNetwork::open(
                std::sync::Arc::new(sealpost_adapters::clock::SystemClock),
                Some(signals.clone()),
                store,
            )
            .await
            .context("the transport's network")?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .context("bind the transport's address")?;
            let bound = listener.local_addr().context("bound address")?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "sealpost transport listening on http://{bound}")?;
                out.flush()?;
            }
            tracing::info!(%bound, "transport listening");
            sealpost_adapters::transport::http::serve(listener, network, signals, shutdown_signal())
                .await
                .context("transport server")?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

async fn audit(action: AuditAction) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match action {
        AuditAction::Verify {
            store,
            bundle,
            witness,
            public_key,
            json,
        } => {
            let opts = VerifyOptions {
                bundle,
                witness,
                public_key,
                json,
            };
            let code = sealpost::cli::audit_verify(
                &store.location(),
                &opts,
                &mut out,
                &mut std::io::stderr(),
            )
            .await?;
            Ok(ExitCode::from(code))
        }
        AuditAction::Export { store, out: file } => {
            sealpost::cli::audit_export(&store.location(), &file, &mut out).await?;
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Access {
            store,
            principal,
            kind,
            category,
            purpose,
            decision,
            object,
            business,
            from,
            to,
            after,
            limit,
            format,
        } => {
            fn parse<T: serde::de::DeserializeOwned>(
                v: Option<String>,
                flag: &str,
            ) -> anyhow::Result<Option<T>> {
                v.map(|s| {
                    serde_json::from_value(serde_json::Value::String(s))
                        .map_err(|_| anyhow::anyhow!("--{flag}: unknown value"))
                })
                .transpose()
            }
            let query = AccessQuery {
                principal,
                principal_kind: parse(kind, "kind")?,
                category: parse(category, "category")?,
                purpose: parse(purpose, "purpose")?,
                decision,
                object,
                business_id: business,
                from,
                to,
                after,
                limit,
            };
            sealpost::cli::audit_access(&store.location(), query, format == "json", &mut out)
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Checkpoint { store, format } => {
            let app = store.location().open().await?;
            let c = app.evidence().checkpoint().await?;
            match format.as_str() {
                "note" => write!(out, "{}", c.note)?,
                _ => writeln!(out, "{}", serde_json::to_string_pretty(&c)?)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::PublicKey { store, format } => {
            let app = store.location().open().await?;
            let audit = app.audit().await?;
            match format.as_str() {
                "vkey" => writeln!(out, "{}", audit.verifier_key())?,
                _ => writeln!(out, "{}", audit.public_key_hex())?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called (inside the
/// runtime), not when the future is first polled: a SIGTERM that arrives as soon as `serve`
/// printed its address still stops it gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
