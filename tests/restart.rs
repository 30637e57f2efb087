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

/// The body of a Local Storage election of `region`.
fn elect(region: &str) -> Value {
    json!({"storage_configuration": {
        "status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": region}})
}

/// The body of a registration (or deregistration).
fn pin() -> Value {
    json!({"messaging_product": "whatsapp", "pin": "123456"})
}

/// The phone writes `text` to the business number `display`, the webhook gets it, and the
/// business's `reply` reaches the phone.
async fn exchange(node: &Node, hook: &Hook, display: &str, text: &str, reply: &str) {
    let (st, v) = node
        .device_send(
            PHONE,
            json!({"to": display, "type": "text", "text": {"body": text}}),
        )
        .await;
    assert_eq!(st, 200, "{text}: {v}");
    eventually(60, "the inbound message at the webhook", || async {
        hook.messages()
            .iter()
            .any(|(_, body)| body == text)
            .then_some(())
    })
    .await;
    let (st, v) = node.send_text(PHONE, reply).await;
    assert_eq!(st, 200, "{v}");
    let answer = message_id(&v);
    eventually(60, "the reply at the phone", || async {
        shown(node)
            .await
            .iter()
            .any(|m| m["id"].as_str() == Some(answer.as_str()))
            .then_some(())
    })
    .await;
}

/// A Local Storage (DE) number: its consumers' messages reach the webhook, before and after a
/// restart, and it keeps taking them after the restart.
async fn local_storage_across_restarts(data: Data) {
    let hook = Hook::default();
    let callback = hook.listen().await;
    let mut node = start(&data);
    let display = node.s("display_phone_number");
    let (id, token) = (node.s("phone_number_id"), node.s("access_token"));
    node.subscribe(&callback).await;
    let (st, v) = node
        .post(&format!("/v21.0/{id}/settings"), Some(&token), elect("DE"))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = node
        .post(&format!("/v21.0/{id}/register"), Some(&token), pin())
        .await;
    assert_eq!(st, 200, "{v}");
    // Media of a DE number: uploaded, sent once the consumer has written, and still there
    // after restarts.
    let media = upload_png(&node).await;
    for (round, text) in ["hallo", "nach dem Neustart", "noch einmal"]
        .iter()
        .enumerate()
    {
        exchange(&node, &hook, &display, text, &format!("antwort {round}")).await;
        if round == 0 {
            let (st, v) = node
                .send(
                    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "image",
                             "image": {"id": media}}),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
        node = node.restart();
    }
    let (st, v) = node.get(&format!("/v21.0/{media}"), &token).await;
    assert_eq!(st, 200, "{v}");
    let url = v["url"].as_str().expect("url");
    let (st, _, bytes) = common::server::download(url, Some(&token)).await;
    assert_eq!(
        (st, bytes),
        (
            200,
            base64::engine::general_purpose::STANDARD
                .decode(PNG_B64)
                .expect("png")
        ),
        "the DE number's media after restarts"
    );
    node.stop().expect("a clean stop");
    reports_list_the_region_store(&data);
}

/// A number elects DE, talks, moves to IN (refused while registered, honoured once
/// deregistered), registers and talks again: its new keys and its Signal account are in IN's
/// store, and what it stored while in DE stays in DE's store until it expires.
async fn a_number_moves_between_local_storage_regions(data: Data) {
    let hook = Hook::default();
    let callback = hook.listen().await;
    let mut node = start(&data);
    let display = node.s("display_phone_number");
    let (id, token) = (node.s("phone_number_id"), node.s("access_token"));
    node.subscribe(&callback).await;
    for (region, text) in [("DE", "hallo aus Berlin"), ("IN", "namaste from Pune")] {
        if region == "IN" {
            let (st, v) = node
                .post(
                    &format!("/v21.0/{id}/settings"),
                    Some(&token),
                    elect(region),
                )
                .await;
            assert_eq!(st, 400, "refused while registered: {v}");
            let (st, v) = node
                .post(&format!("/v21.0/{id}/deregister"), Some(&token), pin())
                .await;
            assert_eq!(st, 200, "{v}");
        }
        let (st, v) = node
            .post(
                &format!("/v21.0/{id}/settings"),
                Some(&token),
                elect(region),
            )
            .await;
        assert_eq!(st, 200, "{region}: {v}");
        // A restart between the election and the registration: the number is attached anew
        // from wherever its account is, and follows its election.
        node = node.restart();
        let (st, v) = node
            .post(&format!("/v21.0/{id}/register"), Some(&token), pin())
            .await;
        assert_eq!(st, 200, "{v}");
        exchange(&node, &hook, &display, text, &format!("reply in {region}")).await;
    }
}

