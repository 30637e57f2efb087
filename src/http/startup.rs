//! Start-up, shutdown and the background loop of `sealpost serve` (ADR 0007, ADR 0010).
//!
//! Start-up: data directory, store, one retention pass (finishing interrupted erasures), audit
//! log, bind, bootstrap of an empty store, the simulated world in process, business numbers,
//! webhook workers, the background loop ([`run_pipeline`]); only then `ready`. Shutdown is
//! bounded: [`REQUEST_GRACE`] for requests, [`WORK_GRACE`] for each background stage.

use super::simulator::{saved_sim_clock, Simulator, SIM_CLOCK_FILE};
use super::subscriptions::start_hook;
use super::{router, Limits, Shared};
use crate::app::{AppError, Sealpost};
use crate::bootstrap::{bootstrap, BOOTSTRAP_FILE};
use crate::identity::Tokens;
use crate::nodes::{Claim, LeaseTiming, Node};
use crate::pipeline::{IntegrityRecorder, Lane, Pipeline};
use crate::projections::BusinessNumbers;
use anyhow::Context as _;
use sealpost_adapters::clock::{SimClock, SystemClock};
use sealpost_adapters::signal::Libsignal;
use sealpost_adapters::transport::http::HttpTransport;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_adapters::transport::world::{WorldStore, WORLD_DIR};
use sealpost_domain::ports::signal::SignalEngine;
use sealpost_domain::ports::transport::Transport;
use sealpost_domain::ports::Clock;
use sealpost_domain::{BusinessId, PhoneNumberId, RetentionPolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How `sealpost serve` is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (port 0 picks one).
    pub listen: SocketAddr,
    /// The data directory (the embedded store, root keys of the embedded default, bootstrap.json).
    pub data_dir: PathBuf,
    /// Postgres instead of the embedded store.
    pub database_url: Option<String>,
    /// Where each Local Storage region's Postgres store is (a URL with `{region}`); by default
    /// beside `database_url`.
    pub region_database_url: Option<String>,
    /// How long to wait for Postgres at start and for a pooled connection per request.
    pub connect_timeout: Duration,
    /// A simulated clock that `POST /sim/v1/clock/advance` moves.
    pub sim_clock: bool,
    /// Messages per second per business number: standard and upgraded.
    pub throughput: (f64, f64),
    /// How long the leases on background work last and how often they are renewed.
    pub leases: LeaseTiming,
    /// A `sealpost transport` to talk to instead of the simulated world in process (what
    /// several nodes share).
    pub transport_url: Option<String>,
    /// A PEM file of CAs webhooks trust beside the webpki roots (a private CA, a test's).
    pub webhook_ca_file: Option<PathBuf>,
    /// Plain `http://` callbacks to any host, not only to loopback.
    pub webhook_allow_http: bool,
}

/// The webhook client `config` asks for; an unreadable or empty CA file stops the start, naming
/// the file.
fn webhook_poster(config: &ServeConfig) -> anyhow::Result<sealpost_adapters::webhook::Poster> {
    use anyhow::Context as _;
    let pem = match &config.webhook_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the webhook CA file {}", path.display()))?,
        ),
        None => None,
    };
    let poster =
        sealpost_adapters::webhook::Poster::with(pem.as_deref(), config.webhook_allow_http)
            .with_context(|| {
                format!(
                    "the webhook CA file {}",
                    config
                        .webhook_ca_file
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                )
            })?;
    tracing::info!(
        extra_cas = config.webhook_ca_file.is_some(),
        plain_http = if config.webhook_allow_http {
            "any host"
        } else {
            "loopback only"
        },
        "webhooks are posted over https (webpki roots)"
    );
    Ok(poster)
}

/// Every business phone number in the store: id → display number (the persisted
/// `business-numbers` projection, caught up with the log).
pub(super) async fn business_numbers(app: &Sealpost) -> Result<BTreeMap<String, String>, AppError> {
    Ok(
        sealpost_adapters::projection::Persisted::<BusinessNumbers>::refresh(app.store())
            .await?
            .state
            .0,
    )
}

/// The business numbers of each lane (a number's lane is its business's), with their
/// business, each number read once here rather than by every lane's pipeline.
async fn numbers_by_lane(
    app: &Sealpost,
    ids: impl Iterator<Item = &String>,
) -> anyhow::Result<BTreeMap<Lane, Vec<(BusinessId, PhoneNumberId)>>> {
    let mut by_lane: BTreeMap<Lane, Vec<(BusinessId, PhoneNumberId)>> = BTreeMap::new();
    for id in ids {
        let id = PhoneNumberId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))?;
        // At start a node holds ids only: each number's business found once, across businesses.
        let (business, _) = crate::app::home_of(&app.catalog().find_phone_number(&id).await?)?;
        by_lane
            .entry(Lane::of(business.as_str()))
            .or_default()
            .push((business, id));
    }
    Ok(by_lane)
}

