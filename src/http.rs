//! `sealpost serve`: the Cloud-API-compatible HTTP surface (axum), the simulator endpoints that
//! speak for the simulated devices, and the pipeline running beside them.
//!
//! Every error is the Graph error envelope with a Cloud API code; nothing internal reaches a
//! client. Request paths carry ids only; nothing here logs a body, a number or a token.

mod evidence;
mod extract;
mod media;
mod tokens;

use crate::app::{AppError, Sealpost};
use crate::bootstrap::{bootstrap, BOOTSTRAP_FILE};
use crate::identity::{Grant, Tokens};
use crate::pipeline::{IntegrityRecorder, Pipeline};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use extract::{Path, Query};
use sealpost_adapters::clock::{Clock, SimClock, SystemClock};
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_adapters::transport::world::{WorldStore, WORLD_DIR};
use sealpost_audit::GateError;
use sealpost_domain::identity::SCOPE_MESSAGING;
use sealpost_domain::{
    MessageKind, PhoneNumberEvent, PhoneNumberId, PrincipalKind, RetentionPolicy, E164,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// How often (by the server's clock) the retention process runs under `serve`.
pub const RETENTION_EVERY_MS: i64 = 60_000;
/// How often (by the server's clock) `serve` signs an audit checkpoint of new rows.
pub const CHECKPOINT_EVERY_MS: i64 = 60_000;
/// How often the audit sequencer records leaves for new rows.
const SEQUENCE_EVERY: Duration = Duration::from_millis(500);

/// Largest request body accepted (bigger ones get error 100).
pub const MAX_BODY: usize = 1024 * 1024;
/// Oldest and newest Graph API versions served (`/v17.0` … `/v26.0`).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 17..=26;
/// The most a text body may hold.
pub const MAX_TEXT: usize = 4096;

/// How `sealpost serve` is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (port 0 picks one).
    pub listen: SocketAddr,
    /// The data directory (the embedded store, root keys of the embedded default, bootstrap.json).
    pub data_dir: PathBuf,
    /// Postgres instead of the embedded store.
    pub database_url: Option<String>,
    /// How long to wait for Postgres at start and for a pooled connection per request.
    pub connect_timeout: Duration,
    /// A simulated clock that `POST /sim/v1/clock/advance` moves.
    pub sim_clock: bool,
    /// Messages per second per business number: standard and upgraded.
    pub throughput: (f64, f64),
}

/// A Cloud API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    details: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, details: impl Into<String>) -> Self {
        Self {
            status,
            code,
            details: details.into(),
        }
    }

    fn invalid(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, details)
    }

    fn missing(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131_008,
            format!("The parameter {field} is required."),
        )
    }

    fn not_valid(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131_009,
            format!("The value of {field} is not valid."),
        )
    }

    fn denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            200,
            "The access token does not have permission for this phone number.",
        )
    }

    /// The database is down, unreachable or busy: 503 with the Cloud API's retryable code
    /// 131016 and nothing internal in the message.
    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            131_016,
            "Service temporarily unavailable. Please retry.",
        )
    }

    /// `denied()` for a lookup that failed, unless it failed because the database is
    /// unavailable: an outage must not look like a missing permission.
    fn denied_unless_unavailable(e: AppError) -> Self {
        if e.is_unavailable() {
            Self::from(e)
        } else {
            Self::denied()
        }
    }

    fn title(code: u32) -> &'static str {
        match code {
            0 | 190 => "Invalid OAuth access token",
            10 => "Application does not have permission for this action",
            200..=299 => "Permissions error",
            100 => "Invalid parameter",
            131_008 => "Required parameter is missing",
            131_009 => "Parameter value is not valid",
            131_016 => "Service unavailable",
            131_026 => "Message undeliverable",
            131_047 => "Re-engagement message",
            131_048 => "Spam rate limit hit",
            131_053 => "Media upload error",
            131_056 => "(Business Account, Consumer Account) pair rate limit hit",
            132_001 => "Template name does not exist in the translation",
            130_429 => "Rate limit hit",
            133_016 => "Account register deregister rate limit exceeded",
            _ => "Something went wrong",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": format!("(#{}) {}", self.code, Self::title(self.code)),
                "type": "OAuthException",
                "code": self.code,
                "error_data": { "messaging_product": "whatsapp", "details": self.details },
                "fbtrace_id": format!("A{}", uuid::Uuid::new_v4().simple()),
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(d) => {
                let status =
                    StatusCode::from_u16(d.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                let code = d.cloud_code();
                let details = match d {
                    sealpost_domain::DomainError::OutsideServiceWindow => {
                        "More than 24 hours have passed since the recipient last replied to the sender number.".to_owned()
                    }
                    sealpost_domain::DomainError::InvalidTransition(_) => "An unknown error occurred.".to_owned(),
                    other => other.to_string(),
                };
                ApiError::new(status, code, details)
            }
            AppError::Gate(GateError::Denied(_)) => ApiError::denied(),
            other if other.is_unavailable() => {
                // Transient: the database is down or busy. The cause stays in the log (no
                // personal data in it); the client is told to retry.
                tracing::warn!(error = %other, "database unavailable; answered 503");
                ApiError::unavailable()
            }
            other => {
                // The detail stays in the log (no personal data in it); the client gets none.
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    131_000,
                    "An unknown error occurred.",
                )
            }
        }
    }
}

/// An app's business, WABA id and region.
type AppInfo = (sealpost_domain::BusinessId, String, sealpost_domain::Region);
/// A running webhook worker: its stop switch and task.
type Worker = (watch::Sender<bool>, tokio::task::JoinHandle<()>);

struct Sim {
    devices: BTreeMap<String, SimDevice>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct Shared {
    app: Sealpost,
    tokens: Arc<Tokens>,
    sim: Arc<Mutex<Sim>>,
    net: SimNetwork,
    engine: Arc<dyn SignalEngine>,
    /// `--sim-clock`: the clock, and the file that keeps its time across restarts.
    clock: Option<(SimClock, PathBuf)>,
    /// Business numbers served: phone number id → display number.
    numbers: Arc<BTreeMap<String, String>>,
    /// Apps: app id → (business, WABA id, region).
    apps: Arc<Mutex<BTreeMap<String, AppInfo>>>,
    /// Running webhook workers: app id → (stop switch, task).
    hooks: Arc<Mutex<BTreeMap<String, Worker>>>,
    poster: sealpost_adapters::webhook::Poster,
    limits: Arc<std::sync::Mutex<Limits>>,
    /// Signs short-lived media download URLs (per process: a URL lives 5 minutes).
    url_key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("numbers", &self.numbers.len())
            .finish_non_exhaustive()
    }
}

/// The router of `sealpost serve`.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/{version}/{id}/messages",
            post(send_versioned).put(send_versioned),
        )
        .route(
            "/{id}/messages",
            post(send_unversioned).put(send_unversioned),
        )
        .route("/{version}/{id}", get(get_number).delete(media::delete))
        .route(
            "/{version}/{id}/media",
            post(media::upload).layer(axum::extract::DefaultBodyLimit::max(
                media::UPLOAD_BODY_LIMIT,
            )),
        )
        .route("/sealpost/v1/media/{id}", get(media::download))
        .route("/sealpost/v1/tokens", get(tokens::list).post(tokens::issue))
        .route("/sealpost/v1/audit/access", get(evidence::access))
        .route("/sealpost/v1/audit/public-key", get(evidence::public_key))
        .route("/sealpost/v1/audit/checkpoint", get(evidence::checkpoint))
        .route("/sealpost/v1/audit/proofs/{kind}", get(evidence::proof))
        .route("/sealpost/v1/statistics", get(evidence::statistics))
        .route("/sealpost/v1/billing", get(evidence::billing))
        .route("/sealpost/v1/dpo/retention", get(evidence::retention))
        .route("/sealpost/v1/dpo/erasures", post(evidence::erase))
        .route("/sealpost/v1/messages/{id}", get(evidence::message))
        .route(
            "/sealpost/v1/tokens/{token_id}",
            axum::routing::delete(tokens::revoke),
        )
        .route(
            "/{version}/{id}/settings",
            get(get_settings).post(post_settings),
        )
        .route("/{version}/{id}/register", post(register))
        .route(
            "/{version}/{id}/message_templates",
            get(list_templates)
                .post(create_template)
                .delete(delete_template),
        )
        .route("/{version}/{id}/deregister", post(deregister))
        .route("/{version}/{id}/subscriptions", post(subscribe))
        .route("/sim/v1/devices/{wa_id}/messages", post(sim_send))
        .route("/sim/v1/devices/{wa_id}/inbox", get(sim_inbox))
        .route("/sim/v1/devices/{wa_id}/report", post(sim_report))
        .route("/sim/v1/devices/{wa_id}/presence", post(sim_presence))
        .route("/sim/v1/clock/advance", post(sim_advance))
        .route(
            "/sealpost/v1/openapi.json",
            get(|| async { Json(openapi()) }),
        )
        .fallback(|| async { ApiError::invalid("Unknown path or method.") })
        .with_state(shared)
}

