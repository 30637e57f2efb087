//! The simulator's routes (`/sim/v1/*`, unauthenticated): they stand in for consumers' phones
//! on the in-process simulated network, and move the simulated clock. Mounted only when `serve`
//! runs the simulated transport in process ([`Shared::with_simulator`]); otherwise a `/sim/v1/`
//! path answers as any unknown one. Only these paths name a phone number.

use super::bodies::Success;
use super::extract::{JsonBody, Path};
use super::{ApiError, Shared};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use sealpost_adapters::clock::SimClock;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_domain::ports::signal::SignalEngine;
use sealpost_domain::ports::transport::Transport;
use sealpost_domain::ports::Clock as _;
use sealpost_domain::MessageContent;
use sealpost_domain::{Timestamp, E164};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Phones that step at once.
const PHONES_AT_ONCE: usize = 64;

/// The simulated outside world in this process: the network and the consumers' phones.
pub(crate) struct Simulator {
    net: SimNetwork,
    engine: Arc<dyn SignalEngine>,
    /// The phones by number; also the world's lock (clock advances save in order under it).
    devices: Mutex<BTreeMap<String, SimDevice>>,
    /// The numbers of the phones that exist, so that a send to one of them does not wait for
    /// the phones' step (which holds `devices`).
    joined: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

impl Simulator {
    /// The world of `net`, with the phones kept from an earlier run.
    pub(crate) fn new(
        net: SimNetwork,
        engine: Arc<dyn SignalEngine>,
        devices: BTreeMap<String, SimDevice>,
    ) -> Self {
        Self {
            net,
            engine,
            joined: std::sync::RwLock::new(devices.keys().cloned().collect()),
            devices: Mutex::new(devices),
        }
    }

    /// The simulated transport.
    pub(crate) fn net(&self) -> &SimNetwork {
        &self.net
    }

    /// The phone of `digits`, joining the network the first time it is named.
    async fn device<'a>(
        &self,
        devices: &'a mut BTreeMap<String, SimDevice>,
        digits: &str,
    ) -> Result<&'a mut SimDevice, ApiError> {
        if !devices.contains_key(digits) {
            let mut d = SimDevice::join(self.engine.clone(), &self.net, digits)
                .await
                .map_err(|_| ApiError::unknown())?;
            if let Some(world) = self.net.world() {
                d = d
                    .kept_in(world.clone())
                    .await
                    .map_err(|_| ApiError::unknown())?;
            }
            devices.insert(digits.to_owned(), d);
            self.joined
                .write()
                .expect("joined lock is never poisoned")
                .insert(digits.to_owned());
        }
        devices.get_mut(digits).ok_or_else(ApiError::unknown)
    }

    /// Makes the phone of `digits` exist, as a real one addressed by a send already would.
    pub(crate) async fn ensure_device(&self, digits: &str) -> Result<(), ApiError> {
        if self
            .joined
            .read()
            .expect("joined lock is never poisoned")
            .contains(digits)
        {
            return Ok(());
        }
        let mut devices = self.devices.lock().await;
        self.device(&mut devices, digits).await.map(|_| ())
    }

    /// One step of every phone: take what arrived, decrypt, acknowledge, answer receipts.
    /// Returns how many envelopes the phones took.
    pub(crate) async fn step_devices(&self) -> usize {
        use futures::StreamExt as _;
        let mut devices = self.devices.lock().await;
        // Phones are independent: they step at once, and the world's writer commits their
        // saves, receipts and acknowledgements together.
        let net: &dyn Transport = &self.net;
        let steps: Vec<futures::future::BoxFuture<'_, _>> = devices
            .iter_mut()
            .filter(|(handle, _)| self.net.queued(handle) > 0)
            .map(|(_, d)| Box::pin(d.step(net)) as futures::future::BoxFuture<'_, _>)
            .collect();
        futures::stream::iter(steps)
            .buffer_unordered(PHONES_AT_ONCE)
            .fold(0, |taken, r| async move {
                match r {
                    Ok(n) => taken + n,
                    Err(e) => {
                        tracing::warn!(error = %e, "device step failed");
                        taken
                    }
                }
            })
            .await
    }
}

/// The routes, for [`super::router`] to mount when the simulator runs.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(inbox))
        .routes(routes!(report))
        .routes(routes!(presence))
        .routes(routes!(advance))
}

/// The phone of a simulated consumer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Read by the `Phone` extractor; this is its schema.
struct Device {
    /// The consumer's number (digits).
    wa_id: String,
}

/// What a simulated phone sends: a Cloud API message object and the business number.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Passed on to the phone as it came; this is its schema.
struct DeviceMessage {
    /// The business number (display number, digits).
    to: String,
    /// The message (`type` defaults to `text`).
    #[serde(flatten)]
    message: MessageContent,
}

/// A message the phone sent.
#[derive(Debug, Serialize, ToSchema)]
struct DeviceSent {
    /// Its id (`dev.…`).
    id: String,
}

