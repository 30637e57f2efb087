//! The `sealpost` binary.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sealpost_adapters::telemetry;
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
        /// throughput_per_second, upgraded_throughput_per_second). Flags and environment
        /// variables override it.
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
    /// Run the simulated transport (the WhatsApp role: key directory and routing of
    /// ciphertext) as its own process, over HTTP on a local socket.
    Transport {
        /// Address to listen on; port 0 picks a free one. The bound address is printed.
        #[arg(long, default_value = "127.0.0.1:7301")]
        listen: std::net::SocketAddr,
    },
}

/// The port `sealpost serve` listens on by default.
const DEFAULT_PORT: u16 = 8080;

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
        Command::Transport { listen } => runtime.block_on(async {
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
            let network = sealpost_adapters::transport::sim::SimNetwork::new();
            sealpost_adapters::transport::http::serve(listener, network, shutdown_signal())
                .await
                .context("transport server")?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
