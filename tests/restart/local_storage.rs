//! Local Storage across restarts (issue 14, ADRs 0019 and 0020): a DE number's messages and
//! media, its rows found only in DE's store, the reports and `audit verify` naming DE's store
//! and log, a number moving from DE to IN, and the erasure of a DE consumer certified from DE.

use super::*;

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

/// A Local Storage (DE) number: its consumers' messages (text and an image) reach the webhook,
/// before and after a restart, its media are uploaded, sent and downloaded, and it keeps taking
/// messages after the restart.
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
        if round == 1 {
            de_audit_key_hands_over(&node).await;
        }
        if round == 0 {
            // The phone sends a photo: it reaches the webhook as an image.
            let (st, v) = node
                .device_send(
                    PHONE,
                    json!({"to": display, "type": "image",
                           "image": {"id": "media-77", "caption": "mein Rad"}}),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            eventually(60, "the phone's image at the webhook", || async {
                hook.values()
                    .iter()
                    .flat_map(|v| v["messages"].as_array().cloned().unwrap_or_default())
                    .any(|m| m["type"] == "image" && m["image"]["caption"] == "mein Rad")
                    .then_some(())
            })
            .await;
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
    data_in_use_is_accounted(&node).await;
    erasure_is_certified_from_de(&node, &id).await;
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
/// evidence projection's rows (without the consumers, whose tags are in the region's own rows:
/// ADR 0021, `tests/evidence_rows.rs`) and the registry of the regions' stores.
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

/// The layout after a DE number's conversation: every region's rows in its own store, DE's
/// keys, account and sealed bodies in DE's, and slices of those bodies (`holders`: the stores
/// that hold each) in DE's only.
fn de_layout(rows: &sealpost_testkit::RowsByRegion, holders: Vec<sealpost_testkit::Holders>) {
    rows_stay_in_their_region(rows);
    de_rows_in_de(rows);
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
    let bodies = sealpost_testkit::sqlite_region_bodies(&data.dir, "DE", 8).await;
    de_layout(
        &sealpost_testkit::sqlite_rows_by_region(&data.dir).await,
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
    let mut holders = Vec::new();
    for body in pg.region_bodies("DE", 8).await {
        holders.push(pg.stores_holding(&body).await);
    }
    de_layout(&pg.rows_by_region().await, holders);
    pg.drop_schema().await;
}

/// The DE consumer is erased: the certificate proves the erasure in the home log and its body
/// in DE's own log under DE's checkpoint, and a changed region proof fails it.
async fn erasure_is_certified_from_de(node: &Node, phone_number_id: &str) {
    let (st, erased) = node
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&node.s("access_token")),
            json!({"phone_number_id": phone_number_id, "wa_id": PHONE}),
        )
        .await;
    assert_eq!(st, 201, "{erased}");
    let cert: sealpost_audit::certificate::ErasureCertificate =
        serde_json::from_value(erased["certificate"].clone()).expect("certificate");
    let key = node.published_key().await;
    let (st, published) = node.get("/sealpost/v1/audit/public-key", "").await;
    assert_eq!(st, 200, "{published}");
    let de_key = published["regions"]["DE"]["public_key"]
        .as_str()
        .and_then(sealpost_audit::log::parse_public_key)
        .expect("DE's published key");
    let keys = std::collections::BTreeMap::from([("DE".to_owned(), de_key)]);
    cert.verify_with_region_keys(&key, &keys)
        .expect("the certificate verifies under the published keys");
    let region = cert
        .region
        .clone()
        .expect("a DE subject's certificate proves DE's log");
    assert_eq!(region.region, "DE");
    assert_eq!(region.checkpoint.origin, "sealpost/audit/v1/DE");
    assert_ne!(
        region.checkpoint.public_key, cert.checkpoint.public_key,
        "DE's own key"
    );
    let mut forged = cert.clone();
    if let Some(r) = forged.region.as_mut() {
        r.event.payload_sha256 = "00".repeat(32);
    }
    assert!(forged.verify(&key).is_err(), "a changed region proof fails");
    let mut stripped = cert.clone();
    stripped.region = None;
    assert!(
        stripped.verify(&key).is_err(),
        "a stripped region proof fails"
    );
    let other = std::collections::BTreeMap::from([("DE".to_owned(), key)]);
    assert!(
        cert.verify_with_region_keys(&key, &other).is_err(),
        "a region proof under another key fails"
    );
    assert!(
        cert.verify_with_region_keys(&key, &std::collections::BTreeMap::new())
            .is_err(),
        "a region proof whose region has no published key fails"
    );
}

/// DE's own log is handed over to a new signing key by the operator's route (ADR 0026): the
/// hand-over names DE's old and new verifier keys and is signed by both, the status and the
/// published key show the new one, and a region that is not Local Storage or has no store is
/// refused. (`audit verify` across the hand-over is checked after the last restart.)
async fn de_audit_key_hands_over(node: &Node) {
    let operator = node.s("internal_token");
    let de_key = |status: &Value| -> Value {
        status["region_audit_keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["region"] == "DE").cloned())
            .unwrap_or_else(|| panic!("DE's audit key in {status}"))
    };
    let (st, before) = node.get("/sealpost/v1/keys", &operator).await;
    assert_eq!(st, 200, "{before}");
    let old = de_key(&before);
    assert_eq!(old["generation"], 1, "{before}");
    let rotate = "/sealpost/v1/keys/audit/rotate";
    for (region, why) in [
        ("FR", "not a region"),
        (
            "NA",
            "not a Local Storage region: the home log's key needs no region",
        ),
        ("IN", "no store of its own"),
    ] {
        let (st, refused) = node
            .post(rotate, Some(&operator), json!({ "region": region }))
            .await;
        assert_eq!(st, 400, "{why}: {refused}");
        assert!(refused["error"]["code"].is_number(), "{refused}");
    }
    let (st, rotated) = node
        .post(rotate, Some(&operator), json!({"region": "DE"}))
        .await;
    assert_eq!(st, 200, "{rotated}");
    assert_eq!(
        (&rotated["region"], &rotated["generation"]),
        (&"DE".into(), &2.into())
    );
    let new_vkey = rotated["verifier_key"].as_str().expect("vkey");
    let old_vkey = old["verifier_key"].as_str().expect("vkey");
    assert_ne!(new_vkey, old_vkey);
    assert!(new_vkey.starts_with("sealpost/audit/v1/DE+"), "{new_vkey}");
    let note = rotated["checkpoint"]["note"].as_str().expect("note");
    assert!(
        note.contains(&format!("key-handover {old_vkey} {new_vkey}\n")),
        "{note}"
    );
    assert_eq!(
        note.matches("\u{2014} sealpost/audit/v1/DE ").count(),
        2,
        "signed by the old and the new key: {note}"
    );
    let (_, after) = node.get("/sealpost/v1/keys", &operator).await;
    assert_eq!(de_key(&after)["generation"], 2, "{after}");
    assert_eq!(
        after["audit_key"], before["audit_key"],
        "the home log keeps its key"
    );
    let (st, published) = node.get("/sealpost/v1/audit/public-key", "").await;
    assert_eq!(st, 200, "{published}");
    assert_eq!(
        published["regions"]["DE"]["public_key"], rotated["checkpoint"]["public_key"],
        "DE's new key is published"
    );
}

/// 61 minutes on: the retention duty has accounted what this node held of DE's data in memory
/// (a webhook attempt, a hand-over, a media transfer), none of it past the 60-minute limit,
/// and the DPO's report shows it.
async fn data_in_use_is_accounted(node: &Node) {
    // Something of DE's in memory since the restart: a media download.
    let media = upload_png(node).await;
    let token = node.s("access_token");
    let (st, v) = node.get(&format!("/v21.0/{media}"), &token).await;
    assert_eq!(st, 200, "{v}");
    let url = v["url"].as_str().expect("url");
    let (st, _, _) = common::server::download(url, Some(&token)).await;
    assert_eq!(st, 200);
    node.advance(61 * 60).await;
    let dpo = node.s("dpo_token");
    let row = eventually(60, "the hour's account of DE's data in use", || async {
        let (st, report) = node
            .get("/sealpost/v1/dpo/retention?format=json", &dpo)
            .await;
        assert_eq!(st, 200, "{report}");
        report["data_in_use"]
            .as_array()?
            .iter()
            .find(|r| r["region"] == "DE" && r["periods"].as_u64() >= Some(1))
            .cloned()
    })
    .await;
    assert!(row["held"].as_u64() >= Some(2), "{row}");
    assert_eq!(row["over_limit"], 0, "{row}");
    assert_eq!(row["limit_ms"], 3_600_000, "{row}");
    let longest = row["longest_ms"].as_i64().expect("longest");
    assert!((0..3_600_000).contains(&longest), "{row}");
}