fn check_version(version: &str) -> Result<(), ApiError> {
    let n = version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| VERSIONS.contains(n));
    n.map(|_| ())
        .ok_or_else(|| ApiError::invalid("Unsupported API version."))
}

fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
        )
    };
    let header = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(bad)?;
    let token = header.strip_prefix("Bearer ").ok_or_else(bad)?.trim();
    state.tokens.authenticate(token).ok_or_else(bad)
}

async fn read_json(body: Body) -> Result<Value, ApiError> {
    let bytes: Bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::invalid("The request body is too large or unreadable."))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::invalid("The request body is not valid JSON."))
}

async fn send_versioned(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match check_version(&version) {
        Ok(()) => send(s, id, headers, body).await,
        Err(e) => e.into_response(),
    }
}

async fn send_unversioned(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    send(s, id, headers, body).await
}

async fn send(s: Shared, id: String, headers: HeaderMap, body: Body) -> Response {
    reply(send_inner(s, id, headers, body).await)
}

use crate::media::MEDIA_KINDS as MEDIA;

/// The members of one JSON object of a request, each read as the JSON type it must have:
/// absent or `null` is `None`, any other type is error 100 naming the parameter. Names in
/// errors are the API's own (`text.preview_url`), never anything the client sent.
struct Params<'a> {
    obj: &'a serde_json::Map<String, Value>,
    prefix: String,
}

impl<'a> Params<'a> {
    fn root(obj: &'a serde_json::Map<String, Value>) -> Self {
        Self {
            obj,
            prefix: String::new(),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, expected: &str) -> ApiError {
        ApiError::invalid(format!(
            "The parameter {} must be {expected}.",
            self.name(key)
        ))
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    /// A string that must be present and not empty (else 131008).
    fn required_string(&self, key: &str) -> Result<&'a str, ApiError> {
        self.string(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing(&self.name(key)))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(key, "a boolean")),
        }
    }

    fn object(&self, key: &str) -> Result<Option<Params<'a>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(obj)) => Ok(Some(Params {
                obj,
                prefix: self.name(key),
            })),
            Some(_) => Err(self.wrong_type(key, "an object")),
        }
    }

    /// An object that must be present (else 131008).
    fn required_object(&self, key: &str) -> Result<Params<'a>, ApiError> {
        self.object(key)?
            .ok_or_else(|| ApiError::missing(&self.name(key)))
    }

    fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.wrong_type(key, "an array")),
        }
    }
}

/// Whether a media `link` is an absolute `https://` or `http://` URL with a host.
fn web_link(link: &str) -> bool {
    let lower = link.get(..8).unwrap_or(link).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &link[8..]
    } else if lower.starts_with("http://") {
        &link[7..]
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !link.chars().any(char::is_whitespace)
}

/// Validates a send request; returns the kind, the content to seal, the callback data.
fn parse_send(body: &Value) -> Result<(MessageKind, String, Option<String>), ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    let top = Params::root(obj);
    match top.string("messaging_product")? {
        None => return Err(ApiError::missing("messaging_product")),
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
    }
    if let Some(r) = top.string("recipient_type")? {
        if r != "individual" {
            return Err(ApiError::not_valid("recipient_type"));
        }
    }
    // Only a known type names a member to read (and appears in an error).
    let kind_name = match top.string("type")? {
        None => "text",
        Some(t) => ["text", "template", "interactive", "reaction"]
            .into_iter()
            .chain(MEDIA)
            .find(|k| *k == t)
            .ok_or_else(|| ApiError::not_valid("type"))?,
    };
    let p = top.required_object(kind_name)?;
    let kind = match kind_name {
        "text" => {
            let text = p.required_string("body")?;
            if text.chars().count() > MAX_TEXT {
                return Err(ApiError::not_valid("text.body"));
            }
            p.boolean("preview_url")?;
            MessageKind::Text
        }
        m if MEDIA.contains(&m) => {
            let id = p.string("id")?.filter(|v| !v.is_empty());
            let link = p.string("link")?.filter(|v| !v.is_empty());
            if id.is_none() && link.is_none() {
                return Err(ApiError::missing(&format!("{m}.id or {m}.link")));
            }
            if link.is_some_and(|l| !web_link(l)) {
                return Err(ApiError::not_valid(&format!("{m}.link")));
            }
            p.string("caption")?;
            p.string("filename")?;
            match m {
                "image" => MessageKind::Image,
                "audio" => MessageKind::Audio,
                "video" => MessageKind::Video,
                "document" => MessageKind::Document,
                _ => MessageKind::Sticker,
            }
        }
        "template" => {
            p.required_string("name")?;
            let language = p.required_object("language")?;
            language.required_string("code")?;
            language.string("policy")?;
            p.array("components")?;
            MessageKind::Template
        }
        "interactive" => {
            match p.string("type")? {
                Some("button" | "list") => {}
                Some(_) => return Err(ApiError::not_valid("interactive.type")),
                None => return Err(ApiError::missing("interactive.type")),
            }
            p.required_object("action")?;
            for part in ["header", "body", "footer"] {
                p.object(part)?;
            }
            MessageKind::Interactive
        }
        _ => {
            p.required_string("message_id")?;
            p.string("emoji")?
                .ok_or_else(|| ApiError::missing("reaction.emoji"))?;
            MessageKind::Reaction
        }
    };
    let callback = match top.string("biz_opaque_callback_data")? {
        None => None,
        Some(c) if c.len() <= 512 => Some(c.to_owned()),
        Some(_) => return Err(ApiError::not_valid("biz_opaque_callback_data")),
    };
    let context = top.object("context")?;
    if let Some(ctx) = &context {
        ctx.required_string("message_id")?;
    }
    let payload = Value::Object(p.obj.clone());
    let mut content = json!({ "type": kind_name });
    content[kind_name] = payload;
    if let Some(ctx) = context {
        content["context"] = Value::Object(ctx.obj.clone());
    }
    Ok((kind, content.to_string(), callback))
}

