//! The one harness of the black-box tests: the real `sealpost serve` binary as an operator runs
//! it, started on a data directory of its own (and a Postgres schema) on a free port, stopped
//! with SIGTERM or killed with SIGKILL and started again on the same data; spoken to over HTTP
//! as a Cloud API client would. The business's webhook listener is `Hook` in `hook.rs`.
//!
//! `Serve::on(&Data::fresh(None)).start()` is zero2prod's `spawn_app`: a [`Node`] with helpers
//! for every request the suite makes. [`Serve`] takes what a test needs beyond that: arguments,
//! environment, a log file, TRACE logs, a log that is searched when the node goes away.

use super::CONSUMER;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bootstrap file's secrets: none may appear in a log.
pub const SECRET_KEYS: [&str; 6] = [
    "access_token",
    "auditor_token",
    "dpo_token",
    "internal_token",
    "transport_token",
    "app_secret",
];

/// Where a node keeps its data: a data directory, and a Postgres URL (with its schema) or not.
#[derive(Debug, Clone)]
pub struct Data {
    pub dir: PathBuf,
    pub database_url: Option<String>,
    /// The temporary directory `dir` is in, when the harness made it.
    root: Option<Arc<tempfile::TempDir>>,
}

impl Data {
    /// A fresh data directory under `root`, on Postgres when `pg` is given.
    pub fn new(root: &Path, pg: Option<&sealpost_testkit::PgTestDb>) -> Self {
        Self {
            dir: root.join("data"),
            database_url: pg.map(|pg| pg.url_with_schema()),
            root: None,
        }
    }

    /// A fresh data directory in a temporary directory of its own (removed with the last
    /// clone), on Postgres (the test's own schema) when `pg` is given.
    pub fn fresh(pg: Option<&sealpost_testkit::PgTestDb>) -> Self {
        let root = Arc::new(tempfile::tempdir().expect("temp dir"));
        let data = Self::new(root.path(), pg);
        Self {
            root: Some(root),
            ..data
        }
    }

    /// The data directory `dir` (the server log goes beside it), on the embedded store.
    pub fn at(dir: PathBuf) -> Self {
        Self {
            dir,
            database_url: None,
            root: None,
        }
    }

    /// The same data on the database at `url`.
    pub fn with_database_url(mut self, url: String) -> Self {
        self.database_url = Some(url);
        self
    }
}

/// What a node's log must never hold, searched when the node goes away.
#[derive(Debug, Clone)]
struct Scan {
    needles: Vec<String>,
    secret_keys: Vec<String>,
}

/// How to start `sealpost serve`: by default `serve --listen 127.0.0.1:0 --sim-clock
/// --data-dir <dir>` with JSON logs at INFO appended to `<dir>/../server.log`.
#[derive(Debug, Clone)]
pub struct Serve {
    data: Data,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    config_only: bool,
    log: Option<PathBuf>,
    level: &'static str,
    scan: Option<Scan>,
}

impl Serve {
    /// `serve` on `data`.
    pub fn on(data: &Data) -> Self {
        Self {
            data: data.clone(),
            args: Vec::new(),
            env: Vec::new(),
            config_only: false,
            log: None,
            level: "info",
            scan: None,
        }
    }

