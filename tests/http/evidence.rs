//! Evidence under `serve`: what the auditor and the DPO see (every refusal, never content or
//! numbers), retention across simulated days and its report, erasure with a certificate.

use crate::common::server::Node;
use crate::common::{canary, text, CONSUMER};
use crate::{assert_error, start};
use serde_json::{json, Value};
use std::time::Duration;

/// Under `serve`, the retention process runs beside the pipeline: once the simulated clock has
/// crossed 30 days, the epoch keys of the old messages are destroyed (EpochKeyShredded, a
/// plaintext column of the event log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_under_serve() {
    let s = start();
    let (sent, _) = s.converse("hi", text(CONSUMER, "hello")).await;
    assert_eq!(sent, 200);
    s.wait_inbox(CONSUMER, 1).await;
    s.advance(31 * 86_400).await;
    let shredded = s.await_events_of_type("EpochKeyShredded").await;
    assert!(shredded >= 1, "the retention process ran");
}

/// An auditor lists every access the internal analytics principal was refused, and neither the
/// auditor nor the DPO can read a message body or a phone number; no answer they get holds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_and_dpo_see_every_denial_but_never_content_or_numbers() {
    let s = start();
    let body = canary(1, "audited");
    let (st, sent) = s.converse("hello", text(CONSUMER, &body)).await;
    assert_eq!(st, 200, "{sent}");
    let id = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/sealpost/v1/messages/{id}");

    let (st, own) = s.get(&path, &s.s("access_token")).await;
    assert_eq!(st, 200, "the business reads its own message: {own}");
    assert_eq!(own["message"]["text"]["body"], body.as_str());

    let internal = s.s("internal_token");
    for _ in 0..3 {
        assert_error(&s.get(&path, &internal).await, 403, 200);
    }
    assert_error(
        &s.get("/sealpost/v1/audit/access", &internal).await,
        403,
        200,
    );
    let (st, stats) = s.get("/sealpost/v1/statistics", &internal).await;
    assert_eq!(st, 200, "analytics may read statistics: {stats}");
    assert!(
        stats["data"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["count"].is_null()),
        "one consumer is below the minimum group: every count suppressed: {stats}"
    );

    let key = s.published_key().await;
    for who in ["auditor_token", "dpo_token"] {
        sees_every_denial_but_no_content(&s, who, &id, &body, &key).await;
    }
    // The auditors' own refused reads are in the log as well.
    let (_, theirs) = s
        .get(
            "/sealpost/v1/audit/access?category=message_content&decision=denied&principal_kind=auditor",
            &s.s("dpo_token"),
        )
        .await;
    assert_eq!(
        theirs["data"].as_array().expect("rows").len(),
        1,
        "{theirs}"
    );
}

/// `who` (the auditor's or the DPO's token) is refused the message `id`, lists the three
/// refusals of the analytics token and its refused access-log read (paged, under a checkpoint
/// signed by `key`), and no answer it gets holds `body`, content or a number.
async fn sees_every_denial_but_no_content(
    s: &Node,
    who: &str,
    id: &str,
    body: &str,
    key: &ed25519_dalek::VerifyingKey,
) {
    let path = format!("/sealpost/v1/messages/{id}");
    let token = s.s(who);
    assert_error(&s.get(&path, &token).await, 403, 200);
    let (st, denials) = s
        .get(
            "/sealpost/v1/audit/access?principal_kind=operator&decision=denied",
            &token,
        )
        .await;
    assert_eq!(st, 200, "{denials}");
    let rows = denials["data"].as_array().expect("rows");
    let content_denials = rows
        .iter()
        .filter(|r| r["category"] == "message_content" && r["object"] == id)
        .count();
    assert_eq!(
        content_denials, 3,
        "{who}: every refusal is listed: {denials}"
    );
    assert!(
        rows.iter().any(|r| r["category"] == "access_log"),
        "{who}: the refused access-log read too"
    );
    assert!(rows
        .iter()
        .all(|r| r["decision"] == "denied" && r["principal_kind"] == "operator"));
    let checkpoint: sealpost_audit::log::Checkpoint =
        serde_json::from_value(denials["checkpoint"].clone()).expect("checkpoint");
    checkpoint
        .verify(Some(key))
        .expect("signed by the published key");
    assert!(checkpoint.size >= rows.last().expect("row")["position"].as_u64().expect("pos"));

    // Paging: one at a time, in order, no repeats.
    let (_, first) = s
        .get(
            "/sealpost/v1/audit/access?principal_kind=operator&decision=denied&limit=1",
            &token,
        )
        .await;
    let next = first["paging"]["next"].as_str().expect("a next page");
    let (_, second) = s
        .get(
            &format!("/sealpost/v1/audit/access?principal_kind=operator&decision=denied&limit=1&after={next}"),
            &token,
        )
        .await;
    assert!(first["data"][0]["position"].as_u64() < second["data"][0]["position"].as_u64());

    let (_, everything) = s.get("/sealpost/v1/audit/access?limit=1000", &token).await;
    let (_, report) = s
        .get_text("/sealpost/v1/dpo/retention?format=html", &token)
        .await;
    for text in [everything.to_string(), denials.to_string(), report] {
        assert!(!text.contains(body), "{who} saw a message body");
        assert!(!text.contains("CANARY-"), "{who} saw content");
        assert!(!text.contains(CONSUMER), "{who} saw a phone number");
    }
}

