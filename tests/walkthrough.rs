//! The README's curl walk-through runs as written: `scripts/walkthrough.sh` runs each of its
//! commands (the README's own webhook listener, image and templates included) against the real
//! `sealpost serve --sim-clock`, checks every answer, and restarts the server (SIGTERM, a clean
//! exit, then a start on the same data) between every step. It needs bash, curl, jq and
//! python3 (`.ci/run` installs them).

use std::process::Command;
use std::time::Instant;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn the_readme_walk_through_runs_as_written_across_restarts() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/walkthrough.sh");
    let (port, hook_port, tls_port) = loop {
        let (a, b, c) = (free_port(), free_port(), free_port());
        if a != b && b != c && a != c {
            break (a, b, c);
        }
    };
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(script)
        .env("SEALPOST", env!("CARGO_BIN_EXE_sealpost"))
        .env("PORT", port.to_string())
        .env("HOOK_PORT", hook_port.to_string())
        .env("HOOK_TLS_PORT", tls_port.to_string())
        .env("WALKTHROUGH_RESTART", "1")
        .env_remove("SEALPOST_DATABASE_URL")
        .env_remove("WALKTHROUGH_KEEP")
        .output()
        .expect("run bash scripts/walkthrough.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/walkthrough.sh failed ({}) after {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        started.elapsed()
    );
}
