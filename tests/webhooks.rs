//! Webhooks end to end: the real server, a real local listener, the hub.challenge handshake,
//! signed notifications retried after 500s, de-duplication by id, and no loss across a crash.

mod common;

use base64::Engine as _;
use common::hook::Hook;
use common::server::{download, poll, start, Data, Node, Serve};
use common::{canary, CONSUMER};
use serde_json::{json, Value};
use std::time::Duration;

/// The steps in order, on one server and one listener: each inbound message counts at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_retried_deduplicated_and_survive_a_crash() {
    let hook = Hook::default();
    let url = hook.listen().await;
    let data = Data::fresh(None);
    let s = start(&data);
    the_handshake_subscribes(&s, &hook, &url).await;
    let inbound = an_inbound_message_is_retried_and_signed(&s, &hook).await;
    the_business_marks_it_read(&s, &inbound).await;
    answers_have_statuses(&s, &hook, &inbound.user_id).await;
    answers_by_user_id(&s, &inbound.user_id).await;
    a_photo_arrives_as_a_media_id(&s, &hook).await;
    a_crash_while_the_endpoint_is_down_loses_nothing(s, &hook).await;
}

/// Webhooks over https (issue 16): callbacks are `https://` as in the Cloud API. A listener
/// whose certificate comes from a CA made in this test is refused until the server is told to
/// trust that CA (`--webhook-ca-file`); then the handshake and a signed notification go over
/// TLS. Plain `http://` is refused for a host that is not loopback, before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_go_over_https_to_a_listener_the_server_trusts() {
    let hook = Hook::default();
    let (url, ca_pem) = hook.listen_tls().await;
    let data = Data::fresh(None);
    let sub = |s: &Node, callback: &str| {
        let path = format!("/v21.0/{}/subscriptions", s.s("app_id"));
        let body = json!({"object": "whatsapp_business_account", "callback_url": callback,
                          "verify_token": "my-verify-token", "fields": ["messages"]});
        (path, body)
    };
    let mut s = start(&data);
    let (path, body) = sub(&s, &url);
    let (st, untrusted) = s.post(&path, Some(&s.s("access_token")), body).await;
    assert_eq!(
        (st, &untrusted["error"]["code"]),
        (400, &json!(100)),
        "{untrusted}"
    );
    assert_eq!(
        hook.verifications(),
        0,
        "no TLS session with an untrusted certificate"
    );
    for (callback, why) in [
        ("http://hooks.example.com/wa", "plain http off loopback"),
        ("ftp://127.0.0.1/hook", "not http(s)"),
        ("not a url", "not a URL"),
    ] {
        let (path, body) = sub(&s, callback);
        let (st, refused) = s.post(&path, Some(&s.s("access_token")), body).await;
        assert_eq!(st, 400, "{why}: {refused}");
        let said = refused["error"]["error_data"]["details"]
            .as_str()
            .unwrap_or("");
        assert!(said.contains("https://"), "{why}: {refused}");
    }
    s.stop().expect("a clean stop");

    let ca_file = data.dir.parent().expect("parent").join("webhook-ca.pem");
    std::fs::write(&ca_file, &ca_pem).expect("CA file");
    let mut s = Serve::on(&data)
        .args(["--webhook-ca-file".as_ref(), ca_file.as_os_str()])
        .start();
    s.subscribe(&url).await;
    assert_eq!(hook.verifications(), 1, "the handshake went over TLS");
    phone_writes(&s, canary(9, "tls")).await;
    let got = hook.wait_for(|v| !v.is_empty()).await;
    assert_eq!(
        got[0]["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        canary(9, "tls")
    );
    let attempt = hook.attempts().pop().expect("an attempt");
    assert_eq!(
        attempt.signature,
        format!(
            "sha256={}",
            sealpost_adapters::crypto::hmac_hex(s.s("app_secret").as_bytes(), &attempt.body)
        ),
        "signed over the exact bytes"
    );
    s.stop().expect("a clean stop");

    // A CA file that holds no certificate stops the start, naming the file.
    std::fs::write(&ca_file, "not a certificate").expect("CA file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data.dir)
        .arg("--webhook-ca-file")
        .arg(&ca_file)
        .env_remove("SEALPOST_DATABASE_URL")
        .output()
        .expect("run sealpost");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("webhook-ca.pem"), "{said}");
}

