//! The transport across a process boundary: [`serve`] puts a [`SimNetwork`] behind a small
//! HTTP API on a local socket (the `sealpost transport` process), and [`HttpTransport`] is the
//! [`Transport`] port over it. Phone numbers travel only in request bodies, never in paths, so
//! no access log or URL ever holds one; the server logs nothing per request.

use super::signals::SignalQueue;
use super::sim::SimNetwork;
use super::{Envelope, SignalBatch, Transport, TransportError};
use crate::signal::{Bundle, DirectoryEntry};
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use sealpost_domain::aggregates::business::MessagingLimitTier;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct Handle {
    handle: String,
}

#[derive(Serialize, Deserialize)]
struct Publish {
    handle: String,
    entry: DirectoryEntry,
}

#[derive(Serialize, Deserialize)]
struct AddPrekeys {
    handle: String,
    prekeys: Vec<(u32, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    handle: String,
    signed: (u32, Vec<u8>, Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct BundleRequest {
    handle: String,
    device: u8,
}

#[derive(Serialize, Deserialize)]
struct InboxRequest {
    handle: String,
    max: usize,
}

#[derive(Serialize, Deserialize)]
struct Ack {
    handle: String,
    ids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Business {
    handle: String,
    tier: MessagingLimitTier,
}

fn status(e: TransportError) -> StatusCode {
    match e {
        TransportError::UnknownRecipient => StatusCode::NOT_FOUND,
        TransportError::Throttled => StatusCode::TOO_MANY_REQUESTS,
        TransportError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

type Reply<T> = Result<Json<T>, StatusCode>;

/// What the transport's routes serve: the network, and the integrity signals it keeps for the
/// nodes.
#[derive(Debug, Clone)]
struct Served {
    net: SimNetwork,
    signals: Arc<SignalQueue>,
}

impl axum::extract::FromRef<Served> for SimNetwork {
    fn from_ref(s: &Served) -> Self {
        s.net.clone()
    }
}

impl axum::extract::FromRef<Served> for Arc<SignalQueue> {
    fn from_ref(s: &Served) -> Self {
        s.signals.clone()
    }
}

#[derive(Serialize, Deserialize)]
struct SignalsAck {
    handle: String,
    through: u64,
}

/// The largest envelope `/v1/send` takes: a message carrying the largest media object (100 MiB,
/// base64 inside the Signal plaintext, then the ciphertext base64 again in the JSON), with room.
pub const ENVELOPE_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// The HTTP API of a simulated network whose integrity signals go to `signals` (the nodes take
/// them with `/v1/signals`).
pub fn router(net: SimNetwork, signals: Arc<SignalQueue>) -> Router {
    Router::new()
        .route(
            "/v1/signals",
            post(
                |State(q): State<Arc<SignalQueue>>, Json(r): Json<InboxRequest>| async move {
                    Json(q.take(&r.handle, r.max))
                },
            ),
        )
        .route(
            "/v1/signals/ack",
            post(
                |State(q): State<Arc<SignalQueue>>, Json(a): Json<SignalsAck>| async move {
                    q.ack(&a.handle, a.through);
                    Json(())
                },
            ),
        )
        .route(
            "/v1/business",
            post(
                |State(n): State<SimNetwork>, Json(b): Json<Business>| async move {
                    n.register_business(&b.handle, b.tier)
                        .await
                        .map(Json)
                        .map_err(status)
                },
            ),
        )
        .route(
            "/v1/publish",
            post(
                |State(n): State<SimNetwork>, Json(p): Json<Publish>| async move {
                    n.publish(&p.handle, p.entry)
                        .await
                        .map(Json)
                        .map_err(status)
                },
            ),
        )
        .route(
            "/v1/prekeys",
            post(
                |State(n): State<SimNetwork>, Json(p): Json<AddPrekeys>| async move {
                    n.add_prekeys(&p.handle, p.prekeys)
                        .await
                        .map(Json)
                        .map_err(status)
                },
            ),
        )
        .route(
            "/v1/signed-prekey",
            post(
                |State(n): State<SimNetwork>, Json(s): Json<Signed>| async move {
                    n.update_signed_prekey(&s.handle, s.signed)
                        .await
                        .map(Json)
                        .map_err(status)
                },
            ),
        )
        .route(
            "/v1/prekeys-left",
            post(
                |State(n): State<SimNetwork>, Json(h): Json<Handle>| async move {
                    let r: Reply<usize> = n.prekeys_left(&h.handle).await.map(Json).map_err(status);
                    r
                },
            ),
        )
        .route(
            "/v1/bundle",
            post(
                |State(n): State<SimNetwork>, Json(b): Json<BundleRequest>| async move {
                    let r: Reply<Option<Bundle>> = n
                        .fetch_bundle(&b.handle, b.device)
                        .await
                        .map(Json)
                        .map_err(status);
                    r
                },
            ),
        )
        .route(
            "/v1/send",
            post(
                |State(n): State<SimNetwork>, Json(e): Json<Envelope>| async move {
                    n.send(e).await.map(Json).map_err(status)
                },
            )
            .layer(axum::extract::DefaultBodyLimit::max(ENVELOPE_BODY_LIMIT)),
        )
        .route(
            "/v1/inbox",
            post(
                |State(n): State<SimNetwork>, Json(r): Json<InboxRequest>| async move {
                    let r: Reply<Vec<Envelope>> = n
                        .take_inbox(&r.handle, r.max)
                        .await
                        .map(Json)
                        .map_err(status);
                    r
                },
            ),
        )
        .route(
            "/v1/ack",
            post(
                |State(n): State<SimNetwork>, Json(a): Json<Ack>| async move {
                    n.ack(&a.handle, &a.ids).await.map(Json).map_err(status)
                },
            ),
        )
        .with_state(Served { net, signals })
}

/// Serves a simulated network on `listener` until `shutdown` completes; its integrity signals
/// wait in `signals` for the nodes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    net: SimNetwork,
    signals: Arc<SignalQueue>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(net, signals))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The transport port over HTTP to a `sealpost transport` process.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    base: String,
    client: reqwest::Client,
}

/// Longest wait for one answer of the transport: a transport that stops answering makes a
/// lane's step fail (and retry) instead of holding it forever.
pub const TRANSPORT_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpTransport {
    /// A client of the transport at `base` (for example `http://127.0.0.1:7301`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(TRANSPORT_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, TransportError> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| TransportError::Unavailable(e.to_string()))?;
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| TransportError::Unavailable(e.without_url().to_string()))?;
        match response.status() {
            StatusCode::NOT_FOUND => return Err(TransportError::UnknownRecipient),
            StatusCode::TOO_MANY_REQUESTS => return Err(TransportError::Throttled),
            s if !s.is_success() => {
                return Err(TransportError::Unavailable(format!(
                    "transport answered {s}"
                )))
            }
            _ => {}
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TransportError::Unavailable(e.without_url().to_string()))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| TransportError::Unavailable("malformed transport answer".into()))
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn register_business(
        &self,
        handle: &str,
        tier: MessagingLimitTier,
    ) -> Result<(), TransportError> {
        self.call(
            "/v1/business",
            &Business {
                handle: handle.to_owned(),
                tier,
            },
        )
        .await
    }

    async fn publish(&self, handle: &str, entry: DirectoryEntry) -> Result<(), TransportError> {
        self.call(
            "/v1/publish",
            &Publish {
                handle: handle.to_owned(),
                entry,
            },
        )
        .await
    }

    async fn add_prekeys(
        &self,
        handle: &str,
        prekeys: Vec<(u32, Vec<u8>)>,
    ) -> Result<(), TransportError> {
        self.call(
            "/v1/prekeys",
            &AddPrekeys {
                handle: handle.to_owned(),
                prekeys,
            },
        )
        .await
    }

    async fn update_signed_prekey(
        &self,
        handle: &str,
        signed: (u32, Vec<u8>, Vec<u8>),
    ) -> Result<(), TransportError> {
        self.call(
            "/v1/signed-prekey",
            &Signed {
                handle: handle.to_owned(),
                signed,
            },
        )
        .await
    }

    async fn prekeys_left(&self, handle: &str) -> Result<usize, TransportError> {
        self.call(
            "/v1/prekeys-left",
            &Handle {
                handle: handle.to_owned(),
            },
        )
        .await
    }

    async fn fetch_bundle(
        &self,
        handle: &str,
        device: u8,
    ) -> Result<Option<Bundle>, TransportError> {
        self.call(
            "/v1/bundle",
            &BundleRequest {
                handle: handle.to_owned(),
                device,
            },
        )
        .await
    }

    async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        self.call("/v1/send", &envelope).await
    }

    async fn take_inbox(&self, handle: &str, max: usize) -> Result<Vec<Envelope>, TransportError> {
        self.call(
            "/v1/inbox",
            &InboxRequest {
                handle: handle.to_owned(),
                max,
            },
        )
        .await
    }

    async fn ack(&self, handle: &str, ids: &[String]) -> Result<(), TransportError> {
        self.call(
            "/v1/ack",
            &Ack {
                handle: handle.to_owned(),
                ids: ids.to_vec(),
            },
        )
        .await
    }

    async fn take_signals(
        &self,
        handle: &str,
        max: usize,
    ) -> Result<Vec<SignalBatch>, TransportError> {
        self.call(
            "/v1/signals",
            &InboxRequest {
                handle: handle.to_owned(),
                max,
            },
        )
        .await
    }

    async fn ack_signals(&self, handle: &str, through: u64) -> Result<(), TransportError> {
        self.call(
            "/v1/signals/ack",
            &SignalsAck {
                handle: handle.to_owned(),
                through,
            },
        )
        .await
    }
}
