//! `sealpost serve`: the Cloud-API-compatible HTTP surface (axum), an adapter over the
//! application service. This file holds what the handlers share and the router; each resource
//! group is a module of its own, the checks every handler needs are extractors
//! (`extract`), and start-up, shutdown and the background loop are in `startup`.
//!
//! Every error is the Graph error envelope with a Cloud API code; nothing internal reaches a
//! client. Request paths carry ids only; nothing here logs a body, a number or a token.

mod bodies;
mod business;
mod error;
mod evidence;
mod extract;
mod health;
mod housekeeping;
mod hygiene;
mod keys;
mod limits;
mod media;
mod messages;
mod openapi;
mod params;
mod phone_numbers;
mod simulator;
mod startup;
mod subscriptions;
mod templates;
#[cfg(test)]
mod tests;
mod tokens;
mod traces;

pub use error::ApiError;
pub use housekeeping::{CHECKPOINT_EVERY_MS, PROJECTIONS_EVERY, RETENTION_EVERY_MS, SCRUB_EVERY};
pub use limits::{Limits, Pair, PAIR_BURST, PAIR_RATE_PER_S, THROUGHPUT_HIGH, THROUGHPUT_STANDARD};
pub use messages::MAX_TEXT;
pub use startup::{serve, ServeConfig, REQUEST_GRACE, WORK_GRACE};

use crate::app::AppRow;
use crate::app::Sealpost;
use crate::identity::Tokens;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_extractor;
use axum::Router;
use sealpost_adapters::clock::SimClock;
use simulator::Simulator;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{watch, Mutex};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body accepted (bigger ones get error 100).
pub const MAX_BODY: usize = 1024 * 1024;
/// Oldest and newest Graph API versions served (`/v17.0` … `/v26.0`).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 17..=26;

/// An app's business, WABA id and region.
type AppInfo = (sealpost_domain::BusinessId, String, sealpost_domain::Region);
/// A running webhook worker: its stop switch, task, and the app as it was started from
/// (callback, fields, WABA subscription).
type Worker = (watch::Sender<bool>, tokio::task::JoinHandle<()>, AppRow);

/// What the handlers share.
#[derive(Clone)]
pub struct Shared {
    app: Sealpost,
    tokens: Arc<Tokens>,
    /// The simulated transport and phones, when they run in this process (`/sim/v1/` routes).
    sim: Option<Arc<Simulator>>,
    /// `--sim-clock`: the clock, and the file that keeps its time across restarts.
    clock: Option<(SimClock, PathBuf)>,
    /// Business numbers served: phone number id → display number.
    numbers: Arc<BTreeMap<String, String>>,
    /// Apps: app id → (business, WABA id, region).
    apps: Arc<Mutex<BTreeMap<String, AppInfo>>>,
    /// Running webhook workers: app id → (stop switch, task).
    hooks: Arc<Mutex<BTreeMap<String, Worker>>>,
    /// Held while a worker is (re)started, so two restarts never leave two workers of an app.
    hook_restarts: Arc<Mutex<()>>,
    /// The log position up to which app events were followed (subscriptions made on other
    /// nodes; [`subscriptions::follow_subscriptions`]).
    apps_followed: Arc<Mutex<u64>>,
    poster: sealpost_adapters::webhook::Poster,
    limits: Arc<std::sync::Mutex<Limits>>,
    /// Places for the sends in progress ([`limits::SENDS_IN_FLIGHT`]).
    sends: Arc<tokio::sync::Semaphore>,
    /// Signs short-lived media download URLs (a URL lives 5 minutes): the vault's
    /// `media_url_key` under `serve`, so a URL survives a restart; random in unit tests.
    url_key: Arc<[u8; 32]>,
    /// This node among the others over the store (leases on background work); none when the
    /// service runs alone (unit tests).
    node: Option<crate::nodes::Node>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("numbers", &self.numbers.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The same state posting webhooks with `poster`.
    fn with_poster(mut self, poster: sealpost_adapters::webhook::Poster) -> Self {
        self.poster = poster;
        self
    }

    /// The state of a service over `app` serving `numbers` (id → display number) and the apps
    /// recorded, with no simulator and the system clock.
    fn new(
        app: Sealpost,
        tokens: Arc<Tokens>,
        numbers: BTreeMap<String, String>,
        apps: &BTreeMap<String, AppRow>,
        limits: Limits,
    ) -> Self {
        let apps = apps
            .iter()
            .map(|(id, a)| {
                (
                    id.clone(),
                    (a.business.clone(), a.waba_id.clone(), a.region),
                )
            })
            .collect();
        Self {
            app,
            tokens,
            sim: None,
            clock: None,
            numbers: Arc::new(numbers),
            apps: Arc::new(Mutex::new(apps)),
            hooks: Arc::new(Mutex::new(BTreeMap::new())),
            hook_restarts: Arc::new(Mutex::new(())),
            apps_followed: Arc::new(Mutex::new(0)),
            poster: sealpost_adapters::webhook::Poster::new(),
            limits: Arc::new(std::sync::Mutex::new(limits)),
            sends: Arc::new(tokio::sync::Semaphore::new(limits::SENDS_IN_FLIGHT)),
            url_key: Arc::new({
                let mut k = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut k);
                k
            }),
            node: None,
        }
    }