async fn send_inner(
    s: Shared,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let (grant, number, state) = owned_number(&s, &id, &headers, false).await?;
    let body = read_json(body).await?;
    if body.get("status").is_some() {
        return mark_read(&s, &number, &body).await;
    }
    let (kind, content, callback) = parse_send(&body)?;
    let content = media::attach(&s, &grant, content).await?;
    if kind == MessageKind::Template {
        let business = grant
            .principal
            .business
            .clone()
            .ok_or_else(ApiError::denied)?;
        let t = &body["template"];
        let (name, language) = (
            t["name"].as_str().unwrap_or(""),
            t["language"]["code"].as_str().unwrap_or(""),
        );
        let (library, _) = s
            .app
            .executor()
            .load::<sealpost_domain::aggregates::templates::TemplateLibrary>(business.as_str())
            .await
            .map_err(|e| ApiError::from(AppError::from(e)))?;
        if library.approved(name, language, s.app.now()).is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                132_001,
                "Template name does not exist in the translation.",
            ));
        }
    }
    // Addressed by number (`to`) or by business-scoped user id (`recipient`), which lets a
    // business answer a user without ever holding the number.
    let top = body
        .as_object()
        .map(Params::root)
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    let (to_raw, to, by_user) = match (top.string("to")?, top.string("recipient")?) {
        (Some(t), _) => (
            t.to_owned(),
            E164::parse(t).map_err(|_| ApiError::not_valid("to"))?,
            false,
        ),
        (None, Some(r)) => {
            let phone = s
                .app
                .subject_by_user_id(&grant.principal, &number, r)
                .await
                .map_err(|e| match e {
                    AppError::Domain(_) => ApiError::not_valid("recipient"),
                    other => ApiError::from(other),
                })?;
            (r.to_owned(), phone, true)
        }
        (None, None) => return Err(ApiError::missing("to")),
    };
    // The integrity throttle (messaging limit reached) is answered at once, as the Cloud API
    // does; the transport would refuse the message anyway.
    let throttled = s
        .numbers
        .get(number.as_str())
        .and_then(|display| s.net.integrity(display))
        .is_some_and(|i| i.refuses(to.expose_digits()));
    if throttled {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            131_048,
            "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
        ));
    }
    let tier = state.throughput;
    let pair = {
        let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
        let region = state
            .storage_region()
            .unwrap_or(sealpost_domain::Region::Eu);
        s.app
            .store()
            .vault()
            .blind_index(business.as_str(), region, &to, s.app.now())
            .await
            .map_err(AppError::from)?
    };
    s.limits
        .lock()
        .expect("limits lock is never poisoned")
        .admit(number.as_str(), &pair, tier, s.app.now())?;
    // With the simulated transport a device exists for every number the first time it is
    // addressed, as a real phone would already be registered.
    {
        let mut sim = s.sim.lock().await;
        device(&s, &mut sim, to.expose_digits()).await?;
    }
    let message = match s
        .app
        .send(
            &grant.principal,
            &number,
            &to,
            kind,
            &content,
            callback.as_deref(),
        )
        .await
    {
        Ok(m) => m,
        Err(e) => {
            s.limits
                .lock()
                .expect("limits lock is never poisoned")
                .refund(number.as_str(), &pair);
            return Err(e.into());
        }
    };
    let contact = if by_user {
        json!({ "input": to_raw, "user_id": to_raw })
    } else {
        json!({ "input": to_raw, "wa_id": to.expose_digits() })
    };
    Ok(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [{ "id": message.as_str() }],
    }))
}

/// Starts (or restarts) the webhook worker of an app.
async fn start_hook(s: &Shared, app_id: &str, callback_url: String) -> Result<(), AppError> {
    let Some((business, waba_id, region)) = s.apps.lock().await.get(app_id).cloned() else {
        return Err(AppError::Inconsistent("unknown app"));
    };
    let secret = s
        .app
        .store()
        .vault()
        .app_secret(business.as_str(), region, app_id, None)
        .await?
        .ok_or(AppError::Inconsistent("app secret destroyed"))?;
    let hook = crate::webhooks::Hook {
        app_id: app_id.to_owned(),
        business,
        waba_id,
        region,
        callback_url,
        secret,
        numbers: s.numbers.clone(),
    };
    // Stop the app's old worker before the new one starts: one worker per app at a time.
    let old = s.hooks.lock().await.remove(app_id);
    if let Some((stop, handle)) = old {
        let _ = stop.send(true);
        let _ = handle.await;
    }
    // A new subscription gets what happens from now on, not the history still in retention.
    let checkpoint = crate::webhooks::checkpoint_name(app_id);
    let log = s.app.store().log();
    if log.load_checkpoint(&checkpoint).await? == 0 {
        log.save_checkpoint(&checkpoint, log.head().await?).await?;
    }
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(crate::webhooks::run(s.app.clone(), hook, rx));
    s.hooks.lock().await.insert(app_id.to_owned(), (tx, task));
    Ok(())
}

async fn subscribe(
    State(s): State<Shared>,
    Path((version, app_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result: Result<Value, ApiError> = async {
        check_version(&version)?;
        let grant = authenticate(&s, &headers)?;
        let owner = s.apps.lock().await.get(&app_id).map(|a| a.0.clone());
        if owner.is_none()
            || grant.principal.kind != PrincipalKind::Business
            || grant.principal.business != owner
        {
            return Err(ApiError::denied());
        }
        require_scope(&grant, sealpost_domain::identity::SCOPE_MANAGEMENT)?;
        let form = headers
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let bytes = to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::invalid("The request body is too large or unreadable."))?;
        let params: BTreeMap<String, Value> = if form {
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .map_err(|_| ApiError::invalid("The form body is malformed."))?
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|_| ApiError::invalid("The request body is not valid JSON."))?
        };
        let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        if text("object").as_deref() != Some("whatsapp_business_account") {
            return Err(ApiError::invalid(
                "object must be whatsapp_business_account.",
            ));
        }
        let callback_url =
            text("callback_url").ok_or_else(|| ApiError::invalid("callback_url is required."))?;
        if callback_url.starts_with("https://") {
            return Err(ApiError::invalid("This build delivers webhooks over http only (no TLS client yet); use an http:// callback or a local TLS-terminating proxy."));
        }
        if !callback_url.starts_with("http://") {
            return Err(ApiError::invalid("callback_url must be an http URL."));
        }
        let verify_token =
            text("verify_token").ok_or_else(|| ApiError::invalid("verify_token is required."))?;
        let fields: Vec<String> = match params.get("fields") {
            Some(Value::String(f)) => f
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => vec!["messages".to_owned()],
        };
        if !s.poster.verify(&callback_url, &verify_token).await {
            return Err(ApiError::invalid(
                "The callback URL did not answer the hub.challenge verification.",
            ));
        }
        let (business, _, region) = s
            .apps
            .lock()
            .await
            .get(&app_id)
            .cloned()
            .ok_or_else(ApiError::denied)?;
        let event = sealpost_domain::apps::AppEvent::WebhookSubscribed {
            object: "whatsapp_business_account".into(),
            callback_url: callback_url.clone(),
            fields,
            at: s.app.now(),
        };
        crate::webhooks::record(&s.app, &app_id, &business, region, event).await?;
        start_hook(&s, &app_id, callback_url).await?;
        Ok(json!({ "success": true }))
    }
    .await;
    reply(result)
}

/// Marks an inbound message read (POST or PUT, optionally with a typing indicator).
async fn mark_read(s: &Shared, number: &PhoneNumberId, body: &Value) -> Result<Value, ApiError> {
    let top = body
        .as_object()
        .map(Params::root)
        .ok_or_else(|| ApiError::invalid("The request body must be a JSON object."))?;
    match top.string("messaging_product")? {
        None => return Err(ApiError::missing("messaging_product")),
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
    }
    if top.string("status")? != Some("read") {
        return Err(ApiError::not_valid("status"));
    }
    if let Some(t) = top.object("typing_indicator")? {
        if t.string("type")? != Some("text") {
            return Err(ApiError::not_valid("typing_indicator.type"));
        }
    }
    let raw = top
        .string("message_id")?
        .ok_or_else(|| ApiError::missing("message_id"))?;
    let id =
        sealpost_domain::MessageId::parse(raw).map_err(|_| ApiError::not_valid("message_id"))?;
    let unknown =
        || ApiError::invalid("The message does not exist or belongs to another phone number.");
    let message = s.app.message(&id).await.map_err(|e| {
        if e.is_unavailable() {
            ApiError::from(e)
        } else {
            unknown()
        }
    })?;
    if message.phone_number_id.as_ref() != Some(number)
        || message.direction != Some(sealpost_domain::Direction::Inbound)
    {
        return Err(unknown());
    }
    s.app
        .record(&id, sealpost_domain::MessageCommand::MarkReadByBusiness)
        .await?;
    Ok(json!({ "success": true }))
}

/// Error 10 unless the token carries `scope`.
fn require_scope(grant: &Grant, scope: &str) -> Result<(), ApiError> {
    if grant.scopes.iter().any(|sc| sc == scope) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            10,
            format!("The access token lacks {scope}."),
        ))
    }
}

