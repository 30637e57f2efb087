//! A region's root key rotates under load (issue 15 part 2, ADR 0025): under `serve`, while a
//! client keeps uploading media (each a new key wrapped under the root) and sending, the
//! operator rotates EU's root key; every key is rewrapped online, no request fails, what was
//! stored before still reads; the old generation is destroyed only once the rotation has
//! settled, and its key file is gone; each step is in the log and in the DPO's report.

use crate::common::server::{download, eventually, sealpost, Node};
use crate::common::{text, CONSUMER};
use crate::start;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const ROTATE: &str = "/sealpost/v1/keys/root/rotate";
const RETIRE: &str = "/sealpost/v1/keys/root/retire";

/// EU's root key as `GET /sealpost/v1/keys` shows it.
pub(crate) async fn eu_root(node: &Node) -> Value {
    let (st, keys) = node
        .get("/sealpost/v1/keys", &node.s("internal_token"))
        .await;
    assert_eq!(st, 200, "{keys}");
    keys["root_keys"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["region"] == "EU").cloned())
        .unwrap_or_else(|| panic!("EU's root key: {keys}"))
}

/// Uploads a small document; its media id.
async fn upload(node: &Node, body: &[u8]) -> (u16, Value) {
    node.upload(
        &node.s("access_token"),
        &[
            ("messaging_product", None, b"whatsapp"),
            ("file", Some(("note.txt", "text/plain")), body),
        ],
    )
    .await
}

/// The bytes of media `id`, through its download URL.
async fn media_bytes(node: &Node, id: &str) -> Vec<u8> {
    let token = node.s("access_token");
    let (st, meta) = node.get(&format!("/v21.0/{id}"), &token).await;
    assert_eq!(st, 200, "{meta}");
    let (st, _, bytes) = download(meta["url"].as_str().expect("url"), Some(&token)).await;
    assert_eq!(st, 200);
    bytes
}

/// Uploads and sends until `stop`; every answer that was not a 200.
async fn load(node: &Node, stop: &AtomicBool) -> (u32, Vec<(u16, Value)>) {
    let (mut done, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Acquire) {
        done += 1;
        let (st, up) = upload(node, format!("during {done}").as_bytes()).await;
        if st != 200 {
            failed.push((st, up));
        }
        let (st, sent) = node
            .send_text(CONSUMER, &format!("during the rotation {done}"))
            .await;
        if st != 200 {
            failed.push((st, sent));
        }
    }
    (done, failed)
}

/// The operator rotates EU's root key, waits for the rewrap, and destroys generation 1 once
/// the rotation has settled; then stops the load.
async fn rotate_and_retire(node: &Node, stop: &AtomicBool) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    rotate_eu_and_destroy_the_first(node).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
}

