//! The map stays a map, and the repository stays complete on its own: every repository path
//! that `ARCHITECTURE.md`, `docs/api.md` and `docs/testing.md` name exists, `ARCHITECTURE.md`
//! fits on a page, and no document or source file points to a document outside the repository.
//!
//! What counts as a path: a code span (or, in a fenced block, a word) without spaces or
//! placeholders (`{`, `<`, `…`, `*`, `=`, `?`, `|`, `://`) that does not start with `/` (an HTTP
//! route) and either ends in `.rs`, `.md`, `.toml`, `.sql` or `.sh`, or contains `/` and starts
//! with a directory at the repository root (so `text/plain` or `sealpost/audit/v1` are not
//! paths). A `::test_name` suffix is ignored. Paths are relative to the repository root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The documents whose paths are checked.
const MAPS: [&str; 3] = ["ARCHITECTURE.md", "docs/api.md", "docs/testing.md"];
/// A map that fits on a page.
const MAX_ARCHITECTURE_LINES: usize = 400;
/// Endings that make a token a file path even without a directory.
const FILE_ENDINGS: [&str; 5] = [".rs", ".md", ".toml", ".sql", ".sh"];
/// Characters that mark a placeholder, a pattern, an assignment or a URL query, not a path.
const NOT_IN_PATHS: [char; 10] = ['{', '}', '<', '>', '…', '*', '=', '?', '|', '$'];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The directories at the repository root a path may start with.
fn top_dirs() -> BTreeSet<String> {
    std::fs::read_dir(root())
        .expect("read the repository root")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".git")
        .collect()
}

/// The code spans of a Markdown text (paragraph by paragraph, so one stray backtick cannot
/// shift the rest of the file) and the words of its fenced blocks, with their line numbers.
fn tokens(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    let flush = |paragraph: &mut Vec<(usize, &str)>, out: &mut Vec<(usize, String)>| {
        let Some(&(first, _)) = paragraph.first() else {
            return;
        };
        let joined: Vec<&str> = paragraph.iter().map(|(_, l)| *l).collect();
        let joined = joined.join("\n");
        let mut line = first;
        for (i, segment) in joined.split('`').enumerate() {
            if i % 2 == 1 {
                out.push((line, segment.to_owned()));
            }
            line += segment.matches('\n').count();
        }
        paragraph.clear();
    };
    for (n, line) in text.lines().enumerate() {
        let number = n + 1;
        if line.trim_start().starts_with("```") {
            flush(&mut paragraph, &mut out);
            fenced = !fenced;
            continue;
        }
        if fenced {
            for word in line.split_whitespace() {
                let word = word.trim_matches(|c: char| "()[],;:\"'".contains(c));
                out.push((number, word.to_owned()));
            }
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push((number, line));
        }
    }
    flush(&mut paragraph, &mut out);
    out
}

/// The repository path a token names, if it names one.
fn as_repo_path(token: &str, top: &BTreeSet<String>) -> Option<String> {
    let token = token.split("::").next().unwrap_or_default();
    if token.is_empty()
        || token.chars().any(char::is_whitespace)
        || token.contains(NOT_IN_PATHS)
        || token.contains("://")
        || token.starts_with('/')
        || token.starts_with('-')
    {
        return None;
    }
    let has_ending = FILE_ENDINGS.iter().any(|e| token.ends_with(e));
    let first = token.split('/').next().unwrap_or_default();
    let rooted = token.contains('/') && top.contains(first);
    (has_ending || rooted).then(|| token.trim_end_matches('/').to_owned())
}

#[test]
fn every_path_the_map_names_exists() {
    let top = top_dirs();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in MAPS {
        let text = read(&root().join(doc));
        for (line, token) in tokens(&text) {
            if let Some(path) = as_repo_path(&token, &top) {
                checked += 1;
                if !root().join(&path).exists() {
                    missing.push(format!("  {doc}:{line}: `{path}`"));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} paths found: is the path rule still right?"
    );
    assert!(
        missing.is_empty(),
        "these paths are named but do not exist (paths are written from the repository root):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_architecture_map_fits_on_a_page() {
    let lines = read(&root().join("ARCHITECTURE.md")).lines().count();
    assert!(
        lines <= MAX_ARCHITECTURE_LINES,
        "ARCHITECTURE.md has {lines} lines, more than {MAX_ARCHITECTURE_LINES}: move catalogues \
         to docs/api.md or docs/testing.md and reasons to docs/adr/"
    );
}

/// Every `*.md` and `*.rs` file of the repository, outside `target/` and `.git/`.
fn documents_and_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if name != "target" && name != ".git" {
                documents_and_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "md" || e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn nothing_points_to_a_document_outside_the_repository() {
    // Spelled in pieces, so that this file does not find itself.
    let needles = [concat!("..", "/shared"), concat!("DESIGN", ".md")];
    let mut files = Vec::new();
    documents_and_sources(&root(), &mut files);
    files.sort();
    let mut offenders = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let text = String::from_utf8_lossy(&bytes);
        let relative = file.strip_prefix(root()).unwrap_or(file);
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                let at = format!("{}:{}", relative.display(), n + 1);
                offenders.push(format!("  {at}: {}", line.trim()));
            }
        }
    }
    assert!(files.len() > 50, "only {} files found", files.len());
    assert!(
        offenders.is_empty(),
        "these lines point outside the repository (the design is docs/design.md, the reference \
         pages are in docs/reference/):\n{}",
        offenders.join("\n")
    );
}