/// Authenticates and checks that the token's business owns the number (management scope
/// when `manage`); another business's or an unknown number is the same 403.
async fn owned_number(
    s: &Shared,
    id: &str,
    headers: &HeaderMap,
    manage: bool,
) -> Result<(Grant, PhoneNumberId, sealpost_domain::PhoneNumber), ApiError> {
    let grant = authenticate(s, headers)?;
    let number = PhoneNumberId::parse(id).map_err(|_| ApiError::denied())?;
    if !s.numbers.contains_key(number.as_str()) {
        return Err(ApiError::denied());
    }
    let state = s
        .app
        .phone_number(&number)
        .await
        .map_err(ApiError::denied_unless_unavailable)?;
    if grant.principal.kind != PrincipalKind::Business
        || grant.principal.business != state.business_id
    {
        return Err(ApiError::denied());
    }
    let scope = if manage {
        sealpost_domain::identity::SCOPE_MANAGEMENT
    } else {
        SCOPE_MESSAGING
    };
    require_scope(&grant, scope)?;
    Ok((grant, number, state))
}

fn reply(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_number(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            // The same path names media objects too (`GET /{version}/{media-id}`).
            if let Some(described) = media::describe(&s, &id, &headers).await? {
                return Ok(described);
            }
            let (grant, number, state) = owned_number(&s, &id, &headers, false).await?;
            let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
            let region = state
                .storage_region()
                .unwrap_or(sealpost_domain::Region::Eu);
            // The quality rating is an integrity signal: the business may read its own, recorded.
            let req = sealpost_audit::AccessRequest {
                principal: &grant.principal,
                category: sealpost_domain::Category::IntegritySignals,
                purpose: sealpost_domain::Purpose::BusinessApi,
                object: number.as_str(),
                owner: Some(&business),
                region,
            };
            s.app.gate().authorize(&req).await.map_err(AppError::from)?;
            let integrity = s.app.integrity(&number).await?;
            let rating = integrity.rating;
            let (b, _) = s
                .app
                .executor()
                .load::<sealpost_domain::Business>(business.as_str())
                .await
                .map_err(AppError::from)?;
            let tier = match integrity.lowered_tier.or(b.tier) {
                Some(sealpost_domain::aggregates::business::MessagingLimitTier::Tier2K) => {
                    "TIER_2K"
                }
                Some(sealpost_domain::aggregates::business::MessagingLimitTier::Tier10K) => {
                    "TIER_10K"
                }
                Some(sealpost_domain::aggregates::business::MessagingLimitTier::Tier100K) => {
                    "TIER_100K"
                }
                Some(sealpost_domain::aggregates::business::MessagingLimitTier::Unlimited) => {
                    "TIER_UNLIMITED"
                }
                _ => "TIER_250",
            };
            let level = match state.throughput {
                Some(sealpost_domain::aggregates::phone_number::ThroughputTier::High) => "HIGH",
                _ => "STANDARD",
            };
            Ok(json!({
                "verified_name": b.name,
                "display_phone_number": format!("+{}", state.display_number),
                "id": number.as_str(),
                "quality_rating": format!("{rating:?}").to_uppercase(),
                "throughput": { "level": level },
                "messaging_limit_tier": tier,
                "code_verification_status": "VERIFIED",
                "platform_type": if state.registered { "CLOUD_API" } else { "NOT_APPLICABLE" },
            }))
        }
        .await,
    )
}

fn storage_json(state: &sealpost_domain::PhoneNumber) -> Value {
    match state.elected_region {
        Some(r) => {
            json!({ "storage_configuration": { "status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": r.code() } })
        }
        None => json!({ "storage_configuration": { "status": "IN_COUNTRY_STORAGE_DISABLED" } }),
    }
}

async fn get_settings(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (_, _, state) = owned_number(&s, &id, &headers, true).await?;
            Ok(storage_json(&state))
        }
        .await,
    )
}

async fn number_command(
    s: &Shared,
    number: &PhoneNumberId,
    state: &sealpost_domain::PhoneNumber,
    grant: &Grant,
    command: sealpost_domain::PhoneNumberCommand,
) -> Result<(), ApiError> {
    let business = state.business_id.clone().ok_or_else(ApiError::denied)?;
    let region = state
        .storage_region()
        .unwrap_or(sealpost_domain::Region::Eu);
    let meta =
        sealpost_adapters::exec::CommandMeta::new(business.as_str(), region, &grant.principal);
    s.app
        .executor()
        .execute::<sealpost_domain::PhoneNumber>(number.as_str(), command, &meta, s.app.now())
        .await
        .map_err(|e| ApiError::from(AppError::from(e)))?;
    Ok(())
}

fn storage_region(value: &Value) -> Result<Option<sealpost_domain::Region>, ApiError> {
    match value.get("status").and_then(Value::as_str) {
        Some("IN_COUNTRY_STORAGE_DISABLED") => Ok(None),
        Some("IN_COUNTRY_STORAGE_ENABLED") => {
            let code = value
                .get("data_localization_region")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("data_localization_region"))?;
            let region: sealpost_domain::Region = code
                .parse()
                .map_err(|_| ApiError::not_valid("data_localization_region"))?;
            Ok(Some(region))
        }
        Some(_) => Err(ApiError::not_valid("storage_configuration.status")),
        None => Err(ApiError::missing("storage_configuration.status")),
    }
}

async fn post_settings(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (grant, number, state) = owned_number(&s, &id, &headers, true).await?;
            let body = read_json(body).await?;
            let config = body
                .get("storage_configuration")
                .ok_or_else(|| ApiError::missing("storage_configuration"))?;
            let region = storage_region(config)?;
            number_command(
                &s,
                &number,
                &state,
                &grant,
                sealpost_domain::PhoneNumberCommand::ConfigureStorage { region },
            )
            .await?;
            Ok(json!({ "success": true }))
        }
        .await,
    )
}

async fn register(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (grant, number, state) = owned_number(&s, &id, &headers, true).await?;
            let body = read_json(body).await?;
            if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
                return Err(ApiError::not_valid("messaging_product"));
            }
            let pin = body
                .get("pin")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("pin"))?;
            if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::not_valid("pin"));
            }
            // API v20 and older carry Local Storage in the register body.
            if let Some(code) = body.get("data_localization_region").and_then(Value::as_str) {
                let region: sealpost_domain::Region = code
                    .parse()
                    .map_err(|_| ApiError::not_valid("data_localization_region"))?;
                number_command(
                    &s,
                    &number,
                    &state,
                    &grant,
                    sealpost_domain::PhoneNumberCommand::ConfigureStorage {
                        region: Some(region),
                    },
                )
                .await?;
            }
            number_command(
                &s,
                &number,
                &state,
                &grant,
                sealpost_domain::PhoneNumberCommand::Register,
            )
            .await?;
            Ok(json!({ "success": true }))
        }
        .await,
    )
}

async fn deregister(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (grant, number, state) = owned_number(&s, &id, &headers, true).await?;
            number_command(
                &s,
                &number,
                &state,
                &grant,
                sealpost_domain::PhoneNumberCommand::Deregister,
            )
            .await?;
            Ok(json!({ "success": true }))
        }
        .await,
    )
}

/// Authenticates a management token of the business that owns the WABA `waba`.
async fn owned_waba(
    s: &Shared,
    waba: &str,
    headers: &HeaderMap,
) -> Result<(Grant, sealpost_domain::BusinessId, sealpost_domain::Region), ApiError> {
    let grant = authenticate(s, headers)?;
    let found = s
        .apps
        .lock()
        .await
        .values()
        .find(|(_, w, _)| w == waba)
        .map(|(b, _, r)| (b.clone(), *r));
    let Some((business, region)) = found else {
        return Err(ApiError::denied());
    };
    if grant.principal.kind != PrincipalKind::Business
        || grant.principal.business.as_ref() != Some(&business)
    {
        return Err(ApiError::denied());
    }
    require_scope(&grant, sealpost_domain::identity::SCOPE_MANAGEMENT)?;
    Ok((grant, business, region))
}