/// Over the operator's routes: EU's root key to generation 2, the rewrap awaited, generation 1
/// refused while too recent and destroyed after.
pub(crate) async fn rotate_eu_and_destroy_the_first(node: &Node) {
    let operator = node.s("internal_token");
    let (st, rotated) = node
        .post(ROTATE, Some(&operator), json!({"region": "EU"}))
        .await;
    assert_eq!((st, &rotated["generation"]), (202, &json!(2)), "{rotated}");
    // The background rewrap ends (a request that read generation 1 just before the rotation
    // may still wrap one key under it: the retirement below rewraps that one too).
    eventually(60, "the rewrap ends", || async {
        (node.events_of_type("RootKeysRewrapped").await >= 1).then_some(())
    })
    .await;
    assert_eq!(eu_root(node).await["generation"], 2);
    let (st, early) = node
        .post(
            RETIRE,
            Some(&operator),
            json!({"region": "EU", "generation": 1}),
        )
        .await;
    assert_eq!(st, 409, "too soon after the rotation: {early}");
    let (st, current) = node
        .post(
            RETIRE,
            Some(&operator),
            json!({"region": "EU", "generation": 2}),
        )
        .await;
    assert_eq!(st, 400, "the current generation: {current}");
    node.advance(11 * 60).await;
    let (st, retired) = node
        .post(
            RETIRE,
            Some(&operator),
            json!({"region": "EU", "generation": 1}),
        )
        .await;
    assert_eq!(
        (st, &retired["destroyed"]),
        (200, &json!(true)),
        "{retired}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_key_rotates_under_load_and_its_old_generation_is_destroyed() {
    let node = start();
    let (st, sent) = node.converse("hallo", text(CONSUMER, "before")).await;
    assert_eq!(st, 200, "{sent}");
    let before = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    let (st, up) = upload(&node, b"stored before the rotation").await;
    assert_eq!(st, 200, "{up}");
    let media = up["id"].as_str().expect("media id").to_owned();
    let (st, refused) = node
        .post(
            ROTATE,
            Some(&node.s("access_token")),
            json!({"region": "EU"}),
        )
        .await;
    assert_eq!(st, 403, "only the operator rotates: {refused}");
    let (st, bad) = node
        .post(
            ROTATE,
            Some(&node.s("internal_token")),
            json!({"region": "XX"}),
        )
        .await;
    assert_eq!((st, &bad["error"]["code"]), (400, &json!(131_009)), "{bad}");

    let stop = AtomicBool::new(false);
    let ((done, failed), ()) = tokio::join!(load(&node, &stop), rotate_and_retire(&node, &stop));
    assert!(done >= 2, "the load ran throughout ({done} rounds)");
    assert!(failed.is_empty(), "no request failed: {failed:?}");

    // What was stored before reads, now and after a restart, under generation 2 alone.
    let keys = node.data.dir.join("root-keys");
    assert!(
        !keys.join("EU.key").exists(),
        "generation 1's key file is gone"
    );
    assert!(keys.join("EU.2.key").exists(), "generation 2's key file");
    assert_eq!(
        media_bytes(&node, &media).await,
        b"stored before the rotation".to_vec()
    );
    let mut node = node.restart();
    let read = node.read_message(&before).await;
    assert_eq!(read["message"]["text"]["body"], "before");
    assert_eq!(
        media_bytes(&node, &media).await,
        b"stored before the rotation".to_vec()
    );
    let (st, after) = node.send_text(CONSUMER, "after the restart").await;
    assert_eq!(st, 200, "{after}");

    // Each step is in the log and in the DPO's retention report.
    assert_eq!(node.events_of_type("RootKeyRotated").await, 1);
    assert_eq!(node.events_of_type("RootKeyDestroyed").await, 1);
    let (st, report) = node
        .get(
            "/sealpost/v1/dpo/retention?format=json",
            &node.s("dpo_token"),
        )
        .await;
    assert_eq!(st, 200, "{report}");
    let root: Vec<(Value, String)> = report["key_rotations"]
        .as_array()
        .expect("rotations")
        .iter()
        .filter(|r| r["key"] == "root" && r["region"] == "EU")
        .map(|r| {
            (
                r["version"].clone(),
                r["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(root.len() >= 3, "{root:?}");
    assert_eq!(root[0], (json!(2), "on demand".to_owned()), "{root:?}");
    let (last, rewraps) = root[1..].split_last().expect("rows");
    assert!(
        rewraps
            .iter()
            .all(|(g, why)| *g == 2 && why.ends_with("keys rewrapped")),
        "{root:?}"
    );
    assert_eq!(*last, (json!(1), "old generation destroyed".to_owned()));

    // The CLI: the status shows generation 2, and a rotation to 3 rewraps at once.
    node.stop().expect("a clean stop");
    let dir = node.data.dir.display().to_string();
    let eu = |status: &str| {
        status
            .lines()
            .find(|l| l.trim_start().starts_with("EU "))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("EU's root key: {status}"))
    };
    assert_eq!(eu(&sealpost(["keys", "status", "--data-dir", &dir])), "2");
    let said = sealpost([
        "keys",
        "rotate",
        "root",
        "--region",
        "EU",
        "--data-dir",
        &dir,
    ]);
    assert!(said.contains("rotated to generation 3"), "{said}");
    assert!(said.contains("rewrapped "), "{said}");
    let status = sealpost(["keys", "status", "--data-dir", &dir]);
    assert_eq!(eu(&status), "3");
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("EU ") && l.ends_with(" 0")),
        "nothing left to rewrap: {status}"
    );
}