/// `sealpost report ropa` and `sealpost report retention` list the DE store beside the home
/// store, with where it is, and `sealpost audit verify` names it.
fn reports_list_the_region_store(data: &Data) {
    let mut args = vec!["--data-dir".to_owned(), data.dir.display().to_string()];
    if let Some(url) = &data.database_url {
        args.extend(["--database-url".to_owned(), url.clone()]);
    }
    let report = |kind: &str| -> Value {
        let mut a = vec![
            "report".to_owned(),
            kind.to_owned(),
            "--format".to_owned(),
            "json".to_owned(),
        ];
        a.extend(args.iter().cloned());
        serde_json::from_str(&common::server::sealpost(a)).expect("a JSON report")
    };
    let ropa = report("ropa");
    let stores = ropa["processor"]["transfers"]["stores"]
        .as_array()
        .expect("stores")
        .clone();
    let retention = report("retention");
    let listed = retention["stores"].as_array().expect("stores").clone();
    for stores in [stores, listed] {
        assert_eq!(stores.len(), 2, "{stores:?}");
        assert!(
            stores[0]["region"].is_null(),
            "the home store first: {stores:?}"
        );
        assert_eq!(stores[1]["region"], "DE");
        let location = stores[1]["location"].as_str().expect("location");
        match &data.database_url {
            None => assert!(location.ends_with("regions/DE"), "{location}"),
            Some(_) => assert!(location.contains("_de of database"), "{location}"),
        }
    }
    let mut verify = vec!["audit".to_owned(), "verify".to_owned()];
    verify.extend(args.iter().cloned());
    let verified = common::server::sealpost(verify);
    assert!(
        verified.contains("store DE (") && verified.contains("its own log of the region's"),
        "{verified}"
    );
    assert_eq!(
        verified.matches("OK: the log verifies").count(),
        2,
        "the home log and DE's: {verified}"
    );
    let references = verified
        .lines()
        .find_map(|l| l.strip_prefix("references from the home log: "))
        .expect("DE's references checked");
    assert!(
        references.ends_with(" checked, 0 broken") && !references.starts_with("0 "),
        "{references}"
    );
    // The retention report names the checkpoint of DE's own log.
    assert!(
        retention["stores"][1]["checkpoint"]["size"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{retention}"
    );
    let statement = ropa["processor"]["transfers"]["statement"]
        .as_str()
        .expect("statement");
    assert!(
        statement.contains("DE has a store of its own"),
        "{statement}"
    );
}

/// Tables whose rows of a Local Storage region may sit at home: the events' plaintext headers
/// (their bodies are in the region, counted under [`sealpost_testkit::SEALED_BODIES`]), the
/// evidence projection's rows and the registry of the regions' stores.
fn home_may_hold(table: &str) -> bool {
    ["sealpost_events", "sealpost_region_stores"].contains(&table)
        || table.starts_with("sealpost_ev_")
}

/// Every row of a Local Storage region sits in that region's store: its keys, index entries,
/// Signal state, snapshots and sealed event bodies. Home holds at most the headers.
fn rows_stay_in_their_region(rows: &sealpost_testkit::RowsByRegion) {
    let local = |code: &str| {
        code.parse::<sealpost_domain::Region>()
            .is_ok_and(|r| r.is_local_storage())
    };
    for ((store, table, region), n) in rows {
        if local(region) && !home_may_hold(table) {
            assert_eq!(
                store, region,
                "{n} {region} rows of {table} in the {store} store"
            );
        }
    }
}

/// The DE number's keys, Signal account and sealed events are in DE's store.
fn de_rows_in_de(rows: &sealpost_testkit::RowsByRegion) {
    for table in [
        "sealpost_keys",
        "sealpost_signal_accounts",
        sealpost_testkit::SEALED_BODIES,
    ] {
        let key = ("DE".to_owned(), table.to_owned(), "DE".to_owned());
        assert!(
            rows.get(&key).is_some_and(|n| *n > 0),
            "no DE rows of {table} in DE: {rows:?}"
        );
    }
}

/// Slices of DE's sealed bodies, each with the stores that hold it: DE's only.
fn only_de_holds(holders: Vec<sealpost_testkit::Holders>) {
    assert!(!holders.is_empty(), "DE has sealed bodies");
    for held in holders {
        assert_eq!(
            held,
            ["DE".to_owned()].into(),
            "a DE body is held elsewhere"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_local_storage_number_keeps_its_messages_across_restarts() {
    let root = tempfile::tempdir().expect("dir");
    let data = Data::new(root.path(), None);
    local_storage_across_restarts(data.clone()).await;
    let rows = sealpost_testkit::sqlite_rows_by_region(&data.dir).await;
    rows_stay_in_their_region(&rows);
    de_rows_in_de(&rows);
    let bodies = sealpost_testkit::sqlite_region_bodies(&data.dir, "DE", 8).await;
    only_de_holds(
        bodies
            .iter()
            .map(|b| sealpost_testkit::files_holding(&data.dir, b))
            .collect(),
    );
    // The region's store is the owner's only, like the home store.
    use std::os::unix::fs::PermissionsExt as _;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data.dir.join("regions/DE")), 0o700);
    assert_eq!(mode(&data.dir.join("regions/DE/keys.db")), 0o600);
    assert_eq!(mode(&data.dir.join("regions/DE/events.db")), 0o600);
    // A body changed in DE's store: `audit verify` finds it in DE's log and in the home log's
    // reference to it, and fails.
    let tampered = sealpost_testkit::sqlite_tamper_region_body(&data.dir, "DE").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data.dir)
        .output()
        .expect("run sealpost");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(" checked, 1 broken (first at home position "),
        "{text}"
    );
    assert!(
        text.contains(&format!("FAILED: first bad position {tampered}")),
        "{text}"
    );
}