async fn template_command(
    s: &Shared,
    grant: &Grant,
    business: &sealpost_domain::BusinessId,
    region: sealpost_domain::Region,
    command: sealpost_domain::aggregates::templates::TemplateCommand,
) -> Result<(), ApiError> {
    let meta =
        sealpost_adapters::exec::CommandMeta::new(business.as_str(), region, &grant.principal);
    s.app
        .executor()
        .execute::<sealpost_domain::aggregates::templates::TemplateLibrary>(
            business.as_str(),
            command,
            &meta,
            s.app.now(),
        )
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Domain(sealpost_domain::DomainError::NotFound) => {
                ApiError::invalid("The template does not exist.")
            }
            AppError::Domain(sealpost_domain::DomainError::AlreadyExists) => {
                ApiError::invalid("A template with this name and language exists.")
            }
            AppError::Domain(sealpost_domain::DomainError::InvalidParameter(p)) => {
                ApiError::invalid(format!("The value of {p} is not valid."))
            }
            other => ApiError::from(other),
        })?;
    Ok(())
}

async fn create_template(
    State(s): State<Shared>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (grant, business, region) = owned_waba(&s, &waba, &headers).await?;
            let body = read_json(body).await?;
            let field = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid(format!("{k} is required.")))
            };
            let (name, language, category) = (
                field("name")?,
                field("language")?,
                field("category")?.to_uppercase(),
            );
            let components = body
                .get("components")
                .cloned()
                .unwrap_or_else(|| json!([]))
                .to_string();
            let id = format!(
                "{}",
                rand::random::<u64>() % 900_000_000_000_000 + 100_000_000_000_000
            );
            let command = sealpost_domain::aggregates::templates::TemplateCommand::Create {
                business_id: business.clone(),
                id: id.clone(),
                name,
                language,
                category: category.clone(),
                components,
            };
            template_command(&s, &grant, &business, region, command).await?;
            Ok(json!({ "id": id, "status": "PENDING", "category": category }))
        }
        .await,
    )
}

async fn list_templates(
    State(s): State<Shared>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (_, business, _) = owned_waba(&s, &waba, &headers).await?;
            let (library, _) = s
                .app
                .executor()
                .load::<sealpost_domain::aggregates::templates::TemplateLibrary>(business.as_str())
                .await
                .map_err(|e| ApiError::from(AppError::from(e)))?;
            let now = s.app.now();
            let data: Vec<Value> = library
                .templates
                .iter()
                .map(|((name, language), t)| {
                    json!({
                        "name": name, "language": language, "id": t.id, "category": t.category,
                        "status": sealpost_domain::aggregates::templates::TemplateLibrary::status(t, now),
                        "components": serde_json::from_str::<Value>(&t.components).unwrap_or_else(|_| json!([])),
                    })
                })
                .collect();
            Ok(json!({ "data": data, "paging": { "cursors": { "before": "", "after": "" } } }))
        }
        .await,
    )
}

async fn delete_template(
    State(s): State<Shared>,
    Path((version, waba)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    reply(
        async {
            check_version(&version)?;
            let (grant, business, region) = owned_waba(&s, &waba, &headers).await?;
            let name = q
                .get("name")
                .cloned()
                .ok_or_else(|| ApiError::invalid("name is required."))?;
            template_command(
                &s,
                &grant,
                &business,
                region,
                sealpost_domain::aggregates::templates::TemplateCommand::Delete { name },
            )
            .await?;
            Ok(json!({ "success": true }))
        }
        .await,
    )
}

/// The OpenAPI 3.1 description of every endpoint `sealpost serve` answers.
pub fn openapi() -> Value {
    let error = json!({ "description": "Graph error envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let ok = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "type": "object" } } } });
    let bearer = json!([{ "bearer": [] }]);
    let op = |summary: &str, secured: bool| {
        let mut o = json!({ "summary": summary, "responses": { "200": ok(summary), "400": error, "401": error, "403": error, "429": error, "500": error, "503": error } });
        if secured {
            o["security"] = bearer.clone();
        }
        o
    };
    let version = json!({ "name": "version", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^v(1[7-9]|2[0-6])\\.0$" } });
    let id = |name: &str| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Sealpost (Cloud API compatible)", "version": env!("CARGO_PKG_VERSION"), "license": { "name": "AGPL-3.0-only" } },
        "paths": {
            "/{version}/{phone_number_id}/messages": {
                "parameters": [version, id("phone_number_id")],
                "post": op("Send a message (text, template, media, interactive, reaction), or mark one read ({status: read})", true),
                "put": op("Mark an inbound message read", true),
            },
            "/{phone_number_id}/messages": { "parameters": [id("phone_number_id")], "post": op("Send a message (default version)", true), "put": op("Mark read (default version)", true) },
            "/{version}/{id}": {
                "parameters": [version, id("id")],
                "get": op("A phone number (display number, quality rating, throughput, messaging-limit tier) or a media object (url valid 5 minutes, mime_type, sha256, file_size)", true),
                "delete": op("Delete a media object (its key is destroyed)", true),
            },
            "/{version}/{phone_number_id}/media": { "parameters": [version, id("phone_number_id")], "post": {
                "summary": "Upload media (multipart/form-data: messaging_product, file, optional type); at most 16 MiB",
                "security": bearer.clone(),
                "requestBody": { "required": true, "content": { "multipart/form-data": { "schema": { "type": "object", "required": ["messaging_product", "file"], "properties": { "messaging_product": { "type": "string", "const": "whatsapp" }, "file": { "type": "string", "format": "binary" }, "type": { "type": "string" } } } } } },
                "responses": { "200": ok("{id}"), "400": error, "401": error, "403": error, "500": error, "503": error },
            } },
            "/sealpost/v1/media/{media_id}": { "parameters": [id("media_id"), { "name": "expires", "in": "query", "required": true, "schema": { "type": "integer" } }, { "name": "signature", "in": "query", "required": true, "schema": { "type": "string" } }], "get": {
                "summary": "Download a media object through the signed URL of its description (same bearer token)",
                "security": bearer.clone(),
                "responses": { "200": { "description": "The bytes", "content": { "*/*": {} } }, "400": error, "401": error, "403": error },
            } },
            "/{version}/{phone_number_id}/settings": {
                "parameters": [version, id("phone_number_id")],
                "get": op("Local Storage configuration", true),
                "post": op("Set storage_configuration (only while unregistered)", true),
            },
            "/{version}/{phone_number_id}/register": { "parameters": [version, id("phone_number_id")], "post": op("Register the number (6-digit PIN)", true) },
            "/{version}/{phone_number_id}/deregister": { "parameters": [version, id("phone_number_id")], "post": op("Deregister the number", true) },
            "/{version}/{waba_id}/message_templates": {
                "parameters": [version, id("waba_id")],
                "get": op("List templates", true),
                "post": op("Submit a template for review", true),
                "delete": op("Delete a template (?name=)", true),
            },
            "/{version}/{app_id}/subscriptions": { "parameters": [version, id("app_id")], "post": op("Subscribe a webhook callback (verified by hub.challenge); JSON or form-encoded", true) },
            "/sealpost/v1/tokens": {
                "get": op("The business's live system-user tokens (ids and scopes; management scope)", true),
                "post": op("Issue a system-user token with a subset of the caller's scopes ({scopes: [...]}); shown once", true),
            },
            "/sealpost/v1/tokens/{token_id}": { "parameters": [id("token_id")], "delete": op("Revoke one of the business's tokens, with immediate effect", true) },
            "/sim/v1/devices/{wa_id}/messages": { "parameters": [id("wa_id")], "post": op("A simulated device sends a message to a business number", false) },
            "/sim/v1/devices/{wa_id}/inbox": { "parameters": [id("wa_id")], "get": op("What a simulated device received and decrypted, and which of its messages the business read", false) },
            "/sim/v1/devices/{wa_id}/report": { "parameters": [id("wa_id")], "post": op("A simulated device reports a business number as spam or blocks it ({to, type: spam|block})", false) },
            "/sim/v1/devices/{wa_id}/presence": { "parameters": [id("wa_id")], "post": op("A simulated device goes offline or online ({online: bool})", false) },
            "/sim/v1/clock/advance": { "post": op("Move the simulated clock ({seconds: N}; only with --sim-clock)", false) },
            "/sealpost/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": ok("OpenAPI 3.1") } } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["message", "type", "code", "fbtrace_id"], "properties": {
                        "message": { "type": "string" }, "type": { "type": "string" }, "code": { "type": "integer" },
                        "error_data": { "type": "object", "properties": { "messaging_product": { "type": "string" }, "details": { "type": "string" } } },
                        "fbtrace_id": { "type": "string" } } } },
                },
            },
        },
    })
}

