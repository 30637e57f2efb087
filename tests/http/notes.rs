//! Checkpoints as C2SP signed notes (issue 15, ADR 0022), checked by an implementation that is
//! not Sealpost's: the `signed_note` crate, a port of Go's `golang.org/x/mod/sumdb/note`.

use crate::common::server::{sealpost, Node};
use crate::common::{text, CONSUMER};
use crate::start;
use base64::Engine as _;
use signed_note::{new_ed25519_verifier_key, Note, StandardVerifier, VerifierList};

/// The text of `note` if it verifies under the verifier key `vkey`.
pub fn open_note(note: &str, vkey: &str) -> Result<String, String> {
    let verifier = StandardVerifier::new(vkey).map_err(|e| format!("vkey: {e}"))?;
    let known = VerifierList::new(vec![Box::new(verifier)]);
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|e| format!("note: {e}"))?;
    parsed.verify(&known).map_err(|e| format!("verify: {e}"))?;
    String::from_utf8(parsed.text().to_vec()).map_err(|e| e.to_string())
}

/// The newest checkpoint as the note `/audit/checkpoint` answers with `Accept: text/plain`.
async fn note_of(s: &Node) -> String {
    let resp = s
        .request(reqwest::Method::GET, "/sealpost/v1/audit/checkpoint")
        .bearer_auth(s.s("auditor_token"))
        .header("accept", "text/plain")
        .send()
        .await
        .expect("checkpoint");
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert_eq!(resp.headers()["vary"], "accept");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    resp.text().await.expect("text")
}

/// The checkpoint note verifies under the published verifier key, and its body is a
/// `tlog-checkpoint`: origin, size, base64 root, as the JSON checkpoint has them. One flipped
/// byte, another origin's key or another key refuses it. The command line prints the same
/// formats, and the witness file carries the note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_notes_other_tools_verify() {
    let mut s = start();
    let (st, sent) = s.converse("hello", text(CONSUMER, "a note")).await;
    assert_eq!(st, 200, "{sent}");
    let (st, vkey) = s
        .get_text("/sealpost/v1/audit/public-key?format=vkey", "")
        .await;
    assert_eq!(st, 200, "{vkey}");
    let vkey = vkey.trim().to_owned();
    assert!(vkey.starts_with("sealpost/audit/v1+"), "{vkey}");

    let note = note_of(&s).await;
    let (st, by_format) = s
        .get_text(
            "/sealpost/v1/audit/checkpoint?format=note",
            &s.s("auditor_token"),
        )
        .await;
    assert_eq!(st, 200, "{by_format}");
    open_note(&by_format, &vkey).expect("?format=note verifies too");
    let (st, bad) = s
        .get(
            "/sealpost/v1/audit/checkpoint?format=pdf",
            &s.s("auditor_token"),
        )
        .await;
    assert_eq!(st, 400, "{bad}");
    let body = open_note(&note, &vkey).expect("the note verifies");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "sealpost/audit/v1", "{body}");
    let size: u64 = lines[1].parse().expect("a decimal size");
    assert!(size > 0, "{body}");
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines[2])
        .expect("a base64 root");
    assert_eq!(root.len(), 32, "{body}");

    // The JSON answer carries a note of its own fields.
    let (st, json) = s
        .get("/sealpost/v1/audit/checkpoint", &s.s("auditor_token"))
        .await;
    assert_eq!(st, 200, "{json}");
    let fields = open_note(json["note"].as_str().expect("note"), &vkey).expect("verifies");
    let fields: Vec<&str> = fields.lines().collect();
    assert_eq!(fields[1], json["size"].to_string());
    let hex_root = hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(fields[2])
            .expect("base64"),
    );
    assert_eq!(json["root"], hex_root.as_str());

    // One flipped byte of the body, or of the signature, is refused.
    let flipped = note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
    assert_ne!(flipped, note);
    assert!(open_note(&flipped, &vkey).is_err(), "another size");
    let (text_part, signature) = note.rsplit_once(' ').expect("a signature line");
    let mut sig = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .expect("base64");
    sig[10] ^= 0x01;
    let forged = format!(
        "{text_part} {}\n",
        base64::engine::general_purpose::STANDARD.encode(sig)
    );
    assert!(open_note(&forged, &vkey).is_err(), "a changed signature");
    // The same key under another name, and another key under the log's name.
    let key = s.published_key().await;
    assert_eq!(new_ed25519_verifier_key("sealpost/audit/v1", &key), vkey);
    let elsewhere = new_ed25519_verifier_key("example.com/log", &key);
    assert!(open_note(&note, &elsewhere).is_err(), "another origin");
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let impostor = new_ed25519_verifier_key("sealpost/audit/v1", &other);
    assert!(open_note(&note, &impostor).is_err(), "another key");

    // The command line: the same key, a note that verifies, and the note in the witness file.
    s.stop().expect("a clean stop");
    let dir = s.data.dir.display().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", &dir]);
        sealpost(all)
    };
    assert_eq!(cli(&["public-key", "--format", "vkey"]).trim(), vkey);
    let printed = cli(&["checkpoint", "--format", "note"]);
    open_note(&printed, &vkey).expect("the printed note verifies");
    let witness = std::fs::read_to_string(s.data.dir.join("audit/witness.jsonl")).expect("witness");
    let last: serde_json::Value =
        serde_json::from_str(witness.lines().last().expect("a line")).expect("json");
    assert_eq!(
        last["note"],
        printed.as_str(),
        "the witness carries the note"
    );
}

