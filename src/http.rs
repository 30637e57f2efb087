//! `sealpost serve`: the Cloud-API-compatible HTTP surface (axum), an adapter over the
//! application service. This file holds what the handlers share and the router; each resource
//! group is a module of its own, the checks every handler needs are extractors
//! (`extract`), and start-up, shutdown and the background loop are in `startup`.
//!
//! Every error is the Graph error envelope with a Cloud API code; nothing internal reaches a
//! client. Request paths carry ids only; nothing here logs a body, a number or a token.

mod business;
mod error;
mod evidence;
mod extract;
mod health;
mod housekeeping;
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

pub use error::ApiError;
pub use housekeeping::{CHECKPOINT_EVERY_MS, PROJECTIONS_EVERY, RETENTION_EVERY_MS, SCRUB_EVERY};
pub use limits::{Limits, Pair, PAIR_BURST, PAIR_RATE_PER_S, THROUGHPUT_HIGH, THROUGHPUT_STANDARD};
pub use messages::MAX_TEXT;
pub use openapi::openapi;
pub use startup::{serve, ServeConfig, REQUEST_GRACE, WORK_GRACE};

use crate::app::AppRow;
use crate::app::Sealpost;
use crate::identity::Tokens;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_extractor;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use sealpost_adapters::clock::SimClock;
use simulator::Simulator;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{watch, Mutex};

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

/// The router of `sealpost serve`. Every route under `/{version}/` checks the version first
/// ([`extract::ApiVersion`]); the simulator's routes are mounted only when the state has the
/// simulator; every path no route answers is 100/404 in the envelope.
pub fn router(shared: Shared) -> Router {
    let upload_limit = DefaultBodyLimit::max(media::UPLOAD_BODY_LIMIT);
    let versioned = Router::new()
        .route(
            "/{version}/{id}/messages",
            post(messages::send).put(messages::send),
        )
        .route(
            "/{version}/{id}",
            get(phone_numbers::get).delete(media::delete),
        )
        .route(
            "/{version}/{id}/media",
            post(media::upload).layer(upload_limit),
        )
        .route(
            "/{version}/{id}/settings",
            get(phone_numbers::get_settings).post(phone_numbers::post_settings),
        )
        .route("/{version}/{id}/register", post(phone_numbers::register))
        .route(
            "/{version}/{id}/deregister",
            post(phone_numbers::deregister),
        )
        .route(
            "/{version}/{id}/message_templates",
            get(templates::list)
                .post(templates::create)
                .delete(templates::delete),
        )
        .route(
            "/{version}/{id}/subscriptions",
            post(subscriptions::subscribe),
        )
        .route(
            "/{version}/{id}/whatsapp_business_profile",
            get(business::get_profile).post(business::post_profile),
        )
        .route(
            "/{version}/{id}/phone_numbers",
            get(business::phone_numbers),
        )
        .route(
            "/{version}/{id}/subscribed_apps",
            get(business::subscribed_apps)
                .post(business::subscribe_app)
                .delete(business::unsubscribe_app),
        )
        .route_layer(from_extractor::<extract::ApiVersion>());
    // The send also answers without a version; Sealpost's own routes have none.
    let unversioned = Router::new()
        .route("/{id}/messages", post(messages::send).put(messages::send))
        .route("/sealpost/v1/media/{id}", get(media::download))
        .route("/sealpost/v1/keys", get(keys::status))
        .route(
            "/sealpost/v1/numbers/{id}/throughput",
            post(phone_numbers::post_throughput),
        )
        .route("/sealpost/v1/keys/ledger/rotate", post(keys::rotate))
        .route("/sealpost/v1/keys/root/rotate", post(keys::rotate_root))
        .route("/sealpost/v1/keys/root/retire", post(keys::retire_root))
        .route("/sealpost/v1/keys/audit/rotate", post(keys::rotate_audit))
        .route("/sealpost/v1/tokens", get(tokens::list).post(tokens::issue))
        .route("/sealpost/v1/tokens/{token_id}", delete(tokens::revoke))
        .route("/sealpost/v1/audit/access", get(evidence::access))
        .route("/sealpost/v1/audit/public-key", get(evidence::public_key))
        .route("/sealpost/v1/audit/checkpoint", get(evidence::checkpoint))
        .route(
            "/sealpost/v1/audit/tlog/checkpoint",
            get(evidence::tlog_checkpoint),
        )
        .route(
            "/sealpost/v1/audit/tlog/tile/{*path}",
            get(evidence::tlog_tile),
        )
        .route("/sealpost/v1/audit/proofs/{kind}", get(evidence::proof))
        .route("/sealpost/v1/statistics", get(evidence::statistics))
        .route("/sealpost/v1/billing", get(evidence::billing))
        .route("/sealpost/v1/dpo/retention", get(evidence::retention))
        .route("/sealpost/v1/dpo/erasures", post(evidence::erase))
        .route("/sealpost/v1/messages/{id}", get(evidence::message))
        .route(
            "/sealpost/v1/openapi.json",
            get(|| async { Json(openapi()) }),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    let mut routes = versioned.merge(unversioned);
    if shared.sim.is_some() {
        routes = routes.merge(simulator::routes());
    }
    routes
        .fallback(|| async { ApiError::unknown_path() })
        .with_state(shared)
}