/// Token buckets: messages per second per business number (80, or 1,000 when upgraded) and
/// the pair rate (about one message per 6 s from a number to a user, bursts up to 45).
#[derive(Debug)]
pub struct Limits {
    standard: f64,
    high: f64,
    numbers: BTreeMap<String, (f64, i64)>,
    /// Pair buckets by phone number id and the consumer's blind index (never a number); a
    /// bucket that has refilled is forgotten, so memory follows the active pairs.
    pairs: std::collections::HashMap<(String, Pair), (f64, i64)>,
    last_pruned_ms: i64,
}

/// A consumer as the pair limit knows it: the blind index of their number (an HMAC under the
/// business's index key).
pub type Pair = [u8; 32];

/// How often the pair buckets are pruned, at most.
const PRUNE_EVERY_MS: i64 = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Self::new(THROUGHPUT_STANDARD, THROUGHPUT_HIGH)
    }
}

/// Standard throughput of a business number, messages per second.
pub const THROUGHPUT_STANDARD: f64 = 80.0;
/// Upgraded throughput.
pub const THROUGHPUT_HIGH: f64 = 1_000.0;
/// Pair rate: one message per 6 seconds…
pub const PAIR_RATE_PER_S: f64 = 1.0 / 6.0;
/// …with bursts of up to 45.
pub const PAIR_BURST: f64 = 45.0;

fn take(bucket: &mut (f64, i64), rate: f64, burst: f64, now_ms: i64) -> bool {
    let elapsed = (now_ms - bucket.1).max(0) as f64 / 1_000.0;
    bucket.0 = (bucket.0 + elapsed * rate).min(burst);
    bucket.1 = now_ms;
    if bucket.0 >= 1.0 {
        bucket.0 -= 1.0;
        true
    } else {
        false
    }
}

impl Limits {
    /// Limits with these throughputs (messages per second: standard, upgraded).
    pub fn new(standard: f64, high: f64) -> Self {
        Self {
            standard,
            high,
            numbers: BTreeMap::new(),
            pairs: std::collections::HashMap::new(),
            last_pruned_ms: 0,
        }
    }

    /// Gives back what [`Limits::admit`] took for a message that was then refused (outside the
    /// window, an erased consumer …): only messages accepted for sending count.
    pub fn refund(&mut self, number: &str, to: &Pair) {
        let (standard, high) = (self.standard, self.high);
        if let Some(n) = self.numbers.get_mut(number) {
            n.0 = (n.0 + 1.0).min(standard.max(high));
        }
        if let Some(p) = self.pairs.get_mut(&(number.to_owned(), *to)) {
            p.0 = (p.0 + 1.0).min(PAIR_BURST);
        }
    }

    /// Forgets pair buckets that have refilled to their burst: they would start full anyway.
    fn prune(&mut self, now_ms: i64) {
        if now_ms - self.last_pruned_ms < PRUNE_EVERY_MS {
            return;
        }
        self.last_pruned_ms = now_ms;
        let refill_ms = (PAIR_BURST / PAIR_RATE_PER_S * 1_000.0) as i64;
        self.pairs.retain(|_, (tokens, at)| {
            let missing_ms = ((PAIR_BURST - *tokens) / PAIR_RATE_PER_S * 1_000.0) as i64;
            now_ms - *at < missing_ms.min(refill_ms)
        });
    }

    /// Pair buckets held (for tests: memory follows the active pairs).
    pub fn pairs_held(&self) -> usize {
        self.pairs.len()
    }

    /// Admits one message or says which limit it hit.
    pub fn admit(
        &mut self,
        number: &str,
        to: &Pair,
        tier: Option<sealpost_domain::aggregates::phone_number::ThroughputTier>,
        now: sealpost_domain::Timestamp,
    ) -> Result<(), ApiError> {
        self.prune(now.millis());
        let rate = match tier {
            Some(sealpost_domain::aggregates::phone_number::ThroughputTier::High) => self.high,
            _ => self.standard,
        };
        let now_ms = now.millis();
        let n = self
            .numbers
            .entry(number.to_owned())
            .or_insert((rate, now_ms));
        if !take(n, rate, rate, now_ms) {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, 130_429, "Message failed to send because there were too many messages sent from this phone number in a short period of time."));
        }
        let p = self
            .pairs
            .entry((number.to_owned(), *to))
            .or_insert((PAIR_BURST, now_ms));
        if !take(p, PAIR_RATE_PER_S, PAIR_BURST, now_ms) {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, 131_056, "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time."));
        }
        Ok(())
    }
}

fn sim_number(wa_id: &str) -> Result<E164, ApiError> {
    E164::parse(wa_id).map_err(|_| ApiError::not_valid("wa_id"))
}

async fn device<'a>(
    s: &Shared,
    sim: &'a mut Sim,
    digits: &str,
) -> Result<&'a mut SimDevice, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            131_000,
            "An unknown error occurred.",
        )
    };
    if !sim.devices.contains_key(digits) {
        let mut d = SimDevice::join(s.engine.clone(), &s.net, digits)
            .await
            .map_err(|_| unknown())?;
        if let Some(world) = s.net.world() {
            d = d.kept_in(world.clone()).await.map_err(|_| unknown())?;
        }
        sim.devices.insert(digits.to_owned(), d);
    }
    sim.devices.get_mut(digits).ok_or_else(unknown)
}

async fn sim_send(State(s): State<Shared>, Path(wa_id): Path<String>, body: Body) -> Response {
    let result: Result<Value, ApiError> = async {
        let phone = sim_number(&wa_id)?;
        let mut body = read_json(body).await?;
        let to = sim_business(&s, &body)?;
        if let Some(o) = body.as_object_mut() {
            o.remove("to");
            o.entry("type").or_insert_with(|| json!("text"));
        }
        let id = format!("dev.{}", uuid::Uuid::new_v4().simple());
        let mut sim = s.sim.lock().await;
        let d = device(&s, &mut sim, phone.expose_digits()).await?;
        d.send(&s.net, to.expose_digits(), &id, body.to_string().as_bytes())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    131_000,
                    "The transport did not take the message.",
                )
            })?;
        Ok(json!({ "id": id }))
    }
    .await;
    reply(result)
}

/// The business number a simulated device addresses (`to`), checked against those served.
fn sim_business(s: &Shared, body: &Value) -> Result<E164, ApiError> {
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
async fn sim_report(State(s): State<Shared>, Path(wa_id): Path<String>, body: Body) -> Response {
    let result: Result<Value, ApiError> = async {
        let phone = sim_number(&wa_id)?;
        let body = read_json(body).await?;
        let to = sim_business(&s, &body)?;
        let block = match body.get("type").and_then(Value::as_str) {
            Some("spam") => false,
            Some("block") => true,
            Some(_) => return Err(ApiError::not_valid("type")),
            None => return Err(ApiError::missing("type")),
        };
        let mut sim = s.sim.lock().await;
        let d = device(&s, &mut sim, phone.expose_digits()).await?;
        d.report(&s.net, to.expose_digits(), block)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    131_000,
                    "The transport did not take the report.",
                )
            })?;
        Ok(json!({ "success": true }))
    }
    .await;
    reply(result)
}