/// The audit signing key hands the log over (ADR 0026): the operator's route answers the
/// hand-over checkpoint, a note that the old and the new verifier key each open; the log
/// publishes the new key and signs under it alone from then on; `sealpost audit verify` passes
/// from the old published key and from the new one, and fails from another; the DPO's report
/// lists the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_hands_over_and_audit_verify_follows_it() {
    let mut s = start();
    let (st, sent) = s.converse("hello", text(CONSUMER, "before")).await;
    assert_eq!(st, 200, "{sent}");
    let vkey_path = "/sealpost/v1/audit/public-key?format=vkey";
    let old_vkey = s.get_text(vkey_path, "").await.1.trim().to_owned();
    let old = s.published_key().await;
    let before = note_of(&s).await;
    let rotate = "/sealpost/v1/keys/audit/rotate";
    let (st, refused) = s
        .post(rotate, Some(&s.s("access_token")), serde_json::json!({}))
        .await;
    assert_eq!(st, 403, "{refused}");
    let (st, rotated) = s
        .post(rotate, Some(&s.s("internal_token")), serde_json::json!({}))
        .await;
    assert_eq!((st, &rotated["generation"]), (200, &2.into()), "{rotated}");
    let new_vkey = rotated["verifier_key"].as_str().expect("vkey").to_owned();
    assert_ne!(new_vkey, old_vkey);
    let handover = rotated["checkpoint"]["note"].as_str().expect("note");
    let said = open_note(handover, &old_vkey).expect("the old key opens the hand-over");
    assert!(
        said.contains(&format!("key-handover {old_vkey} {new_vkey}\n")),
        "{said}"
    );
    open_note(handover, &new_vkey).expect("the new key opens the hand-over");
    assert_eq!(s.get_text(vkey_path, "").await.1.trim(), new_vkey);
    let published = hex::encode(s.published_key().await.as_bytes());

    let (st, sent) = s.converse("again", text(CONSUMER, "after")).await;
    assert_eq!(st, 200, "{sent}");
    let after = note_of(&s).await;
    assert_ne!(after, before);
    open_note(&after, &new_vkey).expect("signed by the new key");
    assert!(open_note(&after, &old_vkey).is_err(), "not by the old one");

    let (st, report) = s
        .get("/sealpost/v1/dpo/retention?format=json", &s.s("dpo_token"))
        .await;
    assert_eq!(st, 200, "{report}");
    assert!(
        report["key_rotations"].as_array().is_some_and(|rows| rows
            .iter()
            .any(|r| r["key"] == "audit" && r["version"] == 2 && r["reason"] == "on demand")),
        "{report}"
    );

    s.stop().expect("a clean stop");
    let dir = s.data.dir.display().to_string();
    let verify = |key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(["audit", "verify", "--public-key", key, "--data-dir", &dir])
            .env_remove("SEALPOST_DATABASE_URL")
            .output()
            .expect("run sealpost")
    };
    let new = rotated["checkpoint"]["public_key"]
        .as_str()
        .expect("the new key")
        .to_owned();
    assert_eq!(new, published);
    for key in [hex::encode(old.as_bytes()), new] {
        let out = verify(&key);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let refused = verify(&hex::encode(stranger.as_bytes()));
    let said = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("untrusted"), "{said}");
    assert!(
        sealpost(["keys", "status", "--data-dir", &dir]).contains(&format!(
            "audit signing key: generation 2, verifier key {new_vkey}"
        ))
    );
}

