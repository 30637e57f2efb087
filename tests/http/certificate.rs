//! The erasure certificate as a page a DPO can print and file (issue 15, part 4), rendered by
//! headless Chromium as it would be printed.

use crate::common::server::Node;
use crate::common::{text, CONSUMER};
use crate::start;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// Environment variable that turns "no Chromium" from a skip into a failure (`.ci/run` sets it).
const REQUIRE_CHROMIUM_ENV: &str = "SEALPOST_REQUIRE_CHROMIUM";
/// Debian's Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium with the flags this machine's closed network needs, on `page`: `args`
/// (e.g. `--dump-dom`, `--print-to-pdf=…`); its standard output.
fn chromium(page: &Path, profile: &Path, args: &[String]) -> String {
    // Never longer than two minutes, so a Chromium that hangs fails the test instead of CI.
    let out = Command::new("timeout")
        .args(["120", CHROMIUM])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether Chromium is here to render with (else a loud skip, or a failure when required).
fn chromium_here() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var(REQUIRE_CHROMIUM_ENV).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE_CHROMIUM_ENV}=1 but {CHROMIUM} is not installed");
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPING the certificate's rendering: no {CHROMIUM}.\n!!! Set {REQUIRE_CHROMIUM_ENV}=1 to make this a failure.\n"
    );
    false
}

/// `POST /sealpost/v1/dpo/erasures?format=html`: the certificate as one self-contained page
/// (what, when, how, the log position, the proof and the signed note; no consumer number, no
/// script or link), which Chromium parses to the same facts and prints as a PDF of a page or
/// two; an unknown format is refused before anything is erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erasure_certificate_prints_as_a_page() {
    let s: Node = start();
    let (st, sent) = s.converse("hallo", text(CONSUMER, "erase me")).await;
    assert_eq!(st, 200, "{sent}");
    let request = json!({"phone_number_id": s.s("phone_number_id"), "wa_id": CONSUMER});
    let (st, refused) = s
        .post(
            "/sealpost/v1/dpo/erasures?format=pdf",
            Some(&s.s("dpo_token")),
            request.clone(),
        )
        .await;
    assert_eq!(st, 400, "{refused}");
    let resp = s
        .request(
            reqwest::Method::POST,
            "/sealpost/v1/dpo/erasures?format=html",
        )
        .bearer_auth(s.s("dpo_token"))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .expect("erase");
    assert_eq!(resp.status(), 201);
    let kind = resp.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    let page = resp.text().await.expect("html");
    if let Ok(path) = std::env::var("SEALPOST_CERTIFICATE_OUT") {
        std::fs::write(path, &page).expect("save the page");
    }
    // The same erasure by subject id, as JSON: the facts the page must show.
    let (st, again) = s
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("dpo_token")),
            json!({"subject_id": subject_of(&page)}),
        )
        .await;
    assert_eq!(st, 201, "{again}");
    let cert = &again["certificate"];
    let position = cert["event"]["position"].as_u64().expect("position");
    for fact in [
        cert["subject_id"].as_str().expect("subject"),
        cert["business_id"].as_str().expect("business"),
        "Certificate of erasure",
        "cryptographic erase",
        "SubjectErased",
        "C2SP signed note",
    ] {
        assert!(page.contains(fact), "the page shows {fact}");
    }
    assert!(page.contains(&format!("data-field=\"position\">{position}<")));
    assert!(!page.contains(CONSUMER), "no consumer number on the page");
    for loaded in ["<script", "<link", "<img", "http://", "https://"] {
        assert!(!page.contains(loaded), "self-contained: no {loaded}");
    }

    if !chromium_here() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("certificate.html");
    std::fs::write(&file, &page).expect("write");
    let dom = chromium(
        &file,
        &dir.path().join("profile-dom"),
        &["--dump-dom".into()],
    );
    assert!(
        dom.contains(cert["subject_id"].as_str().expect("subject")),
        "parsed"
    );
    assert!(dom.contains("sealpost/audit/v1"), "the note, parsed");
    let pdf = dir.path().join("certificate.pdf");
    chromium(
        &file,
        &dir.path().join("profile-pdf"),
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".into(),
        ],
    );
    let printed = std::fs::read(&pdf).expect("the printed PDF");
    assert!(printed.starts_with(b"%PDF-"), "a PDF");
    let pages = printed
        .windows(b"/Type /Page".len() + 1)
        .filter(|w| w.starts_with(b"/Type /Page") && w[w.len() - 1] != b's')
        .count();
    assert!((1..=3).contains(&pages), "printed on {pages} pages");
}

/// The subject id a certificate page names.
fn subject_of(page: &str) -> String {
    let from = page
        .find("data-field=\"subject_id\">")
        .expect("the subject on the page")
        + "data-field=\"subject_id\">".len();
    page[from..].split('<').next().expect("id").to_owned()
}