/// A device goes offline (`{"online":false}`: its messages queue at the transport) or online.
async fn sim_presence(State(s): State<Shared>, Path(wa_id): Path<String>, body: Body) -> Response {
    let result: Result<Value, ApiError> = async {
        let phone = sim_number(&wa_id)?;
        let body = read_json(body).await?;
        let online = body
            .get("online")
            .and_then(Value::as_bool)
            .ok_or_else(|| ApiError::missing("online"))?;
        let mut sim = s.sim.lock().await;
        let d = device(&s, &mut sim, phone.expose_digits()).await?;
        d.offline = !online;
        d.save().await.map_err(|_| ApiError::unavailable())?;
        Ok(json!({ "success": true, "online": online }))
    }
    .await;
    reply(result)
}

async fn sim_inbox(State(s): State<Shared>, Path(wa_id): Path<String>) -> Response {
    let result: Result<Value, ApiError> = async {
        let phone = sim_number(&wa_id)?;
        let mut sim = s.sim.lock().await;
        let d = device(&s, &mut sim, phone.expose_digits()).await?;
        let messages: Vec<Value> = d
            .inbox()
            .iter()
            .map(|r| {
                let text = String::from_utf8_lossy(&r.plaintext).into_owned();
                let content = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
                json!({ "id": r.id, "from": r.from, "content": content })
            })
            .collect();
        // The device's own messages (by the id `POST …/messages` answered) the business read.
        let read: Vec<&String> = d.read_by_business().iter().collect();
        Ok(json!({ "messages": messages, "read_by_business": read }))
    }
    .await;
    reply(result)
}

async fn sim_advance(State(s): State<Shared>, body: Body) -> Response {
    let Some((clock, file)) = s.clock.clone() else {
        return ApiError::invalid(
            "The server runs on the system clock (start it with --sim-clock).",
        )
        .into_response();
    };
    let result: Result<Value, ApiError> = async {
        let body = read_json(body).await?;
        let seconds = body
            .get("seconds")
            .and_then(Value::as_i64)
            .filter(|n| (0..=10 * 365 * 86_400).contains(n))
            .ok_or_else(|| ApiError::not_valid("seconds"))?;
        // Under the simulated world's lock, so that two advances save their times in order.
        let _world = s.sim.lock().await;
        clock.advance_secs(seconds);
        save_sim_clock(&file, clock.now()).map_err(|e| {
            tracing::error!(error = %e, "the simulated clock could not be saved");
            ApiError::unavailable()
        })?;
        Ok(json!({ "now": clock.now().unix_seconds() }))
    }
    .await;
    reply(result)
}

/// Where `--sim-clock` keeps its time, beside the simulated world. The simulated clock moves
/// only when told to; a restart must not take it back (an expired service window would open
/// again, a template in review would be pending again), so it starts at the later of the
/// system clock and the time saved here by the last advance.
const SIM_CLOCK_FILE: &str = "sim-clock";

/// The simulated clock's saved time (milliseconds since the Unix epoch), if any.
fn saved_sim_clock(file: &std::path::Path) -> anyhow::Result<Option<sealpost_domain::Timestamp>> {
    use anyhow::Context as _;
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let ms = text
                .trim()
                .parse::<i64>()
                .with_context(|| format!("{} is not a time", file.display()))?;
            Ok(Some(sealpost_domain::Timestamp::from_millis(ms)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", file.display())),
    }
}

/// Saves the simulated clock's time (written aside, then renamed over the old one).
fn save_sim_clock(file: &std::path::Path, now: sealpost_domain::Timestamp) -> std::io::Result<()> {
    let aside = file.with_extension("new");
    if let Err(e) = std::fs::remove_file(&aside) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e);
        }
    }
    sealpost_adapters::vault::write_private_file(&aside, now.millis().to_string().as_bytes())?;
    std::fs::rename(&aside, file)
}

/// Every business phone number in the store: id → display number (the persisted
/// `business-numbers` projection, caught up with the log).
async fn business_numbers(app: &Sealpost) -> Result<BTreeMap<String, String>, AppError> {
    Ok(
        sealpost_adapters::projection::Persisted::<BusinessNumbers>::refresh(app.store())
            .await?
            .state
            .0,
    )
}

/// Business phone numbers: id → display number (business information, nothing personal).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BusinessNumbers(pub BTreeMap<String, String>);

impl sealpost_adapters::projection::Fold for BusinessNumbers {
    const NAME: &'static str = "business-numbers";
    const VERSION: u64 = 1;

    fn wants(header: &sealpost_adapters::store::RowHeader) -> bool {
        header.event_type == "PhoneNumberAdded"
    }

    fn apply(
        &mut self,
        e: &sealpost_adapters::ledger::OpenedEvent,
    ) -> Result<(), sealpost_adapters::store::StoreError> {
        if let PhoneNumberEvent::PhoneNumberAdded {
            phone_number_id,
            display_number,
            ..
        } = e.decode::<PhoneNumberEvent>()?
        {
            self.0.insert(phone_number_id.to_string(), display_number);
        }
        Ok(())
    }
}