/// A report of a business number.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
struct DeviceReport {
    /// The business number.
    to: String,
    /// `spam` or `block`.
    #[serde(rename = "type")]
    kind: String,
}

/// A phone going offline or online.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
struct DevicePresence {
    /// Online or not.
    online: bool,
}

/// The phone's presence now.
#[derive(Debug, Serialize, ToSchema)]
struct Presence {
    /// Always `true`.
    success: bool,
    /// Online or not.
    online: bool,
}

/// What a phone received and which of its messages the business read.
#[derive(Debug, Serialize, ToSchema)]
struct Inbox {
    /// Decrypted, oldest first.
    messages: Vec<Received>,
    /// Ids of its own messages the business marked read.
    read_by_business: Vec<String>,
}

/// One message a phone decrypted.
#[derive(Debug, Serialize, ToSchema)]
struct Received {
    /// The message's id.
    id: String,
    /// The business number it came from.
    from: String,
    /// The Cloud API message object (or text, when it was not JSON).
    content: Value,
}

/// How far to move the simulated clock.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
struct ClockAdvance {
    /// Seconds, 0 to ten years.
    seconds: i64,
}

/// The simulated time.
#[derive(Debug, Serialize, ToSchema)]
struct ClockNow {
    /// Unix seconds.
    now: i64,
}

/// The simulator of the state (the routes are only mounted with one).
struct World(Arc<Simulator>);

impl FromRequestParts<Shared> for World {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        s.sim.clone().map(Self).ok_or_else(ApiError::unknown_path)
    }
}

/// The phone number of the `{wa_id}` path segment (131009 if it is none).
struct Phone(E164);

impl<S: Send + Sync> FromRequestParts<S> for Phone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        let Path(wa_id) = Path::<String>::from_request_parts(parts, s).await?;
        E164::parse(&wa_id)
            .map(Self)
            .map_err(|_| ApiError::not_valid("wa_id"))
    }
}

/// `--sim-clock`: the clock and the file that keeps its time (100 on the system clock).
struct Clock(SimClock, PathBuf);

impl FromRequestParts<Shared> for Clock {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, s: &Shared) -> Result<Self, ApiError> {
        let (clock, file) = s.clock.clone().ok_or_else(|| {
            ApiError::invalid("The server runs on the system clock (start it with --sim-clock).")
        })?;
        Ok(Self(clock, file))
    }
}

/// The transport refused what a phone handed it.
fn not_taken(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        131_000,
        format!("The transport did not take the {what}."),
    )
}

/// `POST /sim/v1/devices/{wa_id}/messages`: the phone sends a Cloud API message object to the
/// business number `to` → `{"id": "dev.…"}`.
#[utoipa::path(
    post,
    path = "/sim/v1/devices/{wa_id}/messages",
    tag = "simulator",
    params(Device),
    request_body = DeviceMessage,
    responses((status = 200, description = "The phone sent it", body = DeviceSent)),
)]
async fn send(
    State(s): State<Shared>,
    World(sim): World,
    Phone(phone): Phone,
    JsonBody(mut body): JsonBody,
) -> Result<Json<DeviceSent>, ApiError> {
    let to = business(&s, &body)?;
    if let Some(o) = body.as_object_mut() {
        o.remove("to");
        o.entry("type").or_insert_with(|| json!("text"));
    }
    let id = format!("dev.{}", uuid::Uuid::new_v4().simple());
    let mut devices = sim.devices.lock().await;
    let d = sim.device(&mut devices, phone.expose_digits()).await?;
    d.send(
        &sim.net,
        to.expose_digits(),
        &id,
        body.to_string().as_bytes(),
    )
    .await
    .map_err(|_| not_taken("message"))?;
    Ok(Json(DeviceSent { id }))
}

/// The business number a simulated device addresses (`to`), checked against those served.
fn business(s: &Shared, body: &Value) -> Result<E164, ApiError> {
    let to = body
        .get("to")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing("to"))?;
    let to = E164::parse(to).map_err(|_| ApiError::not_valid("to"))?;
    if !s.numbers.values().any(|d| to.matches_digits(d)) {
        return Err(ApiError::not_valid("to"));
    }
    Ok(to)
}

/// A device reports a business number as spam (`{"to":…,"type":"spam"}`) or blocks it
/// (`"type":"block"`); the transport's integrity signals follow.
#[utoipa::path(
    post,
    path = "/sim/v1/devices/{wa_id}/report",
    tag = "simulator",
    params(Device),
    request_body = DeviceReport,
    responses((status = 200, description = "Reported", body = Success)),
)]
async fn report(
    State(s): State<Shared>,
    World(sim): World,
    Phone(phone): Phone,
    JsonBody(body): JsonBody,
) -> Result<Json<Success>, ApiError> {
    let to = business(&s, &body)?;
    let block = match body.get("type").and_then(Value::as_str) {
        Some("spam") => false,
        Some("block") => true,
        Some(_) => return Err(ApiError::not_valid("type")),
        None => return Err(ApiError::missing("type")),
    };
    let mut devices = sim.devices.lock().await;
    let d = sim.device(&mut devices, phone.expose_digits()).await?;
    d.report(&sim.net, to.expose_digits(), block)
        .await
        .map_err(|_| not_taken("report"))?;
    Ok(Success::done())
}