/// `--sim-clock`: a simulated clock starting at the later of the system clock and the time the
/// last run saved, and the file that keeps it.
fn sim_clock(config: &ServeConfig) -> anyhow::Result<Option<(SimClock, PathBuf)>> {
    if !config.sim_clock {
        return Ok(None);
    }
    let file = config.data_dir.join(WORLD_DIR).join(SIM_CLOCK_FILE);
    let start = match saved_sim_clock(&file)? {
        Some(saved) if saved.millis() > SystemClock.now().millis() => saved,
        _ => SystemClock.now(),
    };
    Ok(Some((SimClock::starting_at(start), file)))
}

/// Logs how long start-up has taken when it reaches a phase.
fn phase(started: std::time::Instant, name: &'static str) {
    tracing::info!(
        phase = name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "start-up"
    );
}

/// The simulated outside world (network and phones), which outlives this process as the real
/// one would: it is kept in its own sealed store beside Sealpost's.
async fn open_world(
    data_dir: &Path,
    clock: Arc<dyn Clock>,
    recorder: Arc<IntegrityRecorder>,
    engine: Arc<dyn SignalEngine>,
) -> anyhow::Result<Simulator> {
    let world = Arc::new(
        WorldStore::open(&data_dir.join(WORLD_DIR))
            .await
            .context("the simulated world's store")?,
    );
    let net = SimNetwork::open(clock, Some(recorder), world.clone())
        .await
        .context("the simulated network")?;
    let devices: BTreeMap<String, SimDevice> = SimDevice::load_all(engine.clone(), &world)
        .await
        .context("the simulated phones")?
        .into_iter()
        .map(|d| (d.address().handle.clone(), d))
        .collect();
    Ok(Simulator::new(net, engine, devices))
}

