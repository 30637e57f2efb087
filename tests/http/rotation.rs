//! Ledger keys rotate in operation (issue 15 part 2, ADR 0024): on the retention pass's
//! schedule under `serve`, and on demand over the operator's route and with `sealpost keys
//! rotate ledger`; each rotation is an
//! event in the log, the running node seals under the new version at once, the old versions
//! keep opening what they sealed, and `sealpost keys status` shows each key's version.

use crate::common::server::{sealpost, Node};
use crate::common::{text, CONSUMER};
use crate::start;
use serde_json::json;

/// The event a rotation is recorded as.
const ROTATED: &str = "LedgerKeyRotated";

/// The versions `sealpost keys status` shows for the EU ledger keys of `business` and of the
/// deployment itself (business `0`: its access records, audit and accounts).
fn versions_shown(node: &Node, business: &str) -> (String, String) {
    let dir = node.data.dir.display().to_string();
    let status = sealpost(["keys", "status", "--data-dir", &dir]);
    assert!(status.contains("root keys: "), "{status}");
    let version = |owner: &str| {
        status
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&owner) && w.get(1) == Some(&"EU"))
            .and_then(|w| w.get(2).map(|v| (*v).to_owned()))
            .unwrap_or_else(|| panic!("the EU ledger key of {owner}: {status}"))
    };
    (version(business), version("0"))
}

/// The ledger-key version the first event of stream `id` is sealed under (the first four bytes
/// of its sealed payload).
async fn sealed_under(node: &Node, id: &str) -> u32 {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(node.data.dir.join("events.db"))
        .read_only(true);
    let pool = sqlx::sqlite::SqlitePool::connect_with(options)
        .await
        .expect("open");
    let (payload,): (Vec<u8>,) = sqlx::query_as(
        "SELECT payload FROM sealpost_events WHERE stream_id = $1 ORDER BY sequence LIMIT 1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("the message's first event");
    pool.close().await;
    u32::from_be_bytes(payload[..4].try_into().expect("a version"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_keys_rotate_on_schedule_and_on_demand() {
    let node = start();
    let business = node.s("business_id");
    let (st, sent) = node.converse("hallo", text(CONSUMER, "before")).await;
    assert_eq!(st, 200, "{sent}");
    let before = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(sealed_under(&node, &before).await, 1);
    // 31 days on: the retention pass rotates the month-old ledger keys, the business's and
    // the deployment's.
    node.advance(31 * 86_400).await;
    let mut seen = 0;
    for _ in 0..400 {
        seen = node.events_of_type(ROTATED).await;
        if seen >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(seen, 2, "each key rotated once");
    // The running node seals under the new version at once.
    let (st, sent) = node.converse("wieder", text(CONSUMER, "after")).await;
    assert_eq!(st, 200, "{sent}");
    let after = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(sealed_under(&node, &after).await, 2);
    // The DPO's retention report lists each rotation.
    let (st, report) = node
        .get(
            "/sealpost/v1/dpo/retention?format=json",
            &node.s("dpo_token"),
        )
        .await;
    assert_eq!(st, 200, "{report}");
    let listed = report["key_rotations"]
        .as_array()
        .expect("rotations")
        .clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().any(|r| r["business_id"] == business.as_str()
            && r["region"] == "EU"
            && r["version"] == 2
            && r["reason"] == "scheduled"),
        "{listed:?}"
    );
    // The operator's route: the same view, and a rotation now, which the running node seals
    // under at once; nobody else may use it.
    let (st, refused) = node.get("/sealpost/v1/keys", &node.s("access_token")).await;
    assert_eq!(st, 403, "{refused}");
    let operator = node.s("internal_token");
    let (st, keys) = node.get("/sealpost/v1/keys", &operator).await;
    assert_eq!(st, 200, "{keys}");
    assert!(
        keys["custody"].as_str().is_some_and(|c| !c.is_empty()),
        "{keys}"
    );
    assert!(
        keys["ledger_keys"].as_array().is_some_and(|k| k
            .iter()
            .any(|k| k["business_id"] == business.as_str() && k["version"] == 2)),
        "{keys}"
    );
    let rotate = "/sealpost/v1/keys/ledger/rotate";
    let (st, bad) = node
        .post(
            rotate,
            Some(&operator),
            json!({"business_id": business, "region": "XX"}),
        )
        .await;
    assert_eq!((st, &bad["error"]["code"]), (400, &json!(131_009)), "{bad}");
    let (st, rotated) = node
        .post(
            rotate,
            Some(&operator),
            json!({"business_id": business, "region": "EU"}),
        )
        .await;
    assert_eq!((st, &rotated["version"]), (200, &json!(3)), "{rotated}");
    let (st, sent) = node.converse("drei", text(CONSUMER, "third")).await;
    assert_eq!(st, 200, "{sent}");
    let third = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(sealed_under(&node, &third).await, 3);
    // Both versions open after a restart.
    let mut node = node.restart();
    let read = node.read_message(&after).await;
    assert_eq!(read["message"]["text"]["body"], "after");
    node.stop().expect("a clean stop");
    assert_eq!(
        node.events_of_type(ROTATED).await,
        3,
        "not again within its period"
    );
    assert_eq!(versions_shown(&node, &business), ("3".into(), "2".into()));

    // On demand: recorded the same way, shown at once.
    let dir = node.data.dir.display().to_string();
    let said = sealpost([
        "keys",
        "rotate",
        "ledger",
        "--business",
        &business,
        "--region",
        "EU",
        "--data-dir",
        &dir,
    ]);
    assert!(said.contains("rotated to version 4"), "{said}");
    assert_eq!(versions_shown(&node, &business), ("4".into(), "2".into()));
    assert_eq!(node.events_of_type(ROTATED).await, 4);
    let report: serde_json::Value = serde_json::from_str(&sealpost([
        "report",
        "retention",
        "--format",
        "json",
        "--data-dir",
        &dir,
    ]))
    .expect("a JSON report");
    let last = report["key_rotations"]
        .as_array()
        .and_then(|r| r.last().cloned())
        .expect("rotations");
    assert_eq!(
        (&last["version"], &last["reason"]),
        (&4.into(), &"on demand".into())
    );
}