/// Runs `sealpost serve` until `shutdown` completes; `ready` gets the bound address once the
/// server accepts connections (and bootstrap.json exists).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let sim_clock = if config.sim_clock {
        let file = config.data_dir.join(WORLD_DIR).join(SIM_CLOCK_FILE);
        let start = match saved_sim_clock(&file)? {
            Some(saved) if saved.millis() > SystemClock.now().millis() => saved,
            _ => SystemClock.now(),
        };
        Some((SimClock::starting_at(start), file))
    } else {
        None
    };
    let clock: Arc<dyn Clock> = match &sim_clock {
        Some((c, _)) => Arc::new(c.clone()),
        None => Arc::new(SystemClock),
    };
    // Created 0700 if missing; paths an operator opened to others are named in a warning.
    let started = std::time::Instant::now();
    let phase = |name: &'static str| {
        tracing::info!(
            phase = name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "start-up"
        );
    };
    sealpost_adapters::files::prepare_data_dir(&config.data_dir).context("data directory")?;
    let app = Sealpost::open_within(
        &config.data_dir,
        config.database_url.as_deref(),
        16,
        config.connect_timeout,
        clock.clone(),
        RetentionPolicy::default(),
    )
    .await
    .context("open the store")?;
    // Finish what a crash interrupted before anyone can read: an erasure recorded but whose keys
    // were not yet destroyed is completed now (and expired epochs are shredded).
    let mut retention = app.retention_resumed().await.context("retention process")?;
    retention
        .run_once(app.now())
        .await
        .context("retention recovery")?;
    phase("store opened, retention pass done");
    app.audit().await.context("audit log")?;
    phase("audit log opened");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .context("bind")?;
    let bound = listener.local_addr().context("bound address")?;
    let tokens = Tokens::load(app.store().clone()).await?;
    if app.store().log().head().await? == 0 {
        bootstrap(&app, &tokens, &config.data_dir, &format!("http://{bound}")).await?;
        tracing::info!(file = BOOTSTRAP_FILE, "bootstrapped a development tenant");
    }
    phase("token index loaded");
    let numbers = business_numbers(&app).await?;
    let recorder = IntegrityRecorder::new(&app);
    // The simulated outside world (network and phones) outlives this process, as the real
    // one would: it is kept in its own sealed store beside Sealpost's.
    let world = Arc::new(
        WorldStore::open(&config.data_dir.join(WORLD_DIR))
            .await
            .context("the simulated world's store")?,
    );
    let net = SimNetwork::open(clock.clone(), Some(recorder.clone()), world.clone())
        .await
        .context("the simulated network")?;
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let devices: BTreeMap<String, SimDevice> = SimDevice::load_all(engine.clone(), &world)
        .await
        .context("the simulated phones")?
        .into_iter()
        .map(|d| (d.address().handle.clone(), d))
        .collect();
    let mut pipeline = Pipeline::start(app.clone(), engine.clone(), Arc::new(net.clone()))
        .await?
        .with_integrity(recorder);
    for id in numbers.keys() {
        pipeline
            .attach_number(&PhoneNumberId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))?)
            .await?;
    }
    phase("numbers attached");
    let known_apps = crate::webhooks::apps(&app).await?;
    let shared = Shared {
        app: app.clone(),
        tokens,
        sim: Arc::new(Mutex::new(Sim { devices })),
        net: net.clone(),
        engine,
        clock: sim_clock,
        numbers: Arc::new(numbers),
        apps: Arc::new(Mutex::new(
            known_apps
                .iter()
                .map(|(id, (b, w, r, _))| (id.clone(), (b.clone(), w.clone(), *r)))
                .collect(),
        )),
        hooks: Arc::new(Mutex::new(BTreeMap::new())),
        poster: sealpost_adapters::webhook::Poster::new(),
        limits: Arc::new(std::sync::Mutex::new(Limits::new(
            config.throughput.0,
            config.throughput.1,
        ))),
        url_key: Arc::new({
            let mut k = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut k);
            k
        }),
    };
    for (id, (_, _, _, url)) in known_apps {
        if let Some(url) = url {
            start_hook(&shared, &id, url).await?;
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(run_pipeline(
        pipeline,
        shared.clone(),
        stop_rx.clone(),
        retention,
    ));
    phase("listening");
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
    if tokio::time::timeout(WORK_GRACE, worker).await.is_err() {
        tracing::warn!("the pipeline did not stop in time; its work resumes on the next start");
    }
    let hooks = std::mem::take(&mut *shared.hooks.lock().await);
    for (stop, _) in hooks.values() {
        let _ = stop.send(true);
    }
    let tasks = join_tasks(hooks.into_values().map(|(_, task)| task));
    if tokio::time::timeout(WORK_GRACE, tasks).await.is_err() {
        tracing::warn!("a webhook worker did not stop in time; its notification is sent again");
    }
    // Out of time is not a failure: the counts, leaves and snapshots are written by the next
    // start (or its first interval); a store error is.
    match tokio::time::timeout(WORK_GRACE, async {
        app.gate().flush().await?;
        app.checkpoint().await?;
        crate::projections::refresh_all(app.store()).await?;
        Ok::<(), AppError>(())
    })
    .await
    {
        Ok(result) => result.context("the final access counts and audit checkpoint")?,
        Err(_) => tracing::warn!(
            "the final audit checkpoint did not finish in time; the next start signs it"
        ),
    }
    // Best effort: the evidence fold as far as this process got, so the next start's first
    // evidence query folds only what is new (otherwise the last periodic save serves).
    match tokio::time::timeout(WORK_GRACE, app.persist_evidence()).await {
        Ok(Err(e)) => tracing::warn!(error = %e, "evidence projections not saved at stop"),
        Err(_) => tracing::warn!("evidence projections not saved at stop: out of time"),
        Ok(Ok(())) => {}
    }
    Ok(())
}

/// How often the persisted projections are caught up and saved while serving.
pub const PROJECTIONS_EVERY: Duration = Duration::from_secs(60);

/// How often the evidence projections are caught up and persisted while serving.
pub const EVIDENCE_EVERY: Duration = Duration::from_secs(300);

/// How long requests in flight may finish after the stop signal.
pub const REQUEST_GRACE: Duration = Duration::from_millis(1_000);
/// How long each background stage (pipeline, webhook workers, final checkpoint, evidence
/// snapshot) may take to stop; with [`REQUEST_GRACE`] the process exits within 5 s of the
/// signal.
pub const WORK_GRACE: Duration = Duration::from_millis(1_000);

/// Waits for every task (a task that panicked or was cancelled counts as done).
async fn join_tasks(tasks: impl Iterator<Item = tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// The pipeline and the simulated devices, stepping until told to stop; a last step runs after.
async fn run_pipeline(
    mut pipeline: Pipeline,
    s: Shared,
    mut stop: watch::Receiver<bool>,
    mut retention: sealpost_projections::retention::RetentionProcess,
) {
    // Retention runs beside the pipeline: every message's keys go when it turns 30 days old.
    let mut last_retention: Option<sealpost_domain::Timestamp> = None;
    let mut last_checkpoint = s.app.now();
    let mut last_sequenced = std::time::Instant::now();
    let mut failing: u32 = 0;
    let mut last_refreshed = std::time::Instant::now();
    let mut last_evidence = std::time::Instant::now();
    loop {
        if *stop.borrow() {
            // Everything is durable: what is left waits for the next start.
            return;
        }
        let now = s.app.now();
        // The audit sequencer: leaves off the write path, a signed checkpoint at an interval.
        if last_sequenced.elapsed() >= SEQUENCE_EVERY {
            last_sequenced = std::time::Instant::now();
            let audit = s.app.audit().await;
            let result = match audit {
                Ok(a) if now.millis() - last_checkpoint.millis() >= CHECKPOINT_EVERY_MS => {
                    last_checkpoint = now;
                    a.checkpoint(now).await.map(|_| ())
                }
                Ok(a) => a.sequence().await.map(|_| ()),
                Err(e) => {
                    tracing::error!(error = %e, "audit log unavailable");
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "audit sequencing failed");
            }
            // The persisted projections keep up, so the next start folds only what is new.
            if last_refreshed.elapsed() >= PROJECTIONS_EVERY {
                last_refreshed = std::time::Instant::now();
                if let Err(e) = crate::projections::refresh_all(s.app.store()).await {
                    tracing::warn!(error = %e, "projections not saved yet");
                }
            }
            if last_evidence.elapsed() >= EVIDENCE_EVERY {
                last_evidence = std::time::Instant::now();
                if let Err(e) = s.app.persist_evidence().await {
                    tracing::warn!(error = %e, "evidence projections not saved yet");
                }
            }
            // Processor access counts of a minute that is over are written now, not when the
            // next decision happens to come.
            if let Err(e) = s.app.gate().flush_due(now).await {
                tracing::warn!(error = %e, "access counts not written yet");
            }
        }
        if last_retention.is_none_or(|t| now.millis() - t.millis() >= RETENTION_EVERY_MS) {
            if let Err(e) = retention.run_once(now).await {
                tracing::error!(error = %e, "retention pass failed");
            }
            last_retention = Some(now);
        }
        let first = pipeline.step().await;
        {
            let mut sim = s.sim.lock().await;
            for d in sim.devices.values_mut() {
                if let Err(e) = d.step(&s.net).await {
                    tracing::warn!(error = %e, "device step failed");
                }
            }
        }
        let second = pipeline.step().await;
        match first.and(second) {
            Ok(_) => failing = 0,
            Err(e) => {
                failing += 1;
                // A store that is down fails every step: say so when it starts, then sparingly.
                if failing.is_power_of_two() {
                    tracing::error!(error = %e, failing, "pipeline step failed");
                }
            }
        }
        // Back off while steps fail (at most 2 s), so an outage is not a busy loop.
        let pause = Duration::from_millis(20u64 << failing.min(7)).min(Duration::from_secs(2));
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Pair = [7; 32];

    #[test]
    fn pair_buckets_are_forgotten_once_refilled() {
        let mut limits = Limits::new(1_000.0, 1_000.0);
        let t = sealpost_domain::Timestamp::from_millis;
        for i in 0..100u8 {
            assert!(limits.admit("n", &[i; 32], None, t(1_000)).is_ok());
        }
        assert_eq!(limits.pairs_held(), 100);
        // One token each was taken: refilled after 6 s; pruned at the next admit after that.
        assert!(limits.admit("n", &[200; 32], None, t(20_000)).is_ok());
        assert_eq!(limits.pairs_held(), 1, "only the active pair is held");
    }

    #[test]
    fn a_refused_message_gives_its_tokens_back() {
        let mut limits = Limits::new(3.0, 10.0);
        let now = sealpost_domain::Timestamp::from_millis(1_000);
        for _ in 0..3 {
            assert!(limits.admit("n", &U, None, now).is_ok());
        }
        assert_eq!(
            limits.admit("n", &U, None, now).map_err(|e| e.code),
            Err(130_429)
        );
        limits.refund("n", &U);
        assert!(limits.admit("n", &U, None, now).is_ok(), "refunded");
        assert!(limits.admit("n", &U, None, now).is_err(), "only one");
    }
}