/// After the move: every key-store row of a Local Storage region in its own store; the keys
/// written in DE still in DE; the new keys and the account in IN, none left in DE.
fn moved_rows_stay_where_written(rows: &sealpost_testkit::RowsByRegion) {
    rows_stay_in_their_region(rows);
    let n = |store: &str, table: &str| {
        rows.get(&(store.to_owned(), table.to_owned(), store.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert!(
        n("DE", "sealpost_keys") > 0,
        "what was written in DE stays: {rows:?}"
    );
    assert!(n("IN", "sealpost_keys") > 0, "{rows:?}");
    for table in ["sealpost_keys", sealpost_testkit::SEALED_BODIES] {
        assert!(n("DE", table) > 0, "what was written in DE stays: {rows:?}");
        assert!(n("IN", table) > 0, "{rows:?}");
    }
    assert_eq!(n("IN", "sealpost_signal_accounts"), 1, "{rows:?}");
    assert_eq!(
        n("DE", "sealpost_signal_accounts"),
        0,
        "the account left DE: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_number_moves_between_local_storage_regions() {
    let root = tempfile::tempdir().expect("dir");
    let data = Data::new(root.path(), None);
    a_number_moves_between_local_storage_regions(data.clone()).await;
    moved_rows_stay_where_written(&sealpost_testkit::sqlite_rows_by_region(&data.dir).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_number_moves_between_local_storage_regions() {
    let Some(pg) = sealpost_testkit::postgres_test_db("moves region").await else {
        return;
    };
    let root = tempfile::tempdir().expect("dir");
    a_number_moves_between_local_storage_regions(Data::new(root.path(), Some(&pg))).await;
    moved_rows_stay_where_written(&pg.rows_by_region().await);
    pg.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_local_storage_number_keeps_its_messages_across_restarts() {
    let Some(pg) = sealpost_testkit::postgres_test_db("restart local storage").await else {
        return;
    };
    let root = tempfile::tempdir().expect("dir");
    local_storage_across_restarts(Data::new(root.path(), Some(&pg))).await;
    let rows = pg.rows_by_region().await;
    rows_stay_in_their_region(&rows);
    de_rows_in_de(&rows);
    let mut holders = Vec::new();
    for body in pg.region_bodies("DE", 8).await {
        holders.push(pg.stores_holding(&body).await);
    }
    only_de_holds(holders);
    pg.drop_schema().await;
}

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
