//! Media at Cloud API sizes (issue 17, ADR 0030), against the real binary: a 100 MiB document
//! streams in and out in sealed chunks, byte-identical, while the server's peak resident memory
//! grows by less than 32 MiB; it is still there after a restart; each type has the Cloud API's
//! limit, a type declared before the file stops it mid-stream, and a form refused after its
//! file arrived leaves no chunk behind.

use super::*;
use common::server::{checked, checked_raw, Part};
use sealpost_testkit::files_holding;
use serde_json::json;

const MIB: usize = 1024 * 1024;

/// A PDF of `len` bytes: the magic, then bytes that do not compress or repeat, ending in `tail`
/// (a marker to look for on disk).
fn document(len: usize, tail: &[u8]) -> Vec<u8> {
    let mut doc = b"%PDF-1.7\n".to_vec();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while doc.len() < len - tail.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        doc.extend_from_slice(&x.to_le_bytes());
    }
    doc.truncate(len - tail.len());
    doc.extend_from_slice(tail);
    doc
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a size in kB")
}

/// A client that waits long enough for 100 MiB through a debug build.
fn patient() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("client")
}

async fn upload(s: &Node, parts: &[Part<'_>]) -> (u16, Value) {
    s.upload(&s.s("access_token"), parts).await
}

async fn upload_pdf(s: &Node, doc: &[u8]) -> String {
    let (body, boundary) = common::server::multipart(&[
        ("messaging_product", None, b"whatsapp"),
        ("file", Some(("report.pdf", "application/pdf")), doc),
    ]);
    let req = patient()
        .post(s.url(&format!("/v21.0/{}/media", s.s("phone_number_id"))))
        .bearer_auth(s.s("access_token"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    let (st, v) = checked(req).await;
    assert_eq!(st, 200, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

/// The object's description, then its bytes through the signed URL.
async fn fetch(s: &Node, id: &str) -> (Value, Vec<u8>) {
    let token = s.s("access_token");
    let (st, meta) = s.get(&format!("/v21.0/{id}"), &token).await;
    assert_eq!(st, 200, "{meta}");
    let req = patient()
        .get(meta["url"].as_str().expect("url"))
        .bearer_auth(&token);
    let (st, ctype, bytes) = checked_raw(req).await;
    assert_eq!((st, ctype.as_str()), (200, "application/pdf"));
    (meta, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_document_streams_through_sealed_chunks_in_little_memory() {
    let data = Data::fresh(None);
    let s = start_on(&data);
    // Every code path once, so the measurement sees the object and not the first use.
    let small = document(3 * MIB / 2, b"");
    let id = upload_pdf(&s, &small).await;
    assert_eq!(fetch(&s, &id).await.1, small);

    let marker = b"PLAINTEXT-TAIL-OF-THE-DOCUMENT-5f1c";
    let doc = document(100 * MIB, marker);
    let pid = s.child.id();
    // Peak resident memory from now on (`clear_refs` 5 resets the high-water mark).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
    let before = status_kib(pid, "VmRSS");
    let id = upload_pdf(&s, &doc).await;
    let (meta, back) = fetch(&s, &id).await;
    let peak = status_kib(pid, "VmHWM");
    let growth = peak.saturating_sub(before);
    eprintln!("a 100 MiB upload and download: peak RSS {before} KiB -> {peak} KiB (+{growth} KiB)");
    assert_eq!(
        (meta["file_size"].as_str(), meta["sha256"].as_str()),
        (
            Some(doc.len().to_string().as_str()),
            Some(hex::encode(sealpost_adapters::crypto::sha256(&doc)).as_str())
        )
    );
    assert!(back == doc, "the download is the upload, byte for byte");
    assert!(
        growth < 32 * 1024,
        "peak RSS grew by {growth} KiB during a 100 MiB upload and download"
    );
    assert!(
        files_holding(&data.dir, marker).is_empty(),
        "the plaintext is on disk nowhere"
    );

    // Stopped and started: the object and its chunks are still there.
    let s = s.restart();
    let (_, again) = fetch(&s, &id).await;
    assert!(again == doc, "the same bytes after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_has_the_cloud_api_s_limit_and_a_refused_form_leaves_nothing() {
    let data = Data::fresh(None);
    let s = start_on(&data);
    let too_large = |got: &(u16, Value), limit: usize, kind: &str| {
        assert_eq!(got.0, 400, "{}", got.1);
        assert_eq!(got.1["error"]["code"], 100, "{}", got.1);
        let message = got.1["error"]["error_data"]["details"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains(&format!("{limit} bytes a {kind}")),
            "{}",
            got.1
        );
    };
    // Images 5 MiB, stickers (WebP) 500 KiB, video 16 MiB; each over by a little.
    let mut png = vec![0u8; 5 * MIB + 1];
    png[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
    let got = upload(
        &s,
        &[
            ("messaging_product", None, b"whatsapp"),
            ("file", Some(("big.png", "image/png")), &png),
        ],
    )
    .await;
    too_large(&got, 5 * MIB, "image");
    let mut webp = vec![0u8; 500 * 1024 + 1];
    webp[..12].copy_from_slice(b"RIFF\0\0\0\0WEBP");
    let got = upload(
        &s,
        &[
            ("messaging_product", None, b"whatsapp"),
            ("file", Some(("big.webp", "image/webp")), &webp),
        ],
    )
    .await;
    too_large(&got, 500 * 1024, "sticker");
    // The type comes first: the video is cut off as it streams in, past 16 MiB.
    let got = upload(
        &s,
        &[
            ("messaging_product", None, b"whatsapp"),
            ("type", None, b"video/mp4"),
            (
                "file",
                Some(("long.mp4", "video/mp4")),
                &vec![0u8; 17 * MIB],
            ),
        ],
    )
    .await;
    too_large(&got, 16 * MIB, "video");

    // A document whose bytes are not what it says: refused after it arrived, nothing kept.
    let marker = b"CHUNK-OF-A-REFUSED-UPLOAD-7d2e";
    let mut fake = vec![b'A'; 2 * MIB];
    fake.extend_from_slice(marker);
    let got = upload(
        &s,
        &[
            ("messaging_product", None, b"whatsapp"),
            ("file", Some(("fake.pdf", "application/pdf")), &fake),
        ],
    )
    .await;
    assert_eq!(
        (got.0, &got.1["error"]["code"]),
        (400, &json!(131_053)),
        "{}",
        got.1
    );
    let chunks = {
        let url = format!("sqlite://{}?mode=ro", data.dir.join("keys.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("keys.db");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sealpost_media_chunks")
            .fetch_one(&pool)
            .await
            .expect("count");
        n
    };
    assert_eq!(chunks, 0, "every refused upload's chunks were deleted");
}
