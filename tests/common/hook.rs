//! A business's webhook endpoint for the black-box tests: a real listener on a free loopback
//! port that answers the `hub.challenge` handshake, records every notification attempt with its
//! signature and notification id, and answers as scripted (500s, or down) or with 200.

use super::server::poll;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One POST the webhook listener took.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// `X-Hub-Signature-256`.
    pub signature: String,
    /// `X-Sealpost-Notification-Id`.
    pub notification_id: String,
    /// `traceparent` (empty without one).
    pub traceparent: String,
    pub body: Vec<u8>,
    /// The status the listener answered.
    pub answered: u16,
}

#[derive(Default)]
struct Listener {
    /// Answers to give to POSTs, front first; 200 once empty (unless `down`).
    script: Vec<u16>,
    down: bool,
    attempts: Vec<Attempt>,
    verifications: usize,
}

/// A business's webhook callback: answers the `hub.challenge` handshake for the verify token
/// `my-verify-token`, and every notification with 200, or as scripted.
#[derive(Clone, Default)]
pub struct Hook {
    state: Arc<Mutex<Listener>>,
}

async fn verify(
    State(h): State<Hook>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    h.lock().verifications += 1;
    if q.get("hub.mode").map(String::as_str) == Some("subscribe")
        && q.get("hub.verify_token").map(String::as_str) == Some("my-verify-token")
    {
        (
            StatusCode::OK,
            q.get("hub.challenge").cloned().unwrap_or_default(),
        )
    } else {
        (StatusCode::FORBIDDEN, String::new())
    }
}

async fn notify(State(h): State<Hook>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let mut l = h.lock();
    let answered = if l.down {
        500
    } else if l.script.is_empty() {
        200
    } else {
        l.script.remove(0)
    };
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    l.attempts.push(Attempt {
        signature: header("x-hub-signature-256"),
        notification_id: header("x-sealpost-notification-id"),
        traceparent: header("traceparent"),
        body: body.to_vec(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap_or(StatusCode::OK)
}

impl Hook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Listener> {
        self.state.lock().expect("lock")
    }

    /// The listener's routes, and a free loopback port bound for them.
    async fn bound(&self) -> (axum::Router, tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hook", get(verify).post(notify))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        (app, listener)
    }

    /// Listens on a free loopback port; the callback URL.
    pub async fn listen(&self) -> String {
        let (app, listener) = self.bound().await;
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/hook")
    }

    /// Listens over https on a free loopback port with a certificate for `localhost` from a
    /// CA made here; the callback URL and the CA's certificate (PEM), which the server must be
    /// told to trust.
    pub async fn listen_tls(&self) -> (String, String) {
        let (server_config, ca_pem) = test_ca_and_server();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let (app, listener) = self.bound().await;
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that does not trust the CA ends its handshake here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (format!("https://localhost:{port}/hook"), ca_pem)
    }

    /// The next POSTs are answered with `answers`, in order.
    pub fn script(&self, answers: &[u16]) {
        self.lock().script = answers.to_vec();
    }

    /// While down, every POST is answered 500.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// How many handshakes (GETs) it answered.
    pub fn verifications(&self) -> usize {
        self.lock().verifications
    }

    /// Every POST so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.clone()
    }

    /// The notifications answered 200, as JSON.
    fn taken(&self) -> Vec<(String, Value)> {
        self.lock()
            .attempts
            .iter()
            .filter(|a| a.answered == 200)
            .filter_map(|a| {
                let v = serde_json::from_slice(&a.body).ok()?;
                Some((a.notification_id.clone(), v))
            })
            .collect()
    }

    /// The notifications answered 200, each notification id once.
    pub fn accepted(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.taken()
            .into_iter()
            .filter(|(id, _)| seen.insert(id.clone()))
            .map(|(_, v)| v)
            .collect()
    }

    /// [`Hook::accepted`] once `pred` holds of it (within 10 s).
    pub async fn wait_for(&self, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let what = "the webhook listener gets what the test waits for";
        poll(Duration::from_millis(25), 10, what, || async {
            let got = self.accepted();
            pred(&got).then_some(got)
        })
        .await
    }

    /// Every `value` of every change of every notification answered 200.
    pub fn values(&self) -> Vec<Value> {
        self.taken()
            .into_iter()
            .flat_map(|(_, n)| {
                n["entry"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
                    .map(|c| c["value"].clone())
            })
            .collect()
    }

    /// Inbound messages received: `(wamid, text body)`.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.values()
            .iter()
            .flat_map(|v| v["messages"].as_array().cloned().unwrap_or_default())
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["text"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Statuses received for message `id`.
    pub fn statuses(&self, id: &str) -> Vec<String> {
        self.all_statuses()
            .into_iter()
            .filter(|(of, _)| of == id)
            .map(|(_, status)| status)
            .collect()
    }

    /// Every status received: `(message id, status)`, in the order posted.
    pub fn all_statuses(&self) -> Vec<(String, String)> {
        self.values()
            .iter()
            .flat_map(|v| v["statuses"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| {
                Some((
                    s["id"].as_str()?.to_owned(),
                    s["status"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

/// A CA made now, and a server configuration with a certificate it issued for `localhost` and
/// 127.0.0.1; the CA's certificate as PEM.
fn test_ca_and_server() -> (tokio_rustls::rustls::ServerConfig, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Sealpost test webhook CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
                .expect("leaf key DER"),
        )
        .expect("server config");
    (config, ca_cert.pem())
}
