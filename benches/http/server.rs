//! The system under test: the real `sealpost serve` binary in a process of its own (so its
//! resident memory is its own), a webhook listener that notes when each message's `delivered`
//! and `read` statuses arrive, and consumers whose service windows are open.

use axum::extract::State;
use axum::routing::get;
use futures::StreamExt as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `sealpost serve` and what its bootstrap wrote.
pub struct Serve {
    child: Child,
    pub base: String,
    pub boot: Value,
    database_url: Option<String>,
    dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `sealpost serve` on a fresh data directory (and `database_url` when given), with
    /// the number's throughput at `throughput` messages/s, on the real clock.
    pub fn start(database_url: Option<&str>, throughput: u32) -> Self {
        Self::start_in(tempfile::tempdir().expect("dir"), database_url, throughput)
    }

    /// Stops (SIGTERM) and starts again on the same data, with another throughput.
    pub fn restart(mut self, throughput: u32) -> Self {
        self.terminate();
        let url = self.database_url.take();
        Self::start_in(self.dir, url.as_deref(), throughput)
    }

    fn start_in(dir: tempfile::TempDir, database_url: Option<&str>, throughput: u32) -> Self {
        let config = dir.path().join("sealpost.toml");
        std::fs::write(&config, format!("throughput_per_second = {throughput}\n")).expect("config");
        let data = dir.path().join("data");
        // `SEALPOST_BENCH_BIN` measures another build (an earlier tree's) with the same load.
        let bin = std::env::var_os("SEALPOST_BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sealpost").into());
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().expect("sealpost serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("sealpost serving on <url>")
            .to_owned();
        let boot: Value =
            serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).expect("bootstrap"))
                .expect("bootstrap json");
        Serve {
            child,
            base,
            boot,
            database_url: database_url.map(str::to_owned),
            dir,
        }
    }

    pub fn s(&self, key: &str) -> String {
        self.boot[key].as_str().expect("bootstrap field").to_owned()
    }

    /// Resident memory of the server process, MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// [`Serve::rss_mib`] for a task of its own.
    pub fn rss_probe(&self) -> impl Fn() -> f64 + Send + 'static {
        let pid = self.child.id();
        move || rss_mib(pid)
    }

    /// SIGTERM, and the exit.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// What the webhook listener saw: inbound messages, and when each message's statuses came.
#[derive(Clone, Default)]
pub struct Hook {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
pub struct Seen {
    pub inbound: usize,
    pub delivered: HashMap<String, Instant>,
    pub read: HashMap<String, Instant>,
}

async fn verify(axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>) -> String {
    q.get("hub.challenge").cloned().unwrap_or_default()
}

async fn notify(State(h): State<Hook>, body: axum::body::Bytes) -> &'static str {
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let now = Instant::now();
    let mut seen = h.seen.lock().expect("hook");
    for change in v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
    {
        let value = &change["value"];
        seen.inbound += value["messages"].as_array().map_or(0, Vec::len);
        for s in value["statuses"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or_default().to_owned();
            match s["status"].as_str() {
                Some("delivered") => {
                    seen.delivered.entry(id).or_insert(now);
                }
                Some("read") => {
                    seen.read.entry(id).or_insert(now);
                }
                _ => {}
            }
        }
    }
    "ok"
}

impl Hook {
    /// A listener on a free loopback port; returns its callback URL.
    pub async fn listen(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hook");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/hook", get(verify).post(notify))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("hook"))
    }
}

/// A consumer's number.
pub fn consumer(i: usize) -> String {
    format!("49151{:08}", 10_000 + i)
}

/// Subscribes the bootstrap app's webhook to `callback`, then has consumers `range` write to
/// the business (opening their service windows), and waits until the webhook has their
/// messages.
pub async fn prepare(
    s: &Serve,
    client: &reqwest::Client,
    hook: &Hook,
    callback: &str,
    consumers: std::ops::Range<usize>,
) {
    let sub = client
        .post(format!("{}/v21.0/{}/subscriptions", s.base, s.s("app_id")))
        .bearer_auth(s.s("access_token"))
        .header("content-type", "application/json")
        .body(
            json!({"object": "whatsapp_business_account", "callback_url": callback,
            "verify_token": "bench", "fields": ["messages"]})
            .to_string(),
        )
        .send()
        .await
        .expect("subscribe");
    assert_eq!(sub.status().as_u16(), 200, "subscribe");
    let display = s.s("display_phone_number");
    let wanted = consumers.len() + hook.with(|h| h.inbound);
    futures::stream::iter(consumers)
        .map(|i| {
            let url = format!("{}/sim/v1/devices/{}/messages", s.base, consumer(i));
            let body = json!({"to": display, "type": "text", "text": {"body": "hello"}});
            let client = client.clone();
            async move {
                let r = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("device");
                assert!(r.status().is_success(), "device send: {}", r.status());
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let start = Instant::now();
    while hook.with(|h| h.inbound) < wanted {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "consumers' messages did not reach the webhook"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
