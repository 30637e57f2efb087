//! The command line of the `sealpost` binary: its subcommands and flags (clap).

use super::StoreLocation;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sealpost",
    version,
    about = "Self-hostable, privacy-by-construction business messaging processor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scripted scenario on the embedded store with a simulated clock and check the
    /// privacy promises; exits non-zero if any check fails.
    Demo {
        /// Keep the data directory here instead of a temporary one (must be empty or absent).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (what `serve` answers at
    /// `/sealpost/v1/openapi.json`), to generate a client without a running server.
    Openapi,
    /// Serve the Cloud-API-compatible HTTP API with the pipeline, the simulated transport and
    /// devices in process. On an empty store it bootstraps a development tenant and writes
    /// `<data-dir>/bootstrap.json` (mode 0600).
    Serve {
        /// A TOML configuration file (keys: listen, data_dir, database_url, sim_clock,
        /// throughput_per_second, upgraded_throughput_per_second, connect_timeout_seconds,
        /// lease_ttl_seconds, lease_renew_seconds, transport_url, region_database_url,
        /// webhook_ca_file, webhook_allow_http).
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
        #[arg(long, env = "SEALPOST_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Where each Local Storage region's Postgres store is: a URL with `{region}` (the
        /// lower-case code). [default: beside --database-url, its name + `_<region>`]
        #[arg(long, env = "SEALPOST_REGION_DATABASE_URL", hide_env_values = true)]
        region_database_url: Option<String>,
        /// Seconds to wait for Postgres: at start (then exit, naming the host and port tried)
        /// and for a connection per request (then 503, code 131016). [default: 10]
        #[arg(long, env = "SEALPOST_CONNECT_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=600))]
        connect_timeout: Option<u64>,
        /// Run on a simulated clock that `POST /sim/v1/clock/advance` moves (for tests).
        #[arg(long, env = "SEALPOST_SIM_CLOCK")]
        sim_clock: bool,
        /// Seconds a node's lease on background work (pipeline, webhooks, audit, retention)
        /// lasts unless renewed; another node takes over a dead node's work within twice
        /// this. [default: 10]
        #[arg(long, env = "SEALPOST_LEASE_TTL", value_parser = clap::value_parser!(u64).range(2..=300))]
        lease_ttl: Option<u64>,
        /// Seconds between renewals of a node's leases, at most half the TTL. [default: 3]
        #[arg(long, env = "SEALPOST_LEASE_RENEW", value_parser = clap::value_parser!(u64).range(1..=150))]
        lease_renew: Option<u64>,
        /// Talk to a `sealpost transport` at this URL instead of running the simulated world
        /// (network and phones) in process: what several nodes share. Without it, `/sim/v1/`
        /// is served.
        #[arg(long, env = "SEALPOST_TRANSPORT_URL")]
        transport_url: Option<String>,
        /// A PEM file of CA certificates webhooks trust beside the webpki roots (a private
        /// CA). Callbacks are https://; plain http:// only to a loopback address.
        #[arg(long, env = "SEALPOST_WEBHOOK_CA_FILE")]
        webhook_ca_file: Option<PathBuf>,
        /// Accept plain http:// callbacks to any host, not only to loopback (a private network
        /// behind its own TLS).
        #[arg(long, env = "SEALPOST_WEBHOOK_ALLOW_HTTP")]
        webhook_allow_http: bool,
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
        /// json, or html (a page to print and file).
        #[arg(long, default_value = "json", value_parser = ["json", "html"])]
        format: String,
    },
    /// The keys: where the root keys are, each ledger key's version and age, and rotation.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The nodes serving a store and the leases each holds on background work.
    Nodes {
        #[command(flatten)]
        store: StoreArgs,
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
pub enum KeysAction {
    /// The root keys' custody, and every business's ledger key per region: its version, when it
    /// was made and when the retention pass rotates it.
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rotates a key now (recorded in the log): `ledger` (a business's ledger key in a region;
    /// needs --business and --region), `root` (a region's root key: its next generation is made
    /// and everything wrapped under the older ones is rewrapped, with progress shown; needs
    /// --region) or `audit` (the home log's signing key, or with --region a Local Storage
    /// region's own log's: the next checkpoint, signed at once, hands the log over from the old
    /// key to the new one).
    Rotate {
        /// The kind of key.
        #[arg(value_parser = ["ledger", "root", "audit"])]
        kind: String,
        /// The business (ledger keys).
        #[arg(long)]
        business: Option<String>,
        /// The region code (e.g. EU, DE; ledger and root keys, a Local Storage region's log).
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Destroys an old generation of a region's root key, finishing first any rewrap left
    /// under it; refused while the rotation away from it is under ten minutes old.
    Retire {
        /// The kind of key (root keys).
        #[arg(value_parser = ["root"])]
        kind: String,
        /// The region code.
        #[arg(long)]
        region: String,
        /// The generation to destroy.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        generation: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionAction {
    /// Fold a projection again from position 0 and save it (idempotent; safe while `serve`
    /// runs). NAME: business-numbers, apps, tokens, evidence.
    Rebuild {
        /// Which projection.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The port `sealpost serve` listens on by default.
pub const DEFAULT_PORT: u16 = 8080;

/// Where the store is (as for `serve`).
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The data directory (embedded store, root keys, audit witness file).
    #[arg(long, env = "SEALPOST_DATA_DIR", default_value = "./sealpost-data")]
    pub data_dir: PathBuf,
    /// Use Postgres at this URL instead of the embedded store.
    #[arg(long, env = "SEALPOST_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where each Local Storage region's Postgres store is: a URL with `{region}`.
    /// [default: beside --database-url, its name + `_<region>`]
    #[arg(long, env = "SEALPOST_REGION_DATABASE_URL", hide_env_values = true)]
    pub region_database_url: Option<String>,
}

impl StoreArgs {
    pub fn location(self) -> StoreLocation {
        StoreLocation {
            data_dir: self.data_dir,
            database_url: self.database_url,
            region_database_url: self.region_database_url,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
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
        /// json, or note (the C2SP signed note transparency-log tools verify).
        #[arg(long, default_value = "json", value_parser = ["json", "note"])]
        format: String,
    },
    /// Print the log's public key.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
        /// hex (the Ed25519 key), or vkey (the note verifier key `<name>+<id>+<key>`).
        #[arg(long, default_value = "hex", value_parser = ["hex", "vkey"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportAction {
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
pub enum TenantAction {
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
        #[arg(long, env = "SEALPOST_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Where each Local Storage region's Postgres store is: a URL with `{region}` (the
        /// lower-case code). [default: beside --database-url, its name + `_<region>`]
        #[arg(long, env = "SEALPOST_REGION_DATABASE_URL", hide_env_values = true)]
        region_database_url: Option<String>,
    },
}