/// The consumer's phone writes `text` to the business number; the device's answer.
async fn phone_writes(s: &Node, text: String) -> Value {
    let (st, sent) = s
        .device_send(
            CONSUMER,
            json!({"to": s.s("display_phone_number"), "type": "text", "text": {"body": text}}),
        )
        .await;
    assert_eq!(st, 200, "{sent}");
    sent
}

/// A wrong verify token is refused, the right one (form-encoded) subscribes; another principal
/// may not subscribe the app.
async fn the_handshake_subscribes(s: &Node, hook: &Hook, url: &str) {
    let sub = format!("/v21.0/{}/subscriptions", s.s("app_id"));
    let bad = s.post(&sub, Some(&s.s("access_token")), json!({"object": "whatsapp_business_account", "callback_url": url, "verify_token": "wrong", "fields": ["messages"]})).await;
    assert_eq!((bad.0, bad.1["error"]["code"].clone()), (400, json!(100)));
    let form = s
        .request(reqwest::Method::POST, &sub)
        .header("authorization", format!("Bearer {}", s.s("access_token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("object=whatsapp_business_account&callback_url={}&verify_token=my-verify-token&fields=messages", url.replace(':', "%3A").replace('/', "%2F")))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(form.status().as_u16(), 200);
    assert_eq!(hook.verifications(), 2);
    let other = s.post(&sub, Some(&s.s("auditor_token")), json!({"object": "whatsapp_business_account", "callback_url": url, "verify_token": "my-verify-token"})).await;
    assert_eq!(other.0, 403, "only the app's own business may subscribe it");
}

/// The consumer's first message: the id the phone sent it with, its wamid, the consumer's
/// business-scoped user id.
struct Inbound {
    device_id: String,
    id: String,
    user_id: String,
}

/// An inbound message: the endpoint answers 500 twice, then 200; the notification is in the
/// Cloud API shape, with one notification id and a valid signature every time.
async fn an_inbound_message_is_retried_and_signed(s: &Node, hook: &Hook) -> Inbound {
    hook.script(&[500, 500]);
    let sent = phone_writes(s, canary(0, "in")).await;
    let device_id = sent["id"].as_str().expect("device's message id").to_owned();
    let got = hook.wait_for(|v| !v.is_empty()).await;
    let value = &got[0]["entry"][0]["changes"][0]["value"];
    assert_eq!(got[0]["object"], "whatsapp_business_account");
    assert_eq!(got[0]["entry"][0]["id"], s.s("waba_id").as_str());
    assert_eq!(got[0]["entry"][0]["changes"][0]["field"], "messages");
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(
        value["metadata"],
        json!({"display_phone_number": s.s("display_phone_number"), "phone_number_id": s.s("phone_number_id")})
    );
    assert_eq!(value["contacts"][0]["wa_id"], CONSUMER);
    let user_id = value["contacts"][0]["user_id"]
        .as_str()
        .expect("user id")
        .to_owned();
    assert!(
        user_id.starts_with("DE.")
            && user_id.len() == 23
            && user_id[3..].bytes().all(|b| b.is_ascii_digit()),
        "{user_id}"
    );
    assert!(!user_id.contains(CONSUMER));
    let m = &value["messages"][0];
    assert_eq!(
        (m["from"].as_str(), m["type"].as_str()),
        (Some(CONSUMER), Some("text"))
    );
    assert_eq!(m["text"]["body"], canary(0, "in"));
    assert!(m["timestamp"]
        .as_str()
        .is_some_and(|t| t.parse::<u64>().is_ok()));
    let id = m["id"].as_str().expect("id").to_owned();
    retried_under_one_id_and_signed(s, hook, &id);
    Inbound {
        device_id,
        id,
        user_id,
    }
}

/// Every attempt at the notification of message `id`: 500, 500, 200, under the same
/// notification id, signed with the app secret over the exact bytes.
fn retried_under_one_id_and_signed(s: &Node, hook: &Hook, id: &str) {
    let attempts: Vec<_> = hook
        .attempts()
        .into_iter()
        .filter(|a| String::from_utf8_lossy(&a.body).contains(id))
        .collect();
    assert_eq!(
        attempts.iter().map(|a| a.answered).collect::<Vec<_>>(),
        vec![500, 500, 200],
        "retried after each 500"
    );
    for a in &attempts {
        assert_eq!(
            a.notification_id, attempts[0].notification_id,
            "the same notification id every time"
        );
        let expected = format!(
            "sha256={}",
            sealpost_adapters::crypto::hmac_hex(s.s("app_secret").as_bytes(), &a.body)
        );
        assert_eq!(
            a.signature, expected,
            "signed with the app secret over the exact bytes"
        );
    }
}

/// The business marks it read (POST and PUT, with the typing indicator); the read receipt
/// reaches the consumer's phone (under the id the phone sent it with); an unknown id is 100.
async fn the_business_marks_it_read(s: &Node, inbound: &Inbound) {
    let messages = format!("/v21.0/{}/messages", s.s("phone_number_id"));
    let token = s.s("access_token");
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound.id, "typing_indicator": {"type": "text"}});
    assert_eq!(
        s.post(&messages, Some(&token), read.clone()).await,
        (200, json!({"success": true}))
    );
    let (put, _) = s
        .call(reqwest::Method::PUT, &messages, Some(&token), Some(read))
        .await;
    assert_eq!(put, 200);
    let receipted = poll(
        Duration::from_millis(25),
        10,
        "the read receipt",
        || async {
            let (_, read) = s.inbox(CONSUMER).await;
            read.contains(&inbound.device_id).then_some(read)
        },
    )
    .await;
    assert_eq!(
        receipted,
        std::slice::from_ref(&inbound.device_id),
        "the business's read receipt reached the device"
    );
    let unknown = s.post(&messages, Some(&token), json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.doesnotexist"})).await;
    assert_eq!(
        (unknown.0, unknown.1["error"]["code"].clone()),
        (400, json!(100))
    );
}

/// The business answers: statuses sent, delivered, read, with callback data, pricing and the
/// consumer's user id.
async fn answers_have_statuses(s: &Node, hook: &Hook, user_id: &str) {
    let (st, v) = s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "text", "text": {"body": canary(0, "out")}, "biz_opaque_callback_data": "order-42"})).await;
    assert_eq!(st, 200, "{v}");
    let out_id = v["messages"][0]["id"].as_str().expect("id").to_owned();
    let got = hook
        .wait_for(|v| v.iter().filter(|n| n.to_string().contains(&out_id)).count() >= 3)
        .await;
    let statuses: Vec<&Value> = got
        .iter()
        .map(|n| &n["entry"][0]["changes"][0]["value"])
        .filter(|v| v["statuses"][0]["id"] == out_id.as_str())
        .collect();
    let names: Vec<&str> = statuses
        .iter()
        .filter_map(|v| v["statuses"][0]["status"].as_str())
        .collect();
    assert_eq!(names, ["sent", "delivered", "read"]);
    let conversation = &statuses[0]["statuses"][0]["conversation"];
    let conversation_id = conversation["id"].as_str().expect("a conversation id");
    assert!(
        conversation_id.len() == 32 && !conversation_id.contains(CONSUMER),
        "{conversation}"
    );
    assert!(
        conversation["expiration_timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<u64>().is_ok()),
        "the sent status says when the conversation ends: {conversation}"
    );
    for v in &statuses {
        assert_eq!(v["statuses"][0]["recipient_id"], CONSUMER);
        assert_eq!(v["statuses"][0]["biz_opaque_callback_data"], "order-42");
        // A service message inside the window is free: the webhook says what billing counts.
        assert_eq!(
            v["statuses"][0]["pricing"],
            json!({"billable": false, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"})
        );
        assert_eq!(v["statuses"][0]["conversation"]["id"], conversation_id);
        assert_eq!(
            v["statuses"][0]["conversation"]["origin"],
            json!({"type": "service"})
        );
        assert_eq!(
            v["contacts"][0]["user_id"], user_id,
            "the same user id in status notifications"
        );
    }
    // The billing projection counts the same messages as free, none as billable.
    let lines = poll(
        Duration::from_millis(50),
        20,
        "the billing line",
        || async {
            let (_, bill) = s.get("/sealpost/v1/billing", &s.s("internal_token")).await;
            let service: Vec<Value> = bill["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|l| l["category"] == "service")
                .collect();
            (!service.is_empty() && service.iter().all(|l| l["free"].as_u64() > Some(0)))
                .then_some(service)
        },
    )
    .await;
    assert!(lines.iter().all(|l| l["billable"] == 0), "{lines:?}");
}

/// Answering by business-scoped user id: the business never needs the number.
async fn answers_by_user_id(s: &Node, user_id: &str) {
    let by_user = s.send(json!({"messaging_product": "whatsapp", "recipient": user_id, "type": "text", "text": {"body": "by user id"}})).await;
    assert_eq!(by_user.0, 200, "{}", by_user.1);
    assert_eq!(
        by_user.1["contacts"],
        json!([{"input": user_id, "user_id": user_id}])
    );
    let unknown_user = s.send(json!({"messaging_product": "whatsapp", "recipient": "DE.00000000000000000000", "type": "text", "text": {"body": "x"}})).await;
    assert_eq!(
        (unknown_user.0, unknown_user.1["error"]["code"].clone()),
        (400, json!(131_009))
    );
    let what = "the message addressed by user id reached the device";
    poll(Duration::from_millis(25), 10, what, || async {
        s.shows_text(CONSUMER, "by user id").await.then_some(())
    })
    .await;
}

/// A photo from the phone: the webhook carries a media id, MIME type and SHA-256; the
/// business fetches the description, then the bytes through the short-lived URL.
async fn a_photo_arrives_as_a_media_id(s: &Node, hook: &Hook) {
    let photo: Vec<u8> = canary(2, "photo")
        .into_bytes()
        .into_iter()
        .chain(0..=255u8)
        .collect();
    let (st, _) = s
        .device_send(
            CONSUMER,
            json!({"to": s.s("display_phone_number"), "type": "image", "image": {"data": base64::engine::general_purpose::STANDARD.encode(&photo), "mime_type": "image/jpeg", "caption": "my bike"}}),
        )
        .await;
    assert_eq!(st, 200);
    let got = hook
        .wait_for(|v| v.iter().any(|n| n.to_string().contains("my bike")))
        .await;
    let image = got
        .iter()
        .map(|n| &n["entry"][0]["changes"][0]["value"]["messages"][0])
        .find(|m| m["type"] == "image")
        .expect("image notification")["image"]
        .clone();
    let sha = hex::encode(sealpost_adapters::crypto::sha256(&photo));
    assert_eq!(
        (
            image["mime_type"].as_str(),
            image["sha256"].as_str(),
            image["caption"].as_str()
        ),
        (Some("image/jpeg"), Some(sha.as_str()), Some("my bike"))
    );
    assert!(
        image.get("data").is_none(),
        "the bytes stay behind the media id"
    );
    let media_id = image["id"].as_str().expect("media id");
    let token = s.s("access_token");
    let (_, meta) = s.get(&format!("/v21.0/{media_id}"), &token).await;
    assert_eq!(meta["sha256"], sha.as_str());
    let (_, _, bytes) = download(meta["url"].as_str().expect("url"), Some(&token)).await;
    assert_eq!(bytes, photo);
}

/// A crash (SIGKILL) while the endpoint is down loses nothing: the restarted server delivers
/// what was pending, and de-duplicated by message id the business has each inbound message
/// exactly once.
async fn a_crash_while_the_endpoint_is_down_loses_nothing(s: Node, hook: &Hook) {
    hook.set_down(true);
    let (st, _) = s
        .device_send(
            CONSUMER,
            json!({"to": s.s("display_phone_number"), "type": "text", "text": {"body": canary(1, "in")}}),
        )
        .await;
    assert_eq!(st, 200);
    // Wait (a while at most) for the first attempt to meet the endpoint down.
    for _ in 0..200 {
        if hook
            .attempts()
            .iter()
            .any(|a| String::from_utf8_lossy(&a.body).contains(&canary(1, "in")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let data = s.data.clone();
    s.kill(); // no graceful shutdown
    hook.set_down(false);
    let _again = start(&data);
    let got = hook
        .wait_for(|v| v.iter().any(|n| n.to_string().contains(&canary(1, "in"))))
        .await;
    let mut ids: Vec<String> = got
        .iter()
        .filter_map(|n| {
            n["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

/// Webhook fields are honoured (issue 16): an app subscribed to `messages` only gets no
/// template review; subscribed to `message_template_status_update` too, it gets the review of
/// a new template (`APPROVED` once the review time is over), in the Cloud API's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_fields_subscribed_are_posted() {
    let hook = Hook::default();
    let url = hook.listen().await;
    let data = Data::fresh(None);
    let s = start(&data);
    let token = s.s("access_token");
    let subscribe = |fields: Value| {
        let path = format!("/v21.0/{}/subscriptions", s.s("app_id"));
        let body = json!({"object": "whatsapp_business_account", "callback_url": url,
                          "verify_token": "my-verify-token", "fields": fields});
        (path, body)
    };
    let template = |name: &str| {
        json!({"name": name, "language": "en_US", "category": "UTILITY",
               "components": [{"type": "BODY", "text": "Your order is ready."}]})
    };
    let templates = format!("/v21.0/{}/message_templates", s.s("waba_id"));
    let reviews = |hook: &Hook| changes_of(hook, "message_template_status_update");

    for fields in [json!([]), json!(["messages", "gossip"])] {
        let (path, body) = subscribe(fields.clone());
        let (st, refused) = s.post(&path, Some(&token), body).await;
        assert_eq!(
            (st, &refused["error"]["code"]),
            (400, &json!(100)),
            "{fields}: {refused}"
        );
    }
    let (path, body) = subscribe(json!(["messages"]));
    assert_eq!(s.post(&path, Some(&token), body).await.0, 200);
    let (st, first) = s
        .post(&templates, Some(&token), template("first_update"))
        .await;
    assert_eq!(st, 200, "{first}");
    s.advance(61).await;
    // The review is recorded within the housekeeping's next turns; then the phone writes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    phone_writes(&s, canary(7, "fields")).await;
    hook.wait_for(|n| {
        n.iter()
            .any(|v| v.to_string().contains(&canary(7, "fields")))
    })
    .await;
    assert_eq!(
        reviews(&hook),
        Vec::<Value>::new(),
        "not subscribed to reviews"
    );

    let (path, body) = subscribe(json!(["messages", "message_template_status_update"]));
    assert_eq!(s.post(&path, Some(&token), body).await.0, 200);
    let (st, second) = s
        .post(&templates, Some(&token), template("second_update"))
        .await;
    assert_eq!(st, 200, "{second}");
    s.advance(61).await;
    let got = poll(
        Duration::from_millis(50),
        20,
        "the review's webhook",
        || async { Some(reviews(&hook)).filter(|r| !r.is_empty()) },
    )
    .await;
    assert_eq!(got.len(), 1, "the second template's review only: {got:?}");
    let id: u64 = second["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("id");
    assert_eq!(
        got[0]["value"],
        json!({"event": "APPROVED", "message_template_id": id,
               "message_template_name": "second_update",
               "message_template_language": "en_US", "reason": "NONE"})
    );
    let n = hook
        .accepted()
        .into_iter()
        .find(|n| n.to_string().contains("second_update"))
        .expect("the notification");
    assert_eq!(n["entry"][0]["id"], s.s("waba_id").as_str());

    // The app takes quality updates and no longer reviews: a third template's review, recorded
    // before the reports below, is not posted. Spam reports and a block turn the rating
    // yellow: `phone_number_quality_update` tells the app.
    let (path, body) = subscribe(json!(["messages", "phone_number_quality_update"]));
    assert_eq!(s.post(&path, Some(&token), body).await.0, 200);
    let (st, third) = s
        .post(&templates, Some(&token), template("third_update"))
        .await;
    assert_eq!(st, 200, "{third}");
    s.advance(61).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.reported(&["spam", "spam", "block"]).await;
    let flagged = poll(
        Duration::from_millis(50),
        200,
        "the quality update",
        || async {
            changes_of(&hook, "phone_number_quality_update")
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(
        flagged["value"],
        json!({"display_phone_number": s.s("display_phone_number"), "event": "FLAGGED",
               "current_limit": "TIER_250"})
    );
    assert_eq!(
        reviews(&hook).len(),
        1,
        "the third review is not posted to an app that left the field"
    );

    // The operator raises the number to higher throughput, then lowers it: the app hears of
    // the upgrade (the Cloud API has no event for the way back).
    let throughput = format!("/sealpost/v1/numbers/{}/throughput", s.s("phone_number_id"));
    for level in ["HIGH", "STANDARD"] {
        let (st, v) = s
            .post(
                &throughput,
                Some(&s.s("internal_token")),
                json!({ "level": level }),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let upgrade = poll(
        Duration::from_millis(50),
        200,
        "the throughput upgrade",
        || async {
            changes_of(&hook, "phone_number_quality_update")
                .into_iter()
                .find(|c| c["value"]["event"] == "THROUGHPUT_UPGRADE")
        },
    )
    .await;
    assert_eq!(
        upgrade["value"],
        json!({"display_phone_number": s.s("display_phone_number"),
               "event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_UNLIMITED"})
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        changes_of(&hook, "phone_number_quality_update").len(),
        2,
        "FLAGGED and the upgrade; the way back makes none"
    );
}

/// Every change of `field` the listener took.
fn changes_of(hook: &Hook, field: &str) -> Vec<Value> {
    hook.accepted()
        .into_iter()
        .flat_map(|n| {
            n["entry"][0]["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["field"] == field)
        .collect()
}

/// Webhooks follow no redirect: a callback that answers the handshake with a 307 to another
/// listener (which would answer it correctly) is refused, and the other listener never hears
/// of it. A redirect would re-send a signed body to a URL the https rule never checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_that_redirects_is_not_followed() {
    let elsewhere = Hook::default();
    let target = elsewhere.listen().await;
    let redirect = axum::Router::new().route(
        "/hook",
        axum::routing::any(move || {
            let target = target.clone();
            async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, target)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let callback = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, redirect).await;
    });
    let s = start(&Data::fresh(None));
    let path = format!("/v21.0/{}/subscriptions", s.s("app_id"));
    let body = json!({"object": "whatsapp_business_account", "callback_url": callback,
                      "verify_token": "my-verify-token", "fields": ["messages"]});
    let (st, refused) = s.post(&path, Some(&s.s("access_token")), body).await;
    assert_eq!(
        (st, &refused["error"]["code"]),
        (400, &json!(100)),
        "{refused}"
    );
    assert_eq!(
        elsewhere.verifications(),
        0,
        "the redirect was not followed"
    );
}