/// A device goes offline (`{"online":false}`: its messages queue at the transport) or online.
#[utoipa::path(
    post,
    path = "/sim/v1/devices/{wa_id}/presence",
    tag = "simulator",
    params(Device),
    request_body = DevicePresence,
    responses((status = 200, description = "Its presence now", body = Presence)),
)]
async fn presence(
    World(sim): World,
    Phone(phone): Phone,
    JsonBody(body): JsonBody,
) -> Result<Json<Presence>, ApiError> {
    let online = body
        .get("online")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::missing("online"))?;
    let mut devices = sim.devices.lock().await;
    let d = sim.device(&mut devices, phone.expose_digits()).await?;
    d.offline = !online;
    d.save().await.map_err(|_| ApiError::unavailable())?;
    Ok(Json(Presence {
        success: true,
        online,
    }))
}

/// `GET /sim/v1/devices/{wa_id}/inbox`: what the phone decrypted, and which of its own messages
/// the business read.
#[utoipa::path(
    get,
    path = "/sim/v1/devices/{wa_id}/inbox",
    tag = "simulator",
    params(Device),
    responses((status = 200, description = "The phone's inbox", body = Inbox)),
)]
async fn inbox(World(sim): World, Phone(phone): Phone) -> Result<Json<Inbox>, ApiError> {
    let mut devices = sim.devices.lock().await;
    let d = sim.device(&mut devices, phone.expose_digits()).await?;
    let inbox = d.inbox().await.map_err(|_| ApiError::unavailable())?;
    let messages: Vec<Received> = inbox
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.plaintext).into_owned();
            let content = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            Received {
                id: r.id.clone(),
                from: r.from.clone(),
                content,
            }
        })
        .collect();
    // The device's own messages (by the id `POST …/messages` answered) the business read.
    let read: Vec<String> = d
        .read_by_business()
        .await
        .map_err(|_| ApiError::unavailable())?
        .into_iter()
        .collect();
    Ok(Json(Inbox {
        messages,
        read_by_business: read,
    }))
}

/// `POST /sim/v1/clock/advance` `{"seconds": n}` → `{"now": <unix seconds>}`.
#[utoipa::path(
    post,
    path = "/sim/v1/clock/advance",
    tag = "simulator",
    request_body = ClockAdvance,
    responses((status = 200, description = "The simulated time now", body = ClockNow)),
)]
async fn advance(
    Clock(clock, file): Clock,
    World(sim): World,
    JsonBody(body): JsonBody,
) -> Result<Json<ClockNow>, ApiError> {
    let seconds = body
        .get("seconds")
        .and_then(Value::as_i64)
        .filter(|n| (0..=10 * 365 * 86_400).contains(n))
        .ok_or_else(|| ApiError::not_valid("seconds"))?;
    // Under the simulated world's lock, so that two advances save their times in order.
    let _world = sim.devices.lock().await;
    clock.advance_secs(seconds);
    save_sim_clock(&file, clock.now()).map_err(|e| {
        tracing::error!(error = %e, "the simulated clock could not be saved");
        ApiError::unavailable()
    })?;
    Ok(Json(ClockNow {
        now: clock.now().unix_seconds(),
    }))
}

/// Where `--sim-clock` keeps its time, beside the simulated world. The simulated clock moves
/// only when told to; a restart must not take it back (an expired service window would open
/// again, a template in review would be pending again), so it starts at the later of the
/// system clock and the time saved here by the last advance.
pub(super) const SIM_CLOCK_FILE: &str = "sim-clock";

/// The simulated clock's saved time (milliseconds since the Unix epoch), if any.
pub(super) fn saved_sim_clock(file: &std::path::Path) -> anyhow::Result<Option<Timestamp>> {
    use anyhow::Context as _;
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let ms = text
                .trim()
                .parse::<i64>()
                .with_context(|| format!("{} is not a time", file.display()))?;
            Ok(Some(Timestamp::from_millis(ms)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", file.display())),
    }
}

/// Saves the simulated clock's time (written aside, then renamed over the old one).
fn save_sim_clock(file: &std::path::Path, now: Timestamp) -> std::io::Result<()> {
    let aside = file.with_extension("new");
    if let Err(e) = std::fs::remove_file(&aside) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e);
        }
    }
    sealpost_adapters::vault::write_private_file(&aside, now.millis().to_string().as_bytes())?;
    std::fs::rename(&aside, file)
}