/// Runs `sealpost serve` until `shutdown` completes; `ready` gets the bound address once the
/// server accepts connections (and bootstrap.json exists).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let sim_clock = sim_clock(&config)?;
    let poster = webhook_poster(&config)?;
    let clock: Arc<dyn Clock> = match &sim_clock {
        Some((c, _)) => Arc::new(c.clone()),
        None => Arc::new(SystemClock),
    };
    let started = std::time::Instant::now();
    // Created 0700 if missing; paths an operator opened to others are named in a warning.
    sealpost_adapters::files::prepare_data_dir(&config.data_dir).context("data directory")?;
    // The embedded store serves one process; several nodes share a Postgres (ADR 0016).
    let _alone = match config.database_url {
        None => Some(lock_data_dir(&config.data_dir)?),
        Some(_) => None,
    };
    let app = Sealpost::open_within(
        &config.data_dir,
        config.database_url.as_deref(),
        config.region_database_url.as_deref(),
        16,
        // A transaction idle for a whole lease belongs to a node that has lost its leases.
        sealpost_adapters::store::postgres::Limits {
            connect: config.connect_timeout,
            idle_in_transaction: config.leases.ttl,
        },
        clock.clone(),
        RetentionPolicy::default(),
    )
    .await
    .context("open the store")?;
    // This node's leases, taken at once: a node alone holds them all before it serves. On the
    // embedded store the lock proves the last holder dead (a crash): its leases are freed
    // rather than waited out.
    if config.database_url.is_none() {
        app.stores().leases.free_all().await?;
    }
    let node = Node::new(app.stores().leases.clone(), config.leases);
    let lane_claims = node.want_share(Lane::all().map(Lane::lease));
    node.want(crate::nodes::HOUSEKEEPING);
    node.round().await;
    tracing::info!(node = node.id(), "node started");
    // Finish what a crash interrupted before anyone can read: an erasure recorded but whose keys
    // were not yet destroyed is completed now (and expired epochs are shredded). Every node
    // does this once before it serves, whoever holds the housekeeping: each step is idempotent.
    let mut retention = app.retention_resumed().await.context("retention process")?;
    retention
        .run_once(app.now())
        .await
        .context("retention recovery")?;
    phase(started, "store opened, retention pass done");
    app.audit().await.context("audit log")?;
    phase(started, "audit log opened");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .context("bind")?;
    let bound = listener.local_addr().context("bound address")?;
    let tokens = Tokens::load(app.store().clone()).await?;
    if app.store().log().head().await? == 0 {
        bootstrap(&app, &tokens, &config.data_dir, &format!("http://{bound}")).await?;
        tracing::info!(file = BOOTSTRAP_FILE, "bootstrapped a development tenant");
    }
    phase(started, "token index loaded");
    let numbers = business_numbers(&app).await?;
    let recorder = IntegrityRecorder::new(&app);
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    // The outside world: a `sealpost transport` every node talks to, or the simulated network
    // and phones in this process (the single-node default, with the `/sim/v1/` routes).
    let (transport, sim): (Arc<dyn Transport>, Option<Simulator>) = match &config.transport_url {
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "the transport URL must be an http:// or https:// URL"
            );
            (Arc::new(HttpTransport::new(url)), None)
        }
        None => {
            let sim = open_world(&config.data_dir, clock, recorder.clone(), engine.clone()).await?;
            (Arc::new(sim.net().clone()), Some(sim))
        }
    };
    let mut by_lane = numbers_by_lane(&app, numbers.keys()).await?;
    // One pipeline per lane (ADR 0017). A lane's numbers are attached by the node that holds
    // it, and again by whichever node takes it over (from the stored accounts, which the last
    // holder kept up to date).
    let mut lanes = Vec::new();
    for (lane, claim) in Lane::all().zip(lane_claims) {
        let ids = by_lane.remove(&lane).unwrap_or_default();
        // In process, the world hands its signals to the recorder; a `sealpost transport`
        // keeps them until the lane's pipeline takes them into the store.
        let mut pipeline =
            Pipeline::start_lane(app.clone(), engine.clone(), transport.clone(), lane)
                .await?
                .with_integrity(recorder.clone());
        let epoch = match claim.grant() {
            Some(grant) => {
                pipeline.hold(grant.fence, &ids).await?;
                Some(grant.epoch)
            }
            None => None,
        };
        lanes.push((
            pipeline,
            PipelineLease {
                claim,
                numbers: ids,
                epoch,
            },
        ));
    }
    phase(started, "numbers attached");
    // Subscriptions recorded after this are followed from the log ([`super::subscriptions`]);
    // the apps read next include every one before it.
    let apps_from = app.store().log().head().await?;
    let known_apps = crate::app::apps(app.store()).await?;
    let (standard, high) = config.throughput;
    let shared = Shared::new(
        app.clone(),
        tokens,
        numbers,
        &known_apps,
        Limits::new(standard, high),
    )
    .with_poster(poster)
    .with_simulator(sim)
    .with_node(node.clone())
    .with_clock(sim_clock)
    .with_url_key(
        *app.store()
            .vault()
            .media_url_key(sealpost_domain::Region::Eu, app.now())
            .await?,
    );
    *shared.apps_followed.lock().await = apps_from;
    for (id, row) in known_apps {
        if row.subscription.is_some() {
            start_hook(&shared, &id).await?;
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let renewer = tokio::spawn(node.clone().run(stop_rx.clone()));
    let mut background: Vec<tokio::task::JoinHandle<()>> = lanes
        .into_iter()
        .map(|(pipeline, lease)| {
            let span = tracing::info_span!(target: sealpost_adapters::telemetry::CONTEXT_TARGET, "lane", lane = pipeline.lane().map(Lane::index));
            tokio::spawn(tracing::Instrument::instrument(
                run_pipeline(pipeline, lease, stop_rx.clone()),
                span,
            ))
        })
        .collect();
    background.push(tokio::spawn(super::housekeeping::run(
        shared.clone(),
        stop_rx.clone(),
        retention,
    )));
    // The simulated phones are the outside world: they step on their own, beside the pipeline.
    background.extend(
        shared
            .sim
            .clone()
            .map(|sim| tokio::spawn(run_phones(sim, stop_rx.clone()))),
    );
    phase(started, "listening");
    ready(bound);
    // On the signal: stop accepting, and tell the background work to stop at once (all of it
    // is durable and resumes on the next start); then give each stage a bounded time, so the
    // process exits within SHUTDOWN_GRACE whatever the backlog.
    let signalled = {
        let stop_tx = stop_tx.clone();
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }
    };
    let server = axum::serve(listener, router(shared.clone())).with_graceful_shutdown(signalled);
    let mut stopped = stop_rx;
    tokio::select! {
        result = server => result.context("server")?,
        () = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(REQUEST_GRACE).await;
        } => tracing::warn!("requests still running at shutdown were cut off"),
    }
    let _ = stop_tx.send(true);
    let stopped = stop(&shared, background).await;
    // Only now, with the work stopped, are the leases given up: the others take over at once.
    let _ = renewer.await;
    node.release_all().await;
    stopped
}

/// The lock file that keeps a second `serve` off an embedded store's data directory (the
/// embedded store serves one process); held until the returned file is dropped.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    // Private from birth, as every file of the data directory.
    let file = sealpost_adapters::files::private_open_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another sealpost serve is using {} (the embedded store serves one process; \
             run several nodes over Postgres with --database-url)",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The data directory's lock file (see [`lock_data_dir`]).
pub const LOCK_FILE: &str = "serve.lock";

