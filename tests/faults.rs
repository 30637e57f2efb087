//! Black-box tests of `sealpost serve` in a fault, and of the files it leaves behind: the real
//! binary, its own data directory, and for the outage a private Postgres cluster that the test
//! kills and starts again under the running server.

mod common;

use common::cluster::PgCluster;
use common::server::{eventually, tenant_add, Data, Node, Serve};
use common::{text, CONSUMER};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `serve` with JSON logs at TRACE; `args` after the harness's own.
fn serve(data: &Data, args: &[&str]) -> Serve {
    Serve::on(data).trace().args(args)
}

/// Nothing personal or secret in the server's log: the consumer's number, message bodies,
/// tokens, the app secret.
fn assert_log_clean(s: &Node) {
    s.assert_log_clean(
        &[CONSUMER, "BODY-"],
        &["access_token", "auditor_token", "dpo_token", "app_secret"],
    );
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
    let url = pg.url();
    let s = serve(
        &Data::fresh(None),
        &["--connect-timeout", "2", "--database-url", &url],
    )
    .start();
    let (st, v) = s
        .converse("BODY-hello", text(CONSUMER, "BODY-before"))
        .await;
    assert_eq!(st, 200, "a send before the outage: {v}");
    let (st, v) = s.number().await;
    assert_eq!(st, 200, "the number before the outage: {v}");

    pg.stop_immediate();
    for round in 0..3 {
        let started = Instant::now();
        assert_unavailable("a send", &s.send(text(CONSUMER, "BODY-during")).await);
        assert_unavailable("GET of the phone number", &s.number().await);
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "round {round}: the answers come within the connect timeout, not after a hang ({:?})",
            started.elapsed()
        );
    }

    pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    let sent = loop {
        let got = s.send(text(CONSUMER, "BODY-after")).await;
        match got.0 {
            200 => break got,
            503 => assert_unavailable("a send while reconnecting", &got),
            _ => panic!("a send after the restart answered {}: {}", got.0, got.1),
        }
        assert!(Instant::now() < deadline, "no recovery within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(sent.1["messages"][0]["id"].is_string(), "{}", sent.1);
    let (st, v) = s.number().await;
    assert_eq!(st, 200, "the number after the outage: {v}");
    assert_eq!(v["id"], s.s("phone_number_id"));
    let what = "the message sent after the outage reached the phone";
    eventually(30, what, || async {
        s.shows_text(CONSUMER, "BODY-after").await.then_some(())
    })
    .await;
    let log = s.log_text();
    assert!(
        log.contains("database unavailable"),
        "the cause of each 503 is in the log"
    );
    assert_log_clean(&s);
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
    let mut s = serve(&Data::fresh(None), &[]).start();
    let (st, v) = s.converse("BODY-hi", text(CONSUMER, "BODY-hello")).await;
    assert_eq!(st, 200, "{v}");
    // While it runs, SQLite's WAL and shared-memory files exist beside each database.
    assert_private(
        &s.data.dir,
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
    s.stop().expect("serve stopped cleanly");
    // A graceful stop signs a last checkpoint into the witness file.
    assert_private(
        &s.data.dir,
        &["events.db", "keys.db", "audit", "audit/witness.jsonl"],
    );
    let tenant = tenant_add(&s.data.dir, "Second Shop", "15550100200");
    let name = Path::new(&tenant)
        .file_name()
        .expect("tenant file")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("tenant-"), "{name}");
    assert_private(&s.data.dir, &[name.as_str()]);
    assert_log_clean(&s);
}

/// A file and the directory an operator opened to others are named in a warning at the next
/// start, and left as they are.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loosened_path_in_the_data_directory_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut first = serve(&Data::at(data.clone()), &[])
        .log_to(dir.path().join("first.log"))
        .start();
    first.stop().expect("serve stopped cleanly");
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
    let second = serve(&Data::at(data.clone()), &[]).log_to(log).start();
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
    assert_log_clean(&second);
}