/// 35 simulated days of conversation under `serve`: the retention report's counts reconcile,
/// nothing live is older than 30 days, no key is overdue, and the JSON, CSV and HTML agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_five_days_of_traffic_give_a_retention_report_that_reconciles() {
    let s = start();
    for day in 0..35 {
        let (st, v) = s
            .converse(
                &format!("day {day}"),
                text(CONSUMER, &format!("answer {day}")),
            )
            .await;
        assert_eq!(st, 200, "day {day}: {v}");
        s.advance(86_400).await;
    }
    let dpo = s.s("dpo_token");
    // Wait until the retention process has finished its pass at the final time.
    let mut report = Value::Null;
    for _ in 0..200 {
        let (st, r) = s.get("/sealpost/v1/dpo/retention?format=json", &dpo).await;
        assert_eq!(st, 200, "{r}");
        let settled = r["overdue_keys"] == 0
            && r["messages"]["shredded"].as_u64() > Some(0)
            && r["messages"] == report["messages"];
        report = r;
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = &report["messages"];
    let (created, live, shredded) = (
        m["created"].as_u64().expect("created"),
        m["live"].as_u64().expect("live"),
        m["shredded"].as_u64().expect("shredded"),
    );
    assert_eq!(created, live + shredded, "{report}");
    assert!(created >= 70, "35 days × (inbound + answer): {report}");
    assert!(shredded >= 8, "the first days are shredded: {report}");
    assert_eq!(report["overdue_keys"], 0, "{report}");
    let oldest = report["oldest_live_message_age_ms"].as_i64().expect("age");
    assert!(oldest <= 30 * 86_400_000, "oldest live message {oldest} ms");
    assert!(report["days"].as_array().expect("days").len() >= 35);
    assert!(report["checkpoint"]["size"].as_u64() > Some(0));
    let destroyed: u64 = report["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["epoch_keys_destroyed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        destroyed >= 4,
        "epoch keys destroyed per day add up: {report}"
    );

    // The HTML against the JSON of the same moment: read between two JSON reports that agree
    // (a retention pass may still move the counts while the projection catches up).
    let mut same = None;
    for _ in 0..100 {
        let (_, before) = s.get("/sealpost/v1/dpo/retention?format=json", &dpo).await;
        let (st, html) = s
            .get_text("/sealpost/v1/dpo/retention?format=html", &dpo)
            .await;
        assert_eq!(st, 200);
        let (_, after) = s.get("/sealpost/v1/dpo/retention?format=json", &dpo).await;
        if before["messages"] == after["messages"]
            && before["overdue_keys"] == after["overdue_keys"]
        {
            same = Some((html, after));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (html, now) = same.expect("a moment the report holds still");
    let metrics = sealpost_projections::report::html_metrics(&html);
    for (metric, json) in [
        ("messages_created", &now["messages"]["created"]),
        ("messages_live", &now["messages"]["live"]),
        ("messages_shredded", &now["messages"]["shredded"]),
        ("overdue_keys", &now["overdue_keys"]),
    ] {
        assert_eq!(
            metrics.get(metric).map(String::as_str),
            Some(json.to_string().as_str()),
            "{metric}: HTML and JSON agree"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    if let Some(out) = std::env::var_os("SEALPOST_REPORT_OUT") {
        std::fs::write(out, &html).expect("write the report for rendering");
    }
    // Billing outlives the messages: every delivered answer is a (free, service) line.
    let (st, bill) = s.get("/sealpost/v1/billing", &s.s("internal_token")).await;
    assert_eq!(st, 200, "{bill}");
    let free: u64 = bill["data"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["category"] == "service" && l["pricing_model"] == "PMP")
        .map(|l| l["free"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(free, 35, "{bill}");
    assert!(!bill.to_string().contains(CONSUMER));
    let (st, csv) = s
        .get_text("/sealpost/v1/dpo/retention?format=csv", &dpo)
        .await;
    assert_eq!(st, 200);
    assert!(
        csv.contains(&format!("messages_created,{created}")),
        "{csv}"
    );
}

/// A consumer is erased mid-conversation: the certificate verifies against the published key,
/// the old messages are unreadable, repeating is safe, and the same number writing again is a
/// new subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_mid_conversation_is_certified_and_the_next_message_is_a_new_subject() {
    let s = start();
    let (st, sent) = s.converse("hello", text(CONSUMER, "before")).await;
    assert_eq!(st, 200, "{sent}");
    let old = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    let request = json!({"phone_number_id": s.s("phone_number_id"), "wa_id": CONSUMER});
    let (st, erased) = erase(&s, "access_token", request.clone()).await;
    assert_eq!(st, 201, "{erased}");
    assert!(
        !erased.to_string().contains(CONSUMER),
        "no number in a certificate"
    );
    let cert: sealpost_audit::certificate::ErasureCertificate =
        serde_json::from_value(erased["certificate"].clone()).expect("certificate");
    let key = s.published_key().await;
    cert.verify(&key).expect("the certificate verifies");
    let (_, vkey) = s
        .get_text("/sealpost/v1/audit/public-key?format=vkey", "")
        .await;
    crate::notes::open_note(&cert.checkpoint.note, vkey.trim())
        .expect("the certificate carries its checkpoint's signed note");
    assert!(cert.completed_at.is_some());
    assert!(cert.categories.iter().any(|c| c == "consumer phone number"));
    let mut forged = cert.clone();
    let mut bytes = hex::decode(&forged.inclusion_proof.path[0]).expect("hex");
    bytes[0] ^= 0x80;
    forged.inclusion_proof.path[0] = hex::encode(bytes);
    assert!(forged.verify(&key).is_err(), "a changed proof fails");

    let gone = s.read_message(&old).await;
    assert_eq!(gone["shredded"], true, "{gone}");

    // Repeating is safe: by number nothing is held any more; by subject, the same erasure.
    let (st, again) = erase(&s, "access_token", request.clone()).await;
    assert_eq!((st, &again["erased"]), (200, &json!(false)), "{again}");
    let (st, same) = erase(&s, "dpo_token", json!({"subject_id": cert.subject_id})).await;
    assert_eq!(st, 201, "{same}");
    assert_eq!(
        same["certificate"]["event"]["position"],
        json!(cert.event.position)
    );

    // The same number writes again: a new subject, which can be erased in its turn.
    let (st, _) = s.converse("hello again", text(CONSUMER, "after")).await;
    assert_eq!(st, 200);
    let (st, second) = erase(&s, "dpo_token", request).await;
    assert_eq!(st, 201, "{second}");
    assert_ne!(
        second["certificate"]["subject_id"],
        json!(cert.subject_id),
        "a later message from the same number is a new subject"
    );
    // The auditor cannot erase.
    assert_error(
        &erase(&s, "auditor_token", json!({"subject_id": cert.subject_id})).await,
        403,
        200,
    );
}

/// `POST /sealpost/v1/dpo/erasures` with the bootstrap token `who`.
async fn erase(s: &Node, who: &str, body: Value) -> (u16, Value) {
    s.post("/sealpost/v1/dpo/erasures", Some(&s.s(who)), body)
        .await
}