/// The stages after the server stopped: pipeline, webhook workers, the final access counts,
/// checkpoint and projections, the evidence snapshot; each within [`WORK_GRACE`].
async fn stop(shared: &Shared, background: Vec<tokio::task::JoinHandle<()>>) -> anyhow::Result<()> {
    let app = &shared.app;
    let stopped = join_tasks(background.into_iter());
    if tokio::time::timeout(WORK_GRACE, stopped).await.is_err() {
        tracing::warn!("the pipeline did not stop in time; its work resumes on the next start");
    }
    let hooks = std::mem::take(&mut *shared.hooks.lock().await);
    for (stop, _, _) in hooks.values() {
        let _ = stop.send(true);
    }
    let tasks = join_tasks(hooks.into_values().map(|(_, task, _)| task));
    if tokio::time::timeout(WORK_GRACE, tasks).await.is_err() {
        tracing::warn!("a webhook worker did not stop in time; its notification is sent again");
    }
    // Out of time is not a failure: the counts, leaves and snapshots are written by the next
    // start (or its first interval); a store error is.
    let housekeeper = shared.claim(crate::nodes::HOUSEKEEPING).grant().is_some();
    match tokio::time::timeout(WORK_GRACE, async {
        app.gate().flush().await?;
        if housekeeper {
            app.evidence().checkpoint().await?;
            app.store().vault().scrub().await?;
            crate::projections::refresh_all(app.store()).await?;
        }
        Ok::<(), AppError>(())
    })
    .await
    {
        Ok(result) => result.context("the final access counts and audit checkpoint")?,
        Err(_) => tracing::warn!(
            "the final audit checkpoint did not finish in time; the next start signs it"
        ),
    }
    Ok(())
}

/// How long requests in flight may finish after the stop signal.
pub const REQUEST_GRACE: Duration = Duration::from_millis(1_000);
/// How long each background stage (pipeline, webhook workers, final checkpoint) may take to
/// stop; with [`REQUEST_GRACE`] the process exits within 5 s of the
/// signal.
pub const WORK_GRACE: Duration = Duration::from_millis(1_000);

/// Waits for every task (a task that panicked or was cancelled counts as done).
async fn join_tasks(tasks: impl Iterator<Item = tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// What a lane's pipeline task works under: the claim on the lane's lease, the lane's numbers
/// it attaches when it gets the lease, and the epoch it already holds (attached at start).
struct PipelineLease {
    claim: Claim,
    numbers: Vec<(BusinessId, PhoneNumberId)>,
    epoch: Option<u64>,
}

/// A lane's pipeline, stepping until told to stop while this node holds the lane's lease (the
/// housekeeping runs beside it, in [`super::housekeeping`], so a checkpoint or a retention
/// pass never holds up a step).
async fn run_pipeline(
    mut pipeline: Pipeline,
    held: PipelineLease,
    mut stop: watch::Receiver<bool>,
) {
    let PipelineLease {
        mut claim,
        numbers,
        mut epoch,
    } = held;
    let mut failing: u32 = 0;
    loop {
        if *stop.borrow() {
            // Everything is durable: what is left waits for the next start.
            return;
        }
        let Some(grant) = claim.grant() else {
            if epoch.take().is_some() {
                tracing::info!("pipeline paused: another node holds it");
                pipeline.let_go();
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = claim.changed() => {}
            }
            continue;
        };
        if epoch != Some(grant.epoch) {
            if let Err(e) = pipeline.hold(grant.fence, &numbers).await {
                tracing::error!(error = %e, "pipeline could not take over: checkpoint or numbers not loaded");
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            epoch = Some(grant.epoch);
        }
        let busy = match pipeline.step().await {
            Ok(report) => {
                failing = 0;
                !report.is_idle()
            }
            Err(e) if e.is_fenced() => {
                // Taken over: stop until the lease says what next (resumed under a new grant).
                tracing::warn!("pipeline lease taken over; this node stops delivering");
                pipeline.let_go();
                epoch = None;
                tokio::select! {
                    _ = stop.changed() => {}
                    () = claim.changed() => {}
                }
                continue;
            }
            Err(e) => {
                failing += 1;
                // A store that is down fails every step: say so when it starts, then sparingly.
                if failing.is_power_of_two() {
                    tracing::error!(error = %e, failing, "pipeline step failed");
                }
                false
            }
        };
        // A step that did work is followed by the next at once; an idle one waits a little,
        // and failing ones back off (at most 2 s), so an outage is not a busy loop.
        if busy {
            tokio::task::yield_now().await;
            continue;
        }
        let pause = Duration::from_millis(20u64 << failing.min(7)).min(Duration::from_secs(2));
        tokio::select! {
            _ = stop.changed() => {}
            () = pipeline.idle(pause) => {}
        }
    }
}

/// The simulated phones, stepping until told to stop: at once again while envelopes arrive,
/// every 20 ms while none do.
async fn run_phones(sim: Arc<super::simulator::Simulator>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if sim.step_devices().await > 0 {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}