/// RFC 6962's tree hash over leaf hashes, written out here (not Sealpost's Merkle code).
fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let mut split = 1;
    while split * 2 < leaves.len() {
        split *= 2;
    }
    let mut node = vec![1u8];
    node.extend_from_slice(&tree_hash(&leaves[..split]));
    node.extend_from_slice(&tree_hash(&leaves[split..]));
    sealpost_adapters::crypto::sha256(&node)
}

/// The log's hashes as C2SP `tlog-tiles` under the prefix `/sealpost/v1/audit/tlog/`: the
/// checkpoint note there verifies, and the leaf tiles of its tree (full ones, then the partial
/// one its size ends in) hash, as RFC 6962 says, to its root. A tile past the tree, a partial
/// tile wider than the tree and a path that is not a tile's canonical one answer 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_served_as_tlog_tiles() {
    let s = start();
    for i in 0..3 {
        let (st, sent) = s
            .converse(&format!("tile {i}"), text(CONSUMER, "a leaf"))
            .await;
        assert_eq!(st, 200, "{sent}");
    }
    let token = s.s("auditor_token");
    let vkey = s
        .get_text("/sealpost/v1/audit/public-key?format=vkey", "")
        .await
        .1
        .trim()
        .to_owned();
    let (st, note) = s
        .get_text("/sealpost/v1/audit/tlog/checkpoint", &token)
        .await;
    assert_eq!(st, 200, "{note}");
    let body = open_note(&note, &vkey).expect("the checkpoint verifies");
    let lines: Vec<&str> = body.lines().collect();
    let size: u64 = lines[1].parse().expect("size");
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines[2])
        .expect("root");
    assert!(size > 0 && size < 128, "{size}");
    let fetch = |path: String| {
        let request = s
            .request(
                reqwest::Method::GET,
                &format!("/sealpost/v1/audit/tlog/tile/{path}"),
            )
            .bearer_auth(token.clone());
        async move {
            let resp = request.send().await.expect("tile");
            (
                resp.status().as_u16(),
                resp.bytes().await.expect("bytes").to_vec(),
            )
        }
    };
    let mut leaves = Vec::new();
    for n in 0..=size / 256 {
        let width = (size - n * 256).min(256);
        if width == 0 {
            break;
        }
        let index = format!("{:03}", n);
        let path = match width {
            256 => format!("0/{index}"),
            w => format!("0/{index}.p/{w}"),
        };
        let (st, tile) = fetch(path.clone()).await;
        assert_eq!((st, tile.len() as u64), (200, width * 32), "{path}");
        leaves.extend(
            tile.chunks(32)
                .map(|c| <[u8; 32]>::try_from(c).expect("32 bytes")),
        );
    }
    assert_eq!(
        tree_hash(&leaves).to_vec(),
        root,
        "the tiles hash to the checkpoint's root"
    );
    let last = format!("{:03}", size / 256);
    for (path, why) in [
        // Reading evidence adds rows (access records), so the newest tree is a little larger
        // than the checkpoint above; 255 leaves is far past it.
        (format!("0/{last}.p/255"), "wider than the tree"),
        (format!("0/{:03}", size / 256 + 1), "past the tree"),
        ("0/0".to_owned(), "not canonical"),
        ("1/000".to_owned(), "no level-1 hashes yet"),
    ] {
        let (st, _) = fetch(path.clone()).await;
        assert_eq!(st, 404, "{path}: {why}");
    }
}
