//! Architecture invariants of ARCHITECTURE.md that a compiler cannot check, checked on the
//! source tree; and the demo as a person runs it.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

fn sources() -> Vec<(String, String)> {
    [
        "domain",
        "adapters",
        "projections",
        "audit",
        "src",
        "tests",
        "benches",
    ]
    .iter()
    .flat_map(|d| rust_files(&root().join(d)))
    .map(|p| {
        let rel = p
            .strip_prefix(root())
            .expect("under root")
            .display()
            .to_string();
        (rel, std::fs::read_to_string(&p).expect("read"))
    })
    .collect()
}

#[test]
fn only_the_access_gate_opens_sealed_fields() {
    // Production code only: the vault's own tests open fields to test the vault.
    let call = concat!(".open", "_field(");
    let callers: Vec<String> = sources()
        .into_iter()
        .filter(|(path, _)| path.starts_with("src/") || path.contains("/src/"))
        .filter(|(_, text)| text.contains(call))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        callers,
        vec!["audit/src/gate.rs".to_owned()],
        "every read of a classified field passes the gate"
    );
}

#[test]
fn the_domain_does_no_io_reads_no_clock_and_draws_no_randomness() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::env",
        "SystemTime",
        "Instant::now",
        "rand::",
        "tokio::",
        "sqlx",
    ];
    for (path, text) in sources()
        .into_iter()
        .filter(|(p, _)| p.starts_with("domain/src"))
    {
        for f in forbidden {
            assert!(!text.contains(f), "{path} uses {f}");
        }
    }
    let manifest = std::fs::read_to_string(root().join("domain/Cargo.toml")).expect("manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("[dev-dependencies]").next())
        .expect("deps");
    let allowed = [
        "cqrs-es",
        "async-trait",
        "serde",
        "serde_json",
        "thiserror",
        "base64",
    ];
    for line in deps.lines().filter(|l| l.contains('=')) {
        let name = line.split(['.', '=', ' ']).next().expect("name");
        assert!(
            allowed.contains(&name),
            "the domain may not depend on {name}"
        );
    }
}

#[test]
fn only_adapters_talk_to_databases_and_files() {
    for krate in ["domain", "projections", "audit"] {
        let manifest =
            std::fs::read_to_string(root().join(krate).join("Cargo.toml")).expect("manifest");
        assert!(!manifest.contains("sqlx"), "{krate} depends on sqlx");
    }
    for (path, text) in sources()
        .into_iter()
        .filter(|(p, _)| p.starts_with("projections/src") || p.starts_with("audit/src"))
    {
        for f in ["std::fs", "std::net", "sqlx::"] {
            assert!(!text.contains(f), "{path} uses {f}");
        }
    }
}

#[test]
fn the_documented_matrix_is_the_matrix_in_code() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let table = doc
        .split("<!-- matrix:begin -->\n")
        .nth(1)
        .and_then(|s| s.split("<!-- matrix:end -->").next())
        .expect("matrix markers in ARCHITECTURE.md");
    assert_eq!(table, sealpost_domain::access::matrix_markdown());
}

#[test]
fn the_demo_runs_and_every_check_passes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .arg("demo")
        .output()
        .expect("run sealpost demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sealpost demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[PASS]") && !stdout.contains("[FAIL]"),
        "{stdout}"
    );
    // The story never prints the consumers' numbers.
    for p in ["4915112345678", "447700900123", "33612345678"] {
        assert!(!stdout.contains(p), "the demo printed a phone number");
    }
}
