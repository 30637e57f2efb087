//! Restart is an ordinary event: the real `sealpost serve` is stopped (SIGTERM) and started
//! again on the same data between every step of a conversation, on SQLite and on Postgres, and
//! the conversation goes on: inbound, answer, receipts, mark-read, media, and the phone writing
//! again. Every message is shown once at the phone and reaches the webhook.

mod common;

use base64::Engine as _;
use common::hook::Hook;
use common::server::{eventually, start, Data, Node};
use serde_json::{json, Value};

const PHONE: &str = "4915112345678";
/// A real 1x1 PNG.
const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

async fn upload_png(node: &Node) -> String {
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .expect("png");
    let (st, v) = node
        .upload(
            &node.s("access_token"),
            &[
                ("messaging_product", None, b"whatsapp"),
                ("file", Some(("dot.png", "image/png")), &png),
            ],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["id"].as_str().expect("media id").to_owned()
}

/// The statistics as the auditor reads them.
async fn statistics(node: &Node) -> Value {
    let token = node.s("auditor_token");
    let (st, v) = node.get("/sealpost/v1/statistics", &token).await;
    assert_eq!(st, 200, "{v}");
    v["data"].clone()
}

/// The number's quality rating as its business reads it.
async fn rating(node: &Node) -> String {
    let (_, v) = node.number().await;
    v["quality_rating"].as_str().unwrap_or_default().to_owned()
}

fn message_id(v: &Value) -> String {
    v["messages"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no message id in {v}"))
        .to_owned()
}

/// What the phone shows, by id; asserts nothing is shown twice.
async fn shown(node: &Node) -> Vec<Value> {
    let (messages, _) = node.inbox(PHONE).await;
    let mut ids: Vec<&str> = messages.iter().filter_map(|m| m["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "the phone shows a message twice");
    messages
}

async fn conversation_across_restarts(data: Data) {
    let hook = Hook::default();
    let callback = hook.listen().await;
    let mut node = start(&data);
    let display = node.s("display_phone_number");
    node.subscribe(&callback).await;
    node = node.restart();

    // The consumer writes first.
    let (st, v) = node
        .device_send(
            PHONE,
            json!({"to": display, "type": "text", "text": {"body": "hi"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let device_message = v["id"].as_str().expect("dev id").to_owned();
    node = node.restart();
    let inbound = eventually(60, "the inbound message at the webhook", || async {
        hook.messages()
            .into_iter()
            .find(|(_, body)| body == "hi")
            .map(|(id, _)| id)
    })
    .await;
    node = node.restart();

    // The business answers.
    let (st, v) = node.send_text(PHONE, "hello after a restart").await;
    assert_eq!(st, 200, "{v}");
    let answer = message_id(&v);
    node = node.restart();
    eventually(60, "the answer at the phone", || async {
        shown(&node)
            .await
            .iter()
            .any(|m| m["id"].as_str() == Some(answer.as_str()))
            .then_some(())
    })
    .await;
    node = node.restart();
    eventually(60, "delivered and read statuses at the webhook", || async {
        let s = hook.statuses(&answer);
        (s.iter().any(|x| x == "delivered") && s.iter().any(|x| x == "read")).then_some(())
    })
    .await;
    node = node.restart();

    // The business marks the consumer's message read; the receipt reaches the phone.
    let (st, v) = node
        .send(json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound}))
        .await;
    assert_eq!(st, 200, "{v}");
    node = node.restart();
    eventually(60, "the read receipt at the phone", || async {
        let (_, read) = node.inbox(PHONE).await;
        read.contains(&device_message).then_some(())
    })
    .await;
    node = node.restart();

    // Media: uploaded, restart, sent by id, restart, shown at the phone.
    let media = upload_png(&node).await;
    node = node.restart();
    let (st, v) = node
        .send(json!({
            "messaging_product": "whatsapp", "to": PHONE, "type": "image",
            "image": {"id": media, "caption": "a dot"}
        }))
        .await;
    assert_eq!(st, 200, "{v}");
    let image = message_id(&v);
    node = node.restart();
    eventually(60, "the image at the phone", || async {
        shown(&node)
            .await
            .iter()
            .find(|m| m["id"].as_str() == Some(image.as_str()))
            .map(|m| assert_eq!(m["content"]["type"], "image", "{m}"))
    })
    .await;

    // The phone writes again after all these restarts, and the business hears it once.
    let (st, v) = node
        .device_send(
            PHONE,
            json!({"to": display, "type": "text", "text": {"body": "still here"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    eventually(60, "the second inbound message at the webhook", || async {
        hook.messages()
            .iter()
            .any(|(_, body)| body == "still here")
            .then_some(())
    })
    .await;
    let shown_now = shown(&node).await;
    assert_eq!(shown_now.len(), 2, "the answer and the image, once each");

    // The evidence projections are persisted at stop and caught up at the next query: the
    // statistics after a restart are the statistics before it.
    let before = statistics(&node).await;
    assert!(
        before.as_array().is_some_and(|rows| !rows.is_empty()),
        "statistics: {before}"
    );
    node = node.restart();
    assert_eq!(
        statistics(&node).await,
        before,
        "the same figures after a restart"
    );
    node.stop().expect("a clean stop at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_conversation_survives_a_restart_between_every_step() {
    let root = tempfile::tempdir().expect("dir");
    conversation_across_restarts(Data::new(root.path(), None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_conversation_survives_a_restart_between_every_step() {
    let Some(pg) = sealpost_testkit::postgres_test_db("restart conversation").await else {
        return;
    };
    let root = tempfile::tempdir().expect("dir");
    conversation_across_restarts(Data::new(root.path(), Some(&pg))).await;
    pg.drop_schema().await;
}

#[path = "restart/local_storage.rs"]
mod local_storage;

/// Integrity signals are folded from the transport's recorded events: a number reported as
/// spam three times is YELLOW, and still YELLOW after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quality_rating_survives_a_restart() {
    let root = tempfile::tempdir().expect("dir");
    let data = Data::new(root.path(), None);
    let mut node = start(&data);
    let display = node.s("display_phone_number");
    for i in 0..3 {
        let (st, v) = node
            .post(
                &format!("/sim/v1/devices/49151123456{i:02}/report"),
                None,
                json!({"to": display, "type": "spam"}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    eventually(30, "YELLOW after three reports", || async {
        (rating(&node).await == "YELLOW").then_some(())
    })
    .await;
    node = node.restart();
    assert_eq!(
        rating(&node).await,
        "YELLOW",
        "the rating survives a restart"
    );
}

/// A media download URL (good for 5 minutes) is signed with the store's key, not the process's:
/// it still works after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_url_survives_a_restart() {
    let root = tempfile::tempdir().expect("dir");
    let data = Data::new(root.path(), None);
    let mut node = start(&data);
    let media = upload_png(&node).await;
    let token = node.s("access_token");
    let (st, v) = node.get(&format!("/v21.0/{media}"), &token).await;
    assert_eq!(st, 200, "{v}");
    let url = v["url"].as_str().expect("url").to_owned();
    let (st, _, before) = common::server::download(&url, Some(&token)).await;
    assert_eq!(st, 200);
    let old_base = node.base.clone();
    node = node.restart();
    // The same URL, at wherever the restarted server listens.
    let url = url.replacen(&old_base, &node.base, 1);
    let (st, _, after) = common::server::download(&url, Some(&token)).await;
    assert_eq!(
        (st, after),
        (200, before),
        "the URL signed before the restart"
    );
    // Still bound to its signature: a changed one is refused.
    let forged = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    let (st, _, _) = common::server::download(&forged, Some(&token)).await;
    assert_ne!(st, 200, "a forged signature");
}