    /// As one node among others over the store: background work runs under its leases.
    fn with_node(self, node: crate::nodes::Node) -> Self {
        Self {
            node: Some(node),
            ..self
        }
    }

    /// The claim on lease `name` of this node, or [`crate::nodes::Claim::Alone`].
    fn claim(&self, name: &str) -> crate::nodes::Claim {
        self.node
            .as_ref()
            .map_or(crate::nodes::Claim::Alone, |n| n.want(name))
    }

    /// With the simulated transport and phones in process, if any: `/sim/v1/` is served.
    fn with_simulator(self, sim: Option<Simulator>) -> Self {
        Self {
            sim: sim.map(Arc::new),
            ..self
        }
    }

    /// With `--sim-clock`: the clock and the file that keeps its time.
    fn with_clock(self, clock: Option<(SimClock, PathBuf)>) -> Self {
        Self { clock, ..self }
    }

    /// Media download URLs signed with `key` (the store's, shared by restarts and nodes).
    fn with_url_key(self, key: [u8; 32]) -> Self {
        Self {
            url_key: Arc::new(key),
            ..self
        }
    }
}

/// Every route of `sealpost serve` but the simulator's, each registered with its handler's
/// description: the routes and the OpenAPI document come from this one list. Every route under
/// `/{version}/` checks the version first ([`extract::ApiVersion`]).
fn api() -> OpenApiRouter<Shared> {
    let (schemas, paths, upload) = routes!(media::upload);
    let upload = (
        schemas,
        paths,
        upload.layer(DefaultBodyLimit::max(media::UPLOAD_BODY_LIMIT)),
    );
    let versioned = OpenApiRouter::new()
        .routes(routes!(messages::send))
        .routes(routes!(phone_numbers::get, media::delete))
        .routes(upload)
        .routes(routes!(
            phone_numbers::get_settings,
            phone_numbers::post_settings
        ))
        .routes(routes!(phone_numbers::register))
        .routes(routes!(phone_numbers::deregister))
        .routes(routes!(
            templates::list,
            templates::create,
            templates::delete
        ))
        .routes(routes!(subscriptions::subscribe))
        .routes(routes!(business::get_profile, business::post_profile))
        .routes(routes!(business::phone_numbers))
        .routes(routes!(
            business::subscribed_apps,
            business::subscribe_app,
            business::unsubscribe_app
        ))
        .route_layer(from_extractor::<extract::ApiVersion>());
    // The send also answers without a version; Sealpost's own routes have none.
    let unversioned = OpenApiRouter::new()
        .routes(routes!(messages::send_unversioned))
        .routes(routes!(media::download))
        .routes(routes!(keys::status))
        .routes(routes!(phone_numbers::post_throughput))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::rotate_root))
        .routes(routes!(keys::retire_root))
        .routes(routes!(keys::rotate_audit))
        .routes(routes!(tokens::list, tokens::issue))
        .routes(routes!(tokens::revoke))
        .routes(routes!(evidence::message))
        .routes(routes!(openapi::document))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics));
    // The evidence answers (access pages, reports, certificates) are gzipped for a client that
    // accepts it.
    let evidence = OpenApiRouter::new()
        .routes(routes!(evidence::access))
        .routes(routes!(evidence::public_key))
        .routes(routes!(evidence::checkpoint))
        .routes(routes!(evidence::tlog_checkpoint))
        .routes(routes!(evidence::tlog_tile))
        .routes(routes!(evidence::proof))
        .routes(routes!(evidence::statistics))
        .routes(routes!(evidence::billing))
        .routes(routes!(evidence::retention))
        .routes(routes!(evidence::erase))
        .layer(tower_http::compression::CompressionLayer::new());
    versioned.merge(unversioned).merge(evidence)
}

/// The OpenAPI 3.1 description of every route `sealpost serve` answers, the simulator's
/// included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(api().merge(simulator::routes()).into_openapi())
}

/// The router of `sealpost serve`: [`api`], the simulator's routes when the state has the
/// simulator, and every path no route answers 100/404 in the envelope.
pub fn router(shared: Shared) -> Router {
    let (mut routes, _) = api().split_for_parts();
    if shared.sim.is_some() {
        routes = routes.merge(simulator::routes().split_for_parts().0);
    }
    hygiene::guarded(routes.fallback(|| async { ApiError::unknown_path() })).with_state(shared)
}