    /// Arguments after the others.
    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Only `serve` and the given arguments (a `--config` file says the rest; the data
    /// directory must still be `data.dir`).
    pub fn config_only(mut self) -> Self {
        self.config_only = true;
        self
    }

    /// Appends the log to `log` instead of `<dir>/../server.log`.
    pub fn log_to(mut self, log: PathBuf) -> Self {
        self.log = Some(log);
        self
    }

    /// `RUST_LOG=trace`.
    pub fn trace(mut self) -> Self {
        self.level = "trace";
        self
    }

    /// When the node goes away (unless the test is failing already), its whole log must show
    /// that it was captured and hold none of `needles` nor the bootstrap values of
    /// `secret_keys` ([`Node::assert_log_clean`]).
    pub fn log_must_not_hold(mut self, needles: &[&str], secret_keys: &[&str]) -> Self {
        self.scan = Some(Scan {
            needles: needles.iter().map(|s| (*s).to_owned()).collect(),
            secret_keys: secret_keys.iter().map(|s| (*s).to_owned()).collect(),
        });
        self
    }

    fn log_path(&self) -> PathBuf {
        self.log
            .clone()
            .unwrap_or_else(|| self.data.dir.with_file_name("server.log"))
    }

    fn command(&self, log: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
        command.arg("serve");
        if !self.config_only {
            command
                .args(["--listen", "127.0.0.1:0", "--sim-clock", "--data-dir"])
                .arg(&self.data.dir);
        }
        command
            .args(&self.args)
            .env("RUST_LOG", self.level)
            .env("SEALPOST_LOG_FORMAT", "json")
            .env_remove("SEALPOST_DATABASE_URL")
            .env_remove("SEALPOST_CONNECT_TIMEOUT")
            .env_remove("SEALPOST_CONFIG");
        if let Some(url) = &self.data.database_url {
            command.env("SEALPOST_DATABASE_URL", url);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        command.stdout(Stdio::piped()).stderr(stderr);
        command
    }

    /// Starts it and waits until it listens.
    pub fn start(self) -> Node {
        let log = self.log_path();
        let mut child = self.command(&log).spawn().expect("spawn sealpost serve");
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
        if !base.starts_with("http://127.0.0.1:") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not start: {line:?}; log tail: {}", tail(&log));
        }
        let boot: Value = serde_json::from_slice(
            &std::fs::read(self.data.dir.join("bootstrap.json")).expect("bootstrap.json"),
        )
        .expect("json");
        Node {
            child,
            base,
            boot,
            log,
            data: self.data.clone(),
            serve: self,
        }
    }
}

/// A running `sealpost transport`, killed when dropped.
pub struct TransportProcess(Child);

impl Drop for TransportProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sealpost transport` on a free port, keeping its state in `dir`, and returns it with
/// its base URL.
pub fn start_transport(dir: &std::path::Path) -> (TransportProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["transport", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sealpost transport");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    let url = line.trim().rsplit(' ').next().expect("url").to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "unexpected first line: {line}"
    );
    (TransportProcess(child), url)
}

/// Starts `sealpost serve` on `data` ([`Serve`]'s defaults) and waits until it listens.
pub fn start(data: &Data) -> Node {
    Serve::on(data).start()
}

/// [`start`] with extra environment variables.
pub fn start_with(data: &Data, env: &[(&str, &str)]) -> Node {
    env.iter()
        .fold(Serve::on(data), |s, (k, v)| s.env(k, *v))
        .start()
}

/// The last 6,000 characters of a log.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(6_000);
    text.get(start..).unwrap_or_default().to_owned()
}

/// A response's status and JSON body (`null` when it has none).
pub async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Longest a test waits for one HTTP answer: a server that stops answering fails the test.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP client that gives up after [`HTTP_TIMEOUT`].
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// A GET of `url` (a media URL): status, content type, bytes.
pub async fn download(url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    checked_raw(req).await
}

/// A response's `content-type` (empty when it has none).
pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Runs a `sealpost` command (not the environment's database) to its end; its standard
/// output, or a panic with its output if it failed.
pub fn sealpost<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(args)
        .env_remove("SEALPOST_DATABASE_URL")
        .output()
        .expect("run sealpost");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sealpost tenant add` on the data directory `dir`: the new tenant's bootstrap file.
pub fn tenant_add(dir: &Path, name: &str, display_number: &str) -> PathBuf {
    let dir = dir.to_string_lossy();
    let out = sealpost([
        "tenant",
        "add",
        "--name",
        name,
        "--display-number",
        display_number,
        "--data-dir",
        &dir,
    ]);
    PathBuf::from(out.trim().to_owned())
}

/// Sends `req` with a bearer `token` and a body sent as `application/json`, if any; the
/// answer's status and JSON body.
async fn exchange(
    mut req: reqwest::RequestBuilder,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    checked(req).await
}

/// Sends `req`; its status and JSON body (`null` when it has none), the exchange checked
/// against the OpenAPI document (`super::openapi::check`).
pub async fn checked(req: reqwest::RequestBuilder) -> (u16, Value) {
    let (status, _, bytes) = checked_raw(req).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Sends `req`; its status, content type and bytes, the exchange checked against the OpenAPI
/// document (the answer as JSON when it is JSON).
pub async fn checked_raw(req: reqwest::RequestBuilder) -> (u16, String, Vec<u8>) {
    let (client, req) = req.build_split();
    let req = req.expect("a request");
    let (method, path) = (req.method().to_string(), req.url().path().to_owned());
    let sent: Option<Value> = req
        .body()
        .and_then(reqwest::Body::as_bytes)
        .and_then(|b| serde_json::from_slice(b).ok());
    let resp = client.execute(req).await.expect("request");
    let (status, ctype) = (resp.status().as_u16(), content_type(&resp));
    let bytes = resp.bytes().await.expect("body").to_vec();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    super::openapi::check(&method, &path, sent.as_ref(), status, &ctype, &body);
    (status, ctype, bytes)
}

/// One part of a multipart form: name, (file name, MIME type) for a file, bytes.
pub type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

/// A multipart/form-data body, built by hand, and its boundary.
pub fn multipart(parts: &[Part<'_>]) -> (Vec<u8>, &'static str) {
    const BOUNDARY: &str = "sealpost-test-boundary-7MA4YWxk";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some((filename, mime)) = file {
            body.extend_from_slice(
                format!("; filename=\"{filename}\"\r\nContent-Type: {mime}").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (body, BOUNDARY)
}

/// A running `sealpost serve`.
pub struct Node {
    pub child: Child,
    pub base: String,
    pub boot: Value,
    pub log: PathBuf,
    pub data: Data,
    serve: Serve,
}

impl Node {
    /// A bootstrap field.
    pub fn s(&self, key: &str) -> String {
        self.boot[key].as_str().expect("bootstrap field").to_owned()
    }

    /// SIGTERM, then waits for the exit (at most 30 s, then SIGKILL); `Err` with the exit
    /// status and the log's tail unless it exited 0.
    pub fn stop(&mut self) -> Result<(), String> {
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

    /// SIGKILL, then a start again on the same data, the same way (a new process, so a new
    /// node id).
    pub fn kill_and_start(mut self) -> Node {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.serve.clone().start()
    }

    /// Stops it gracefully and starts it again on the same data, the same way.
    pub fn restart(mut self) -> Node {
        if let Err(e) = self.stop() {
            panic!("serve did not exit cleanly on SIGTERM: {e}");
        }
        self.serve.clone().start()
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("the server log")
    }

    /// The log holds none of `needles`.
    pub fn assert_log_lacks(&self, needles: &[String]) {
        let log = self.log_text();
        for n in needles {
            assert!(
                !log.contains(n.as_str()),
                "the server logged a secret or personal datum ({} bytes of log)",
                log.len()
            );
        }
    }

    /// The log capture works, and the log holds none of `needles` nor the bootstrap values of
    /// `secret_keys`.
    pub fn assert_log_clean(&self, needles: &[&str], secret_keys: &[&str]) {
        assert!(
            self.log_text().contains("telemetry initialised"),
            "the log capture works"
        );
        let mut all: Vec<String> = needles.iter().map(|s| (*s).to_owned()).collect();
        all.extend(
            secret_keys
                .iter()
                .filter_map(|k| self.boot[*k].as_str().map(str::to_owned)),
        );
        self.assert_log_lacks(&all);
    }

    /// The URL of `path` on this server (a raw, already percent-encoded path is kept as is).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to build on.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client().request(method, self.url(path))
    }

    /// Any request; the answer's status and JSON body (`null` when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let req = self.request(method, path);
        exchange(req, token, body.map(|b| b.to_string())).await
    }

    /// A GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// How many events of `event_type` the embedded store's log holds (a plaintext column),
    /// read without disturbing the running server.
    pub async fn events_of_type(&self, event_type: &str) -> i64 {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.data.dir.join("events.db"))
            .read_only(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open");
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM sealpost_events WHERE event_type = $1")
                .bind(event_type)
                .fetch_one(&pool)
                .await
                .expect("count");
        pool.close().await;
        n
    }

    /// Polls [`Self::events_of_type`] until some are there (at most about 10 s); how many.
    pub async fn await_events_of_type(&self, event_type: &str) -> i64 {
        let mut n = 0;
        for _ in 0..400 {
            n = self.events_of_type(event_type).await;
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        n
    }

    /// The business's own read of one of its messages (`GET /sealpost/v1/messages/{id}` with
    /// the bootstrap access token), asserted to answer 200.
    pub async fn read_message(&self, id: &str) -> Value {
        let (st, read) = self
            .get(
                &format!("/sealpost/v1/messages/{id}"),
                &self.s("access_token"),
            )
            .await;
        assert_eq!(st, 200, "{read}");
        read
    }

    /// A GET with a token; the body as text.
    pub async fn get_text(&self, path: &str, token: &str) -> (u16, String) {
        let req = self.request(reqwest::Method::GET, path).bearer_auth(token);
        let (status, _, bytes) = checked_raw(req).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A POST of a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// A POST of a body that need not be JSON (sent as `application/json`).
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let req = self.request(reqwest::Method::POST, path);
        exchange(req, token, Some(body.to_owned())).await
    }

    /// A messaging token issued by the business's admin token: its `(id, access_token)`.
    pub async fn issue_token(&self) -> (String, String) {
        let (st, issued) = self
            .post(
                "/sealpost/v1/tokens",
                Some(&self.s("access_token")),
                json!({"scopes": ["whatsapp_business_messaging"]}),
            )
            .await;
        assert_eq!(st, 200, "{issued}");
        (
            issued["id"].as_str().expect("id").to_owned(),
            issued["access_token"].as_str().expect("token").to_owned(),
        )
    }

    /// A DELETE with a token.
    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// A Cloud API send from the business.
    pub async fn send(&self, body: Value) -> (u16, Value) {
        let path = format!("/v21.0/{}/messages", self.s("phone_number_id"));
        let token = self.s("access_token");
        self.post(&path, Some(&token), body).await
    }

    /// Consumers' phones (one each) report the business number: `spam` or `block`.
    pub async fn reported(&self, kinds: &[&str]) {
        for (i, kind) in kinds.iter().enumerate() {
            let (st, v) = self
                .post(
                    &format!("/sim/v1/devices/49151140000{i:02}/report"),
                    None,
                    json!({"to": self.s("display_phone_number"), "type": kind}),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
    }

    /// A text send to `to`.
    pub async fn send_text(&self, to: &str, text: &str) -> (u16, Value) {
        self.send(json!({
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": text }
        }))
        .await
    }

    /// `GET /{version}/{phone-number-id}` by the business.
    pub async fn number(&self) -> (u16, Value) {
        let path = format!("/v21.0/{}", self.s("phone_number_id"));
        self.get(&path, &self.s("access_token")).await
    }

    /// A simulated phone writes to the business number.
    pub async fn device_send(&self, wa_id: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/sim/v1/devices/{wa_id}/messages"), None, body)
            .await
    }

    /// [`CONSUMER`] writes `first` from their phone; the business sends `answer` once the
    /// pipeline has taken the consumer's message (until then the window is closed: 131047).
    /// A node that has just taken the business's lane over puts its number on its simulated
    /// network a moment later: until then the phone's message is not taken (503), and the
    /// phone tries again.
    pub async fn converse(&self, first: &str, answer: Value) -> (u16, Value) {
        let write =
            json!({"to": self.s("display_phone_number"), "type": "text", "text": {"body": first}});
        let (st, v) = poll(
            Duration::from_millis(50),
            20,
            "the phone's message is taken",
            || {
                let write = write.clone();
                async move {
                    let (st, v) = self.device_send(CONSUMER, write).await;
                    (st != 503).then_some((st, v))
                }
            },
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let mut got = (0, Value::Null);
        for _ in 0..400 {
            got = self.send(answer.clone()).await;
            if got.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        got
    }

    /// A simulated phone's inbox: `(what it shows, ids of its messages read by the
    /// business)`.
    pub async fn inbox(&self, wa_id: &str) -> (Vec<Value>, Vec<String>) {
        let path = format!("/sim/v1/devices/{wa_id}/inbox");
        let (st, v) = self.call(reqwest::Method::GET, &path, None, None).await;
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

    /// What the phone shows once it shows at least `n` messages (a liveness bound of a minute,
    /// not a speed target: the pipeline may have a backlog to work off).
    pub async fn wait_inbox(&self, wa_id: &str, n: usize) -> Vec<Value> {
        let what = format!("device {wa_id} receives {n} messages");
        poll(Duration::from_millis(25), 60, &what, || async {
            let (got, _) = self.inbox(wa_id).await;
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// Whether the phone `wa_id` shows a text message with `body`.
    pub async fn shows_text(&self, wa_id: &str, body: &str) -> bool {
        let (messages, _) = self.inbox(wa_id).await;
        messages
            .iter()
            .any(|m| m["content"]["text"]["body"] == body)
    }

    /// Subscribes the bootstrap app's webhook to `callback`.
    pub async fn subscribe(&self, callback: &str) {
        let path = format!("/v21.0/{}/subscriptions", self.s("app_id"));
        let body = json!({
            "object": "whatsapp_business_account", "callback_url": callback,
            "verify_token": "my-verify-token", "fields": ["messages"]
        });
        let (st, v) = self.post(&path, Some(&self.s("access_token")), body).await;
        assert_eq!(st, 200, "{v}");
    }

    /// `POST /{v}/{phone-number-id}/media` as multipart/form-data.
    pub async fn upload(&self, token: &str, parts: &[Part<'_>]) -> (u16, Value) {
        self.upload_to(&self.s("phone_number_id"), token, parts)
            .await
    }

    /// An upload to a given business number.
    pub async fn upload_to(&self, phone: &str, token: &str, parts: &[Part<'_>]) -> (u16, Value) {
        let (body, boundary) = multipart(parts);
        let req = self
            .request(reqwest::Method::POST, &format!("/v21.0/{phone}/media"))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        checked(req).await
    }

    /// Moves the simulated clock on.
    pub async fn advance(&self, seconds: i64) {
        let body = json!({ "seconds": seconds });
        let (st, v) = self.post("/sim/v1/clock/advance", None, body).await;
        assert_eq!(st, 200, "{v}");
    }

    /// Submits a marketing template and moves the simulated clock past its review.
    pub async fn approved_template(&self, name: &str) {
        let templates = format!("/v21.0/{}/message_templates", self.s("waba_id"));
        let body = json!({"name": name, "language": "en_US", "category": "MARKETING"});
        let (st, v) = self
            .post(&templates, Some(&self.s("access_token")), body)
            .await;
        assert_eq!(st, 200, "{v}");
        self.advance(61).await;
    }

    /// The audit log's published checkpoint key.
    pub async fn published_key(&self) -> ed25519_dalek::VerifyingKey {
        let path = "/sealpost/v1/audit/public-key";
        let (st, v) = self.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(st, 200, "{v}");
        sealpost_audit::log::parse_public_key(v["public_key"].as_str().expect("key"))
            .expect("an Ed25519 key")
    }
}

/// How much of a node's log a failed test prints.
const LOG_LINES_ON_FAILURE: usize = 80;

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // What the node was doing when the test failed (its log holds no personal data).
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_LINES_ON_FAILURE)..];
            eprintln!(
                "--- the last {} lines of the log of the node at {} ---\n{}",
                tail.len(),
                self.base,
                tail.join("\n")
            );
        }
        if let Some(scan) = &self.serve.scan {
            if !std::thread::panicking() {
                let needles: Vec<&str> = scan.needles.iter().map(String::as_str).collect();
                let keys: Vec<&str> = scan.secret_keys.iter().map(String::as_str).collect();
                self.assert_log_clean(&needles, &keys);
            }
        }
    }
}

/// Polls `probe` every `every` until it returns `Some`, at most `seconds`; panics with `what`,
/// also when a probe itself hangs past the deadline (a test fails, it never hangs).
pub async fn poll<T, F, Fut>(every: Duration, seconds: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = tokio::time::timeout(left.max(every), probe())
            .await
            .unwrap_or_else(|_| panic!("timed out (the probe itself hung): {what}"));
        if let Some(v) = answer {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(every).await;
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, at most `seconds`; panics with `what`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(Duration::from_millis(100), seconds, what, probe).await
}
