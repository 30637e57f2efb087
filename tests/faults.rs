//! Black-box tests of `sealpost serve` in a fault, and of the files it leaves behind: the real
//! binary, its own data directory, and for the outage a private Postgres cluster that the test
//! kills and starts again under the running server.

mod common;

use common::cluster::PgCluster;
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONSUMER: &str = "4915112345678";

/// A `sealpost serve` process.
struct Serve {
    child: Child,
    base: String,
    boot: Value,
    log: PathBuf,
    data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// `sealpost serve` on a free port with the simulated clock, JSON trace logs into `log`.
fn serve_command(data: &Path, log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sim-clock",
            "--data-dir",
        ])
        .arg(data)
        .env_remove("SEALPOST_DATABASE_URL")
        .env_remove("SEALPOST_CONNECT_TIMEOUT")
        .env_remove("SEALPOST_CONFIG")
        .env("RUST_LOG", "trace")
        .env("SEALPOST_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"));
    command
}

impl Serve {
    /// Starts a server on a fresh data directory (Postgres at `database_url` if given).
    fn start(database_url: Option<&str>, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let mut s = Self::start_in(&data, &log, database_url, args);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on `data`, logging into `log`.
    fn start_in(data: &Path, log: &Path, database_url: Option<&str>, args: &[&str]) -> Self {
        let mut command = serve_command(data, log);
        command.args(args);
        if let Some(url) = database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command.spawn().expect("spawn sealpost serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        if !line.starts_with("sealpost serving on ") {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not start: {line:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let base = line.trim().rsplit(' ').next().expect("url").to_owned();
        let boot: Value = serde_json::from_slice(
            &std::fs::read(data.join("bootstrap.json")).expect("bootstrap.json"),
        )
        .expect("json");
        Self {
            child,
            base,
            boot,
            log: log.to_path_buf(),
            data: data.to_path_buf(),
            _dir: None,
        }
    }

    fn s(&self, key: &str) -> String {
        self.boot[key].as_str().expect("bootstrap field").to_owned()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        answer(req.send().await.expect("request")).await
    }

    async fn send(&self, body: &Value) -> (u16, Value) {
        let path = format!("/v21.0/{}/messages", self.s("phone_number_id"));
        self.post(&path, Some(&self.s("access_token")), body).await
    }

    /// `GET /{version}/{phone-number-id}`.
    async fn get_number(&self) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .get(format!("{}/v21.0/{}", self.base, self.s("phone_number_id")))
            .bearer_auth(self.s("access_token"))
            .send()
            .await
            .expect("request");
        answer(resp).await
    }

    /// The consumer writes first; the business answers once the pipeline opened the window.
    async fn converse(&self, first: &str, reply: &str) -> (u16, Value) {
        let (st, v) = self
            .post(
                &format!("/sim/v1/devices/{CONSUMER}/messages"),
                None,
                &json!({"to": self.s("display_phone_number"), "type": "text", "text": {"body": first}}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let mut got = (0, Value::Null);
        for _ in 0..400 {
            got = self.send(&text(reply)).await;
            if got.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        got
    }

    async fn inbox_has(&self, body: &str) -> bool {
        let resp = reqwest::get(format!("{}/sim/v1/devices/{CONSUMER}/inbox", self.base))
            .await
            .expect("inbox");
        let v: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
        v["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["content"]["text"]["body"] == body))
    }

    /// SIGTERM, then waits for a graceful exit.
    fn stop(&mut self) {
        let out = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .output()
            .expect("kill");
        assert!(out.status.success(), "kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "serve stopped cleanly: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("the server log")
    }

    /// Nothing personal or secret in the server's log: consumer numbers, message bodies,
    /// tokens, the app secret.
    fn assert_log_clean(&self, extra: &[&str]) {
        let log = self.log_text();
        assert!(
            log.contains("telemetry initialised"),
            "the log capture works"
        );
        let mut needles: Vec<String> = vec![CONSUMER.into(), "BODY-".into()];
        needles.extend(extra.iter().map(|s| (*s).to_owned()));
        for key in ["access_token", "auditor_token", "dpo_token", "app_secret"] {
            if let Some(v) = self.boot[key].as_str() {
                needles.push(v.to_owned());
            }
        }
        for n in &needles {
            assert!(
                !log.contains(n.as_str()),
                "the server logged a secret or personal datum ({} bytes of log)",
                log.len()
            );
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn text(body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CONSUMER, "type": "text", "text": {"body": body}})
}

/// 503 with the Cloud API's retryable 131016 in the Graph envelope, and nothing internal.
fn assert_unavailable(what: &str, got: &(u16, Value)) {
    let (status, body) = got;
    assert_eq!(*status, 503, "{what} during the outage: {body}");
    let e = &body["error"];
    assert_eq!(e["code"], 131_016, "{what}: {body}");
    assert_eq!(e["message"], "(#131016) Service unavailable", "{what}");
    assert_eq!(e["type"], "OAuthException");
    assert_eq!(
        e["error_data"]["details"],
        "Service temporarily unavailable. Please retry."
    );
    assert!(e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()));
    let text = body.to_string().to_lowercase();
    for internal in [
        "postgres",
        "database",
        "sqlx",
        "connection",
        "127.0.0.1",
        "pool",
    ] {
        assert!(
            !text.contains(internal),
            "{what} leaks {internal:?}: {body}"
        );
    }
}

/// Postgres dies under a running server (`pg_ctl stop -m immediate`): a send and a read of the
/// phone number answer 503 / 131016, never 403 or 500; once Postgres is back the same requests
/// succeed again without restarting Sealpost, and the message sent after the outage reaches
/// the phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_server_recovers_by_itself() {
    let Some(mut pg) = PgCluster::start("outage") else {
        return;
    };
    let s = Serve::start(Some(&pg.url()), &["--connect-timeout", "2"]);
    let (st, v) = s.converse("BODY-hello", "BODY-before").await;
    assert_eq!(st, 200, "a send before the outage: {v}");
    let (st, v) = s.get_number().await;
    assert_eq!(st, 200, "the number before the outage: {v}");

    pg.stop_immediate();
    for round in 0..3 {
        let started = Instant::now();
        assert_unavailable("a send", &s.send(&text("BODY-during")).await);
        assert_unavailable("GET of the phone number", &s.get_number().await);
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "round {round}: the answers come within the connect timeout, not after a hang ({:?})",
            started.elapsed()
        );
    }

    pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    let sent = loop {
        let got = s.send(&text("BODY-after")).await;
        match got.0 {
            200 => break got,
            503 => assert_unavailable("a send while reconnecting", &got),
            _ => panic!("a send after the restart answered {}: {}", got.0, got.1),
        }
        assert!(Instant::now() < deadline, "no recovery within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(sent.1["messages"][0]["id"].is_string(), "{}", sent.1);
    let (st, v) = s.get_number().await;
    assert_eq!(st, 200, "the number after the outage: {v}");
    assert_eq!(v["id"], s.s("phone_number_id"));
    let mut delivered = false;
    for _ in 0..600 {
        if s.inbox_has("BODY-after").await {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        delivered,
        "the message sent after the outage reached the phone"
    );
    let log = s.log_text();
    assert!(
        log.contains("database unavailable"),
        "the cause of each 503 is in the log"
    );
    s.assert_log_clean(&[]);
}

/// Runs `serve` to its end (killed after `limit`), returning its status, stderr and how long
/// it ran.
fn run_to_exit(
    mut command: Command,
    limit: Duration,
) -> (std::process::ExitStatus, String, Duration) {
    let dir = tempfile::tempdir().expect("dir");
    let err_path = dir.path().join("stderr");
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve still running after {limit:?}: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    (
        status,
        std::fs::read_to_string(&err_path).expect("stderr"),
        elapsed,
    )
}

fn unreachable_serve(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args([
            "--database-url",
            "postgres://spuser-CANARY:pw-CANARY-9f3@127.0.0.1:1/x",
        ])
        .env_remove("SEALPOST_DATABASE_URL")
        .env_remove("SEALPOST_CONNECT_TIMEOUT")
        .env_remove("SEALPOST_CONFIG")
        .env("RUST_LOG", "info");
    command
}

fn assert_names_target_only(stderr: &str) {
    assert!(
        stderr.contains("127.0.0.1:1"),
        "the error names the host and port: {stderr}"
    );
    assert!(
        !stderr.contains("pw-CANARY") && !stderr.contains("spuser-CANARY"),
        "the error holds no user information of the URL"
    );
}

/// Against a database nobody answers for, `serve` gives up within the connect timeout (here
/// from the environment, which overrides the file's 60 s), exits non-zero and names the host and
/// port it tried, never the URL's user or password.
#[test]
fn serve_against_an_unreachable_database_exits_naming_host_and_port_only() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("sealpost.toml");
    std::fs::write(&file, "connect_timeout_seconds = 60\n").expect("config");
    let mut command = unreachable_serve(&dir.path().join("data"));
    command
        .arg("--config")
        .arg(&file)
        .env("SEALPOST_CONNECT_TIMEOUT", "2");
    let (status, stderr, elapsed) = run_to_exit(command, Duration::from_secs(30));
    assert!(!status.success(), "serve exits non-zero: {stderr}");
    assert!(
        elapsed < Duration::from_secs(6),
        "gave up within the 2 s timeout (took {elapsed:?})"
    );
    assert_names_target_only(&stderr);
}

/// Without a setting, `serve` waits at most 10 s for the database.
#[test]
fn serve_gives_up_on_an_unreachable_database_within_ten_seconds_by_default() {
    let dir = tempfile::tempdir().expect("dir");
    let (status, stderr, elapsed) = run_to_exit(
        unreachable_serve(&dir.path().join("data")),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "serve exits non-zero: {stderr}");
    assert!(
        elapsed <= Duration::from_millis(10_500),
        "gave up within 10 s (took {elapsed:?})"
    );
    assert!(
        elapsed >= Duration::from_secs(8),
        "it did wait for the database (took {elapsed:?})"
    );
    assert_names_target_only(&stderr);
}

/// Every directory under `dir` 0700 and every file 0600 (nothing for group or others).
#[cfg(unix)]
fn walk_modes(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(dir).expect("metadata");
    out.push((dir.to_path_buf(), meta.permissions().mode() & 0o7777, true));
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let meta = std::fs::symlink_metadata(entry.path()).expect("metadata");
        if meta.is_dir() {
            walk_modes(&entry.path(), out);
        } else {
            out.push((entry.path(), meta.permissions().mode() & 0o7777, false));
        }
    }
}

#[cfg(unix)]
fn assert_private(data: &Path, expected: &[&str]) {
    let mut found = Vec::new();
    walk_modes(data, &mut found);
    for (path, mode, is_dir) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            *mode,
            want,
            "{} is {mode:04o}, not {want:04o}",
            path.display()
        );
        assert_eq!(mode & 0o077, 0);
    }
    for name in expected {
        assert!(
            found
                .iter()
                .any(|(p, _, _)| p.strip_prefix(data).is_ok_and(|r| r == Path::new(name))),
            "{name} exists (found {:?})",
            found.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
    }
}

/// A fresh data directory after a send: the directory 0700 and every file 0600, the SQLite
/// databases with their -wal and -shm files, the root keys, the witness, bootstrap.json and a
/// tenant file included.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_every_file_in_it_are_owner_only() {
    let mut s = Serve::start(None, &[]);
    let (st, v) = s.converse("BODY-hi", "BODY-hello").await;
    assert_eq!(st, 200, "{v}");
    // While it runs, SQLite's WAL and shared-memory files exist beside each database.
    assert_private(
        &s.data,
        &[
            "events.db",
            "events.db-wal",
            "events.db-shm",
            "keys.db",
            "keys.db-wal",
            "keys.db-shm",
            "bootstrap.json",
            "root-keys",
            "root-keys/EU.key",
        ],
    );
    s.stop();
    // A graceful stop signs a last checkpoint into the witness file.
    assert_private(
        &s.data,
        &["events.db", "keys.db", "audit", "audit/witness.jsonl"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args([
            "tenant",
            "add",
            "--name",
            "Second Shop",
            "--display-number",
            "15550100200",
            "--data-dir",
        ])
        .arg(&s.data)
        .env_remove("SEALPOST_DATABASE_URL")
        .output()
        .expect("tenant add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenant = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let name = Path::new(&tenant)
        .file_name()
        .expect("tenant file")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("tenant-"), "{name}");
    assert_private(&s.data, &[name.as_str()]);
    s.assert_log_clean(&[]);
}

/// A file and the directory an operator opened to others are named in a warning at the next
/// start, and left as they are.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loosened_path_in_the_data_directory_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut first = Serve::start_in(&data, &dir.path().join("first.log"), None, &[]);
    first.stop();
    let first_log = first.log_text();
    assert!(
        !first_log.contains("open to group or others"),
        "no warning on a fresh directory"
    );
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    set(&data, 0o750);
    set(&data.join("events.db"), 0o644);
    set(&data.join("root-keys").join("EU.key"), 0o640);

    let log = dir.path().join("second.log");
    let second = Serve::start_in(&data, &log, None, &[]);
    let text = second.log_text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("open to group or others") && l.contains("WARN"))
        .collect();
    for (path, mode) in [
        (".", "0750"),
        ("events.db", "0644"),
        ("root-keys/EU.key", "0640"),
    ] {
        assert!(
            warnings
                .iter()
                .any(|l| l.contains(&format!("\"path\":\"{path}\"")) && l.contains(mode)),
            "a warning names {path} ({mode}): {warnings:#?}"
        );
    }
    assert_eq!(warnings.len(), 3, "only the loosened paths: {warnings:#?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode(&data), 0o750, "left as it is");
    assert_eq!(mode(&data.join("events.db")), 0o644, "left as it is");
    assert_eq!(mode(&data.join("keys.db")), 0o600);
    second.assert_log_clean(&[]);
}
