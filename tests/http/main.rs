//! Black-box tests of `sealpost serve`: the real binary on port 0 with its own data directory,
//! spoken to over HTTP exactly as a Cloud API client would (the harness is
//! `tests/common/server.rs`). By resource group: `surface` (messages, media, templates, error
//! envelopes), `numbers` (a number's management and limits, `--config`, tokens), `evidence`
//! (auditor and DPO, retention, erasure), `certificate` (the erasure certificate as a printed
//! page), `notes` (checkpoints as signed notes), `custody` (root keys in a PKCS#11 token),
//! `rotation` (ledger keys rotating), `root_keys` (a root key rotating under load), `tenancy`,
//! `bad_input`, and `openapi` (the document; every exchange of this suite is checked against
//! it by `tests/common/openapi.rs`).

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod business;
mod certificate;
mod content;
mod custody;
mod evidence;
mod hygiene;
mod media;
mod metrics;
mod notes;
mod numbers;
mod openapi;
mod root_keys;
mod rotation;
mod surface;
mod tenancy;

use common::server::{Data, Node, Serve, SECRET_KEYS};
use common::CONSUMER;
use sealpost_testkit::PgTestDb;
use serde_json::Value;

/// What no server of this suite may log (beside the bootstrap's secrets): canary bodies and
/// the consumer numbers.
const NEVER_LOGGED: [&str; 6] = [
    "CANARY-", "-e1b2", CONSUMER, "4915112", "4915113", "4915114",
];

/// A server on a data directory of its own, on the embedded store.
fn start() -> Node {
    start_on(&Data::fresh(None))
}

/// A server on a schema of its own on the test database, and the schema (to drop once the
/// test passed); `None` when Postgres is not there (a loud skip).
async fn on_postgres(label: &str) -> Option<(Node, PgTestDb)> {
    let pg = sealpost_testkit::postgres_test_db(label).await?;
    Some((start_on(&Data::fresh(Some(&pg))), pg))
}

/// A server on `data` ([`serve`]), its bootstrap file checked.
fn start_on(data: &Data) -> Node {
    checked(serve(data).start())
}

/// `serve` on `data` with JSON logs at TRACE; when it goes away its whole log must hold no
/// canary body, consumer number, token or app secret.
fn serve(data: &Data) -> Serve {
    Serve::on(data)
        .trace()
        .log_must_not_hold(&NEVER_LOGGED, &SECRET_KEYS)
}

/// `bootstrap.json` holds tokens: owner only.
fn checked(node: Node) -> Node {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(node.data.dir.join("bootstrap.json"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "bootstrap.json holds tokens: owner only");
    }
    node
}

/// The Graph error envelope with the Cloud API `code` and HTTP `status`.
fn assert_error(got: &(u16, Value), status: u16, code: u64) {
    assert_eq!(got.0, status, "{}", got.1);
    let e = &got.1["error"];
    assert_eq!(e["code"], code, "{}", got.1);
    assert_eq!(e["type"], "OAuthException");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("(#{code}) "))),
        "{}",
        got.1
    );
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
    assert!(e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()));
}

/// CRC-32 (ISO-HDLC, as PNG chunks carry it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid 1x1 grayscale PNG carrying `text` in a `tEXt` chunk and, when there are any,
/// `extra` bytes in a private ancillary chunk (which decoders skip).
fn png(text: &str, extra: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    chunk(
        &mut out,
        b"tEXt",
        &[b"Comment\0".as_slice(), text.as_bytes()].concat(),
    );
    if !extra.is_empty() {
        chunk(&mut out, b"seAl", extra);
    }
    // zlib of one scanline: filter byte 0, one black pixel.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}
