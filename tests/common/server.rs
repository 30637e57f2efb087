//! The real `sealpost serve` binary as an operator runs it: started on a data directory (and a
//! Postgres schema), stopped with SIGTERM or killed with SIGKILL, and started again on the same
//! data; spoken to over HTTP as a Cloud API client would; with a real webhook listener.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a node keeps its data: a data directory, and a Postgres URL (with its schema) or not.
#[derive(Debug, Clone)]
pub struct Data {
    pub dir: PathBuf,
    pub database_url: Option<String>,
}

impl Data {
    /// A fresh data directory under `root`, on Postgres when `pg` is given.
    pub fn new(root: &Path, pg: Option<&sealpost_adapters::testkit::PgTestDb>) -> Self {
        Self {
            dir: root.join("data"),
            database_url: pg.map(|pg| format!("{}?options=-csearch_path%3D{}", pg.url, pg.schema)),
        }
    }
}

/// A running `sealpost serve`.
pub struct Node {
    pub child: Child,
    pub base: String,
    pub boot: Value,
    pub log: PathBuf,
    pub data: Data,
}

/// Starts `sealpost serve` on `data` (port 0, the simulated clock, JSON trace logs appended to
/// `<dir>/../server.log`) and waits until it listens.
pub fn start(data: &Data) -> Node {
    start_with(data, &[])
}

/// [`start`] with extra environment variables.
pub fn start_with(data: &Data, env: &[(&str, &str)]) -> Node {
    let log = data.dir.with_file_name("server.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sim-clock",
            "--data-dir",
        ])
        .arg(&data.dir)
        .env("RUST_LOG", "info")
        .env("SEALPOST_LOG_FORMAT", "json")
        .env_remove("SEALPOST_DATABASE_URL");
    if let Some(url) = &data.database_url {
        command.env("SEALPOST_DATABASE_URL", url);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log file");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn sealpost serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "serve did not start: {line:?}; log tail: {}",
        tail(&log)
    );
    let boot: Value = serde_json::from_slice(
        &std::fs::read(data.dir.join("bootstrap.json")).expect("bootstrap.json"),
    )
    .expect("json");
    Node {
        child,
        base,
        boot,
        log,
        data: data.clone(),
    }
}

/// The last 2,000 characters of a log.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(6_000);
    text.get(start..).unwrap_or_default().to_owned()
}

impl Node {
    /// A bootstrap field.
    pub fn s(&self, key: &str) -> String {
        self.boot[key].as_str().expect("bootstrap field").to_owned()
    }

    /// SIGTERM, then waits for the exit (at most 30 s, then SIGKILL); `Err` with the exit
    /// status and the log's tail unless it exited 0.
    pub fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{status}; log tail: {}", tail(&self.log)))
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "no exit within 30 s; log tail: {}",
            tail(&self.log)
        ))
    }

    /// SIGKILL: the process ends wherever it is.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it gracefully and starts it again on the same data.
    pub fn restart(self) -> Node {
        let data = self.data.clone();
        if let Err(e) = self.stop() {
            panic!("serve did not exit cleanly on SIGTERM: {e}");
        }
        start(&data)
    }

    /// Any request; the answer's status and JSON body (`null` when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A Cloud API send from the business.
    pub async fn send(&self, body: Value) -> (u16, Value) {
        let path = format!("/v21.0/{}/messages", self.s("phone_number_id"));
        let token = self.s("access_token");
        self.call(reqwest::Method::POST, &path, Some(&token), Some(body))
            .await
    }

    /// A text send to `to`.
    pub async fn send_text(&self, to: &str, text: &str) -> (u16, Value) {
        self.send(json!({
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": text }
        }))
        .await
    }

    /// A simulated phone writes to the business number.
    pub async fn device_send(&self, wa_id: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/sim/v1/devices/{wa_id}/messages"),
            None,
            Some(body),
        )
        .await
    }

    /// A simulated phone's inbox: `(ids of what it shows, ids of its messages read by the
    /// business)`.
    pub async fn inbox(&self, wa_id: &str) -> (Vec<Value>, Vec<String>) {
        let (st, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/sim/v1/devices/{wa_id}/inbox"),
                None,
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let messages = v["messages"].as_array().cloned().unwrap_or_default();
        let read = v["read_by_business"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (messages, read)
    }

    /// Subscribes the bootstrap app's webhook to `callback`.
    pub async fn subscribe(&self, callback: &str) {
        let path = format!("/v21.0/{}/subscriptions", self.s("app_id"));
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(&self.s("access_token")),
                Some(json!({
                    "object": "whatsapp_business_account", "callback_url": callback,
                    "verify_token": "my-verify-token", "fields": ["messages"]
                })),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, at most `seconds`; panics with `what`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A business's webhook callback: answers the handshake, takes every notification with 200.
#[derive(Clone, Default)]
pub struct Hook {
    received: Arc<Mutex<Vec<Value>>>,
}

async fn verify(Query(q): Query<HashMap<String, String>>) -> (StatusCode, String) {
    if q.get("hub.verify_token").map(String::as_str) == Some("my-verify-token") {
        (
            StatusCode::OK,
            q.get("hub.challenge").cloned().unwrap_or_default(),
        )
    } else {
        (StatusCode::FORBIDDEN, String::new())
    }
}

async fn notify(State(h): State<Hook>, _headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        h.received.lock().expect("lock").push(v);
    }
    StatusCode::OK
}

impl Hook {
    /// Listens on a free loopback port; the callback URL.
    pub async fn listen(&self) -> String {
        let app = axum::Router::new()
            .route("/hook", get(verify).post(notify))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/hook")
    }

    /// Every `value` of every change received so far.
    pub fn values(&self) -> Vec<Value> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|n| {
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
        self.values()
            .iter()
            .flat_map(|v| v["statuses"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["id"].as_str() == Some(id))
            .filter_map(|s| s["status"].as_str().map(str::to_owned))
            .collect()
    }
}
