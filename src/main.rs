//! The `sealpost` binary.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sealpost::cli::{StoreLocation, VerifyOptions};
use sealpost::evidence::{ErasureTarget, TargetError};
use sealpost_adapters::telemetry;
use sealpost_projections::evidence::AccessQuery;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "sealpost",
    version,
    about = "Self-hostable, privacy-by-construction business messaging processor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scripted scenario on the embedded store with a simulated clock and check the
    /// privacy promises; exits non-zero if any check fails.
    Demo {
        /// Keep the data directory here instead of a temporary one (must be empty or absent).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve the Cloud-API-compatible HTTP API with the pipeline, the simulated transport and
    /// devices in process. On an empty store it bootstraps a development tenant and writes
    /// `<data-dir>/bootstrap.json` (mode 0600).
    Serve {
        /// A TOML configuration file (keys: listen, data_dir, database_url, sim_clock,
        /// throughput_per_second, upgraded_throughput_per_second, connect_timeout_seconds).
        /// Flags and environment variables override it.
        #[arg(long, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on; port 0 picks a free one. The bound address is printed.
        /// [default: 127.0.0.1:8080]
        #[arg(long, env = "SEALPOST_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// The data directory (embedded SQLite store, root keys, bootstrap.json).
        /// [default: ./sealpost-data]
        #[arg(long, env = "SEALPOST_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Use Postgres at this URL instead of the embedded store.
        #[arg(long, env = "SEALPOST_DATABASE_URL")]
        database_url: Option<String>,
        /// Seconds to wait for Postgres: at start (then exit, naming the host and port tried)
        /// and for a connection per request (then 503, code 131016). [default: 10]
        #[arg(long, env = "SEALPOST_CONNECT_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=600))]
        connect_timeout: Option<u64>,
        /// Run on a simulated clock that `POST /sim/v1/clock/advance` moves (for tests).
        #[arg(long, env = "SEALPOST_SIM_CLOCK")]
        sim_clock: bool,
    },
    /// Business Manager: add a tenant (business, WABA, phone number, app, system-user token)
    /// to a stopped server's store; its secrets go to `<data-dir>/tenant-<business-id>.json`
    /// (mode 0600). Start `serve` again to serve the new number.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// The tamper-evident log and the access log: verify, export, query.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// The DPO's reports: retention (html, json, csv) and the record of processing.
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// Erase a data subject (GDPR Art. 17) as the DPO and print or write the certificate.
    Erase {
        #[command(flatten)]
        store: StoreArgs,
        /// The subject id (from a certificate or the access log).
        #[arg(long, conflicts_with_all = ["wa_id", "user_id"])]
        subject: Option<String>,
        /// The business phone number id the consumer wrote to (with --wa-id or --user-id).
        #[arg(long)]
        phone_number_id: Option<String>,
        /// The consumer's phone number.
        #[arg(long, requires = "phone_number_id", conflicts_with = "user_id")]
        wa_id: Option<String>,
        /// The consumer's business-scoped user id.
        #[arg(long, requires = "phone_number_id")]
        user_id: Option<String>,
        /// Write the certificate here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The projections a node folds from the log and persists with their checkpoint.
    Projections {
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// Run the simulated transport (the WhatsApp role: key directory and routing of
    /// ciphertext) as its own process, over HTTP on a local socket.
    Transport {
        /// Address to listen on; port 0 picks a free one. The bound address is printed.
        #[arg(long, default_value = "127.0.0.1:7301")]
        listen: std::net::SocketAddr,
        /// Where the network keeps its state (directory, queued envelopes, integrity signals)
        /// across restarts, sealed under its own key.
        #[arg(
            long,
            env = "SEALPOST_TRANSPORT_DATA_DIR",
            default_value = "./sealpost-transport-data"
        )]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionAction {
    /// Fold a projection again from position 0 and save it (idempotent; safe while `serve`
    /// runs). NAME: business-numbers, apps, tokens.
    Rebuild {
        /// Which projection.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The port `sealpost serve` listens on by default.
const DEFAULT_PORT: u16 = 8080;

/// Where the store is (as for `serve`).
#[derive(Debug, Args)]
struct StoreArgs {
    /// The data directory (embedded store, root keys, audit witness file).
    #[arg(long, env = "SEALPOST_DATA_DIR", default_value = "./sealpost-data")]
    data_dir: PathBuf,
    /// Use Postgres at this URL instead of the embedded store.
    #[arg(long, env = "SEALPOST_DATABASE_URL")]
    database_url: Option<String>,
}

impl StoreArgs {
    fn location(self) -> StoreLocation {
        StoreLocation {
            data_dir: self.data_dir,
            database_url: self.database_url,
        }
    }
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Recompute the Merkle log from the rows and check every signed checkpoint; exits 1 naming
    /// the first position that was edited, deleted, reordered or truncated, or where an older
    /// checkpoint was restored.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Verify an offline bundle (from `audit export`) instead of the store.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Checkpoints published outside the store [default: <data-dir>/audit/witness.jsonl].
        #[arg(long)]
        witness: Option<PathBuf>,
        /// The published Ed25519 public key (hex) the checkpoints must verify under.
        #[arg(long)]
        public_key: Option<String>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write an offline evidence bundle: every row's header and payload hash, the leaves,
    /// every checkpoint, consistency proofs and inclusion proofs of every key destruction.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The bundle file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Query the access log (every gate decision), one page at a time.
    Access {
        #[command(flatten)]
        store: StoreArgs,
        /// Principal id.
        #[arg(long)]
        principal: Option<String>,
        /// Principal kind: processor, operator, transport, business, auditor, dpo.
        #[arg(long)]
        kind: Option<String>,
        /// Category, e.g. message_content, consumer_phone_number, statistics.
        #[arg(long)]
        category: Option<String>,
        /// Purpose, e.g. analytics, delivery, audit.
        #[arg(long)]
        purpose: Option<String>,
        /// allowed or denied.
        #[arg(long, value_parser = ["allowed", "denied"])]
        decision: Option<String>,
        /// Object id.
        #[arg(long)]
        object: Option<String>,
        /// Business id.
        #[arg(long)]
        business: Option<String>,
        /// From (ms since the Unix epoch, inclusive).
        #[arg(long)]
        from: Option<i64>,
        /// To (ms since the Unix epoch, exclusive).
        #[arg(long)]
        to: Option<i64>,
        /// Cursor from the previous page.
        #[arg(long)]
        after: Option<u64>,
        /// Page size (default 100, at most 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// table or json.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Sign a checkpoint of every row now and print it.
    Checkpoint {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the log's public key (hex Ed25519).
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ReportAction {
    /// The retention report: created / live / shredded messages, oldest live message, keys
    /// destroyed per day, erasures, overdue keys, residual risks, the checkpoint.
    Retention {
        #[command(flatten)]
        store: StoreArgs,
        /// html, json or csv.
        #[arg(long, default_value = "html", value_parser = ["html", "json", "csv"])]
        format: String,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only this business.
        #[arg(long)]
        business: Option<String>,
    },
    /// The record of processing (GDPR Art. 30), generated from the matrix and configuration.
    Ropa {
        #[command(flatten)]
        store: StoreArgs,
        /// md or json.
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Add a tenant.
    Add {
        /// The business's display name.
        #[arg(long)]
        name: String,
        /// Its phone number (digits, E.164 without +).
        #[arg(long)]
        display_number: String,
        /// The data directory of the store (embedded SQLite, root keys).
        #[arg(long, env = "SEALPOST_DATA_DIR", default_value = "./sealpost-data")]
        data_dir: PathBuf,
        /// Use Postgres at this URL instead of the embedded store.
        #[arg(long, env = "SEALPOST_DATABASE_URL")]
        database_url: Option<String>,
    },
}

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
            connect_timeout,
            sim_clock,
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
                },
        } => runtime.block_on(async {
            let path = sealpost::bootstrap::add_tenant(
                &data_dir,
                database_url.as_deref(),
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
            let reached = sealpost::projections::rebuild(app.store(), &name, &mut |at, head| {
                bar.set_length(head);
                bar.set_position(at);
            })
            .await?
            .unwrap_or_default();
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
            sealpost::cli::erase(&store.location(), target, file.as_deref(), &mut out).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Transport { listen, data_dir } => runtime.block_on(async {
            // The network outlives this process: what it accepted is there after a restart.
            let store = std::sync::Arc::new(
                sealpost_adapters::transport::world::WorldStore::open(&data_dir)
                    .await
                    .context("the transport's store")?,
            );
            let network = sealpost_adapters::transport::sim::SimNetwork::open(
                std::sync::Arc::new(sealpost_adapters::clock::SystemClock),
                None,
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
            sealpost_adapters::transport::http::serve(listener, network, shutdown_signal())
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
        AuditAction::Checkpoint { store } => {
            let app = store.location().open().await?;
            let c = app.checkpoint().await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&c)?)?;
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::PublicKey { store } => {
            let app = store.location().open().await?;
            writeln!(out, "{}", app.audit().await?.public_key_hex())?;
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
