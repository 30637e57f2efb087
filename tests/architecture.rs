//! Architecture invariants of ARCHITECTURE.md that a compiler cannot check, checked on the
//! source tree; and the demo as a person runs it.

use std::collections::{BTreeMap, BTreeSet};
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
        "zeroize",
    ];
    for line in deps.lines().filter(|l| l.contains('=')) {
        let name = line.split(['.', '=', ' ']).next().expect("name");
        // Schema derivation for the OpenAPI document, only with the `openapi` feature (ADR
        // 0028): no I/O, no clock, no randomness.
        if name == "utoipa" {
            assert!(line.contains("optional = true"), "utoipa stays optional");
            continue;
        }
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

/// The production crates' source folders.
const PRODUCTION: [&str; 5] = [
    "domain/src",
    "adapters/src",
    "audit/src",
    "projections/src",
    "src",
];

/// A source text without its comment lines (so a doc link is not an import).
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first names of the paths a `crate::` reference names: `crate::a::B` names `a`,
/// `crate::{a::B, c}` names `a` and `c`.
fn crate_paths(code: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.push(ident(rest));
            continue;
        };
        let (mut depth, mut start) = (1, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => start = true,
                c if depth == 1 && start && (c.is_ascii_alphanumeric() || c == '_') => {
                    names.push(ident(&group[i..]));
                    start = false;
                }
                _ => {}
            }
        }
    }
    names
}

/// A crate's top-level modules (`mod name;` in `lib.rs`), each with the other top-level modules
/// its files name through `crate::`, directly or through a `pub use` of `lib.rs`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = code(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.trim().strip_suffix(';')?.split_whitespace().collect();
            (words.len() >= 2 && words[words.len() - 2] == "mod")
                .then(|| words[words.len() - 1].to_owned())
        })
        .collect();
    // `pub use a::{B, c::D};` lets `crate::B` and `crate::D` stand for module `a`.
    let mut reexported: BTreeMap<String, String> = BTreeMap::new();
    for statement in lib.split("pub use ").skip(1) {
        let statement = statement.split(';').next().unwrap_or_default();
        let mut words = statement
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty());
        if let Some(module) = words.next().filter(|m| modules.contains(*m)) {
            for name in words {
                reexported
                    .entry(name.to_owned())
                    .or_insert_with(|| module.to_owned());
            }
        }
    }
    let mut graph = BTreeMap::new();
    for module in &modules {
        let folder = src.join(module);
        let mut files = if folder.is_dir() {
            rust_files(&folder)
        } else {
            Vec::new()
        };
        files.push(src.join(format!("{module}.rs")));
        let mut uses = BTreeSet::new();
        for file in files.iter().filter(|f| f.exists()) {
            let text = code(&std::fs::read_to_string(file).expect("read"));
            for name in crate_paths(&text) {
                let target = if modules.contains(name) {
                    Some(name)
                } else {
                    reexported.get(name).map(String::as_str)
                };
                if let Some(target) = target.filter(|t| *t != module.as_str()) {
                    uses.insert(target.to_owned());
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A path of modules from `from` to `to` in `graph`, if there is one.
fn path(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut out = vec![to.to_owned()];
            let mut step = to;
            while let Some(prev) = came_from.get(step) {
                out.push((*prev).to_owned());
                step = prev;
            }
            out.reverse();
            return Some(out);
        }
        for next in graph.get(at).into_iter().flatten() {
            if next != from && !came_from.contains_key(next.as_str()) {
                came_from.insert(next.as_str(), at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Handlers, the pipeline and the webhook workers go through the application service's
/// operations; only the application layer (`src/app*`, and media, whose operations are
/// `Sealpost`'s too) runs commands on the executor itself.
#[test]
fn only_the_application_layer_runs_commands() {
    let src = root().join("src");
    let mut offenders = Vec::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("app") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        if code(&text).contains(".executor()") {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "outside the application layer, these call the executor: {offenders:?}"
    );
}

#[test]
fn the_application_names_its_ports_from_the_domain() {
    // ADR 0011: the ports the application drives are declared in `domain::ports`; the
    // application and the pipeline name them there, so a fake needs no adapter. Implementations
    // (`Libsignal`, `SimNetwork`, `SystemClock`, …) are wired in by start-up code only.
    let adapter_ports = [
        "sealpost_adapters::clock::Clock",
        "sealpost_adapters::clock::{Clock",
        "sealpost_adapters::signal::{Account",
        "sealpost_adapters::signal::SignalEngine",
        "sealpost_adapters::signal::SignalError",
        "sealpost_adapters::transport::{",
        "sealpost_adapters::transport::Transport",
        "sealpost_adapters::transport::TransportError",
    ];
    let mut offenders = Vec::new();
    for (path, text) in sources().into_iter().filter(|(p, _)| p.starts_with("src/")) {
        let text = code(&text);
        for port in adapter_ports {
            if text.contains(port) {
                offenders.push(format!("{path}: {port}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these name a port at its adapter: {offenders:?}"
    );
    let ports = std::fs::read_to_string(root().join("domain/src/ports/mod.rs")).expect("ports");
    for port in ["trait Clock", "pub mod signal", "pub mod transport"] {
        assert!(ports.contains(port), "domain::ports declares {port}");
    }
}

#[test]
fn modules_depend_one_way() {
    let mut cycles = Vec::new();
    for krate in PRODUCTION {
        let graph = module_graph(&root().join(krate));
        assert!(graph.len() > 1, "{krate}: no modules found");
        for (module, uses) in &graph {
            for used in uses {
                if let Some(back) = path(&graph, used, module) {
                    cycles.push(format!("  {krate}: {module} -> {}", back.join(" -> ")));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between modules (move the shared part down, so dependencies run one way):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn test_kits_live_only_in_the_dev_only_crate() {
    let kit = std::fs::read_to_string(root().join("tests/kit/Cargo.toml")).expect("kit manifest");
    assert!(
        kit.contains("publish = false"),
        "the test kit is never published"
    );
    for manifest in PRODUCTION.map(|src| src.trim_end_matches("src").to_owned() + "Cargo.toml") {
        let text = std::fs::read_to_string(root().join(&manifest)).expect("manifest");
        let mut section = "";
        for line in text.lines() {
            if line.starts_with('[') {
                section = line.trim();
            } else if line.trim_start().starts_with("sealpost-testkit") {
                assert!(
                    ["[dev-dependencies]", "[workspace.dependencies]"].contains(&section),
                    "{manifest}: the test kit in {section}; only a dev-dependency may name it"
                );
            }
        }
    }
    for (path, text) in sources().into_iter().filter(|(p, _)| {
        PRODUCTION
            .iter()
            .any(|src| p.starts_with(&format!("{src}/")))
    }) {
        assert!(
            !code(&text).contains("mod testkit"),
            "{path}: test kits belong in tests/kit/, not in a production crate"
        );
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
