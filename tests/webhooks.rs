//! Webhooks end to end: the real server, a real local listener, the hub.challenge handshake,
//! signed notifications retried after 500s, de-duplication by id, and no loss across a crash.

mod common;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::Engine as _;
use common::canary;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Listener {
    /// Answers to give to POSTs, front first; 200 once empty (unless `down`).
    script: Vec<u16>,
    down: bool,
    received: Vec<(String, String, Vec<u8>, u16)>, // (signature, notification id, body, answered)
    verifications: usize,
}

type Shared = Arc<Mutex<Listener>>;

async fn verify(
    State(l): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    l.lock().expect("lock").verifications += 1;
    if q.get("hub.mode").map(String::as_str) == Some("subscribe")
        && q.get("hub.verify_token").map(String::as_str) == Some("my-verify-token")
    {
        (
            StatusCode::OK,
            q.get("hub.challenge").cloned().unwrap_or_default(),
        )
    } else {
        (StatusCode::FORBIDDEN, String::new())
    }
}

async fn notify(
    State(l): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut l = l.lock().expect("lock");
    let answer = if l.down {
        500
    } else if l.script.is_empty() {
        200
    } else {
        l.script.remove(0)
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    l.received.push((
        h("x-hub-signature-256"),
        h("x-sealpost-notification-id"),
        body.to_vec(),
        answer,
    ));
    StatusCode::from_u16(answer).unwrap_or(StatusCode::OK)
}

async fn listener() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hook", get(verify).post(notify))
        .with_state(shared.clone());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", tcp.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(tcp, app).await;
    });
    (shared, url)
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sim-clock",
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let base = line.trim().rsplit(' ').next().expect("url").to_owned();
    Server(child, base)
}

async fn post(url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.expect("body")).unwrap_or(Value::Null),
    )
}

/// Accepted notifications, de-duplicated by notification id, parsed.
async fn get_json(url: &str) -> Value {
    let body = reqwest::get(url)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

fn accepted(l: &Shared) -> Vec<Value> {
    let l = l.lock().expect("lock");
    let mut seen = std::collections::HashSet::new();
    l.received
        .iter()
        .filter(|r| r.3 == 200 && seen.insert(r.1.clone()))
        .map(|r| serde_json::from_slice(&r.2).expect("json"))
        .collect()
}

async fn wait_for(l: &Shared, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..400 {
        let got = accepted(l);
        if pred(&got) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the webhook listener did not get what it waited for: {:?}",
        accepted(l)
    );
}

const CONSUMER: &str = "4915112345678";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_retried_deduplicated_and_survive_a_crash() {
    let (hook, url) = listener().await;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = serve(&data);
    let boot: Value =
        serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).expect("bootstrap"))
            .expect("json");
    let s = |k: &str| boot[k].as_str().expect("field").to_owned();
    let base = server.1.clone();

    // The handshake: a wrong verify token is refused, the right one subscribes.
    let sub = format!("{base}/v21.0/{}/subscriptions", s("app_id"));
    let bad = post(sub.clone(), Some(&s("access_token")), json!({"object": "whatsapp_business_account", "callback_url": url, "verify_token": "wrong", "fields": ["messages"]})).await;
    assert_eq!((bad.0, bad.1["error"]["code"].clone()), (400, json!(100)));
    let form = reqwest::Client::new()
        .post(&sub)
        .header("authorization", format!("Bearer {}", s("access_token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("object=whatsapp_business_account&callback_url={}&verify_token=my-verify-token&fields=messages", url.replace(':', "%3A").replace('/', "%2F")))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(form.status().as_u16(), 200);
    assert_eq!(hook.lock().expect("lock").verifications, 2);
    let other = post(sub.clone(), Some(&s("auditor_token")), json!({"object": "whatsapp_business_account", "callback_url": url, "verify_token": "my-verify-token"})).await;
    assert_eq!(other.0, 403, "only the app's own business may subscribe it");

    // An inbound message: the endpoint answers 500 twice, then 200.
    hook.lock().expect("lock").script = vec![500, 500];
    let (st, sent) = post(
        format!("{base}/sim/v1/devices/{CONSUMER}/messages"),
        None,
        json!({"to": s("display_phone_number"), "type": "text", "text": {"body": canary(0, "in")}}),
    )
    .await;
    assert_eq!(st, 200);
    let device_id = sent["id"].as_str().expect("device's message id").to_owned();
    let got = wait_for(&hook, |v| !v.is_empty()).await;
    let value = &got[0]["entry"][0]["changes"][0]["value"];
    assert_eq!(got[0]["object"], "whatsapp_business_account");
    assert_eq!(got[0]["entry"][0]["id"], s("waba_id").as_str());
    assert_eq!(got[0]["entry"][0]["changes"][0]["field"], "messages");
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(
        value["metadata"],
        json!({"display_phone_number": s("display_phone_number"), "phone_number_id": s("phone_number_id")})
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
    let inbound_id = m["id"].as_str().expect("id").to_owned();
    {
        let l = hook.lock().expect("lock");
        let attempts: Vec<&(String, String, Vec<u8>, u16)> = l
            .received
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.2).contains(&inbound_id))
            .collect();
        assert_eq!(
            attempts.iter().map(|r| r.3).collect::<Vec<_>>(),
            vec![500, 500, 200],
            "retried after each 500"
        );
        for r in &attempts {
            assert_eq!(r.1, attempts[0].1, "the same notification id every time");
            let expected = format!(
                "sha256={}",
                sealpost_adapters::crypto::hmac_hex(s("app_secret").as_bytes(), &r.2)
            );
            assert_eq!(
                r.0, expected,
                "signed with the app secret over the exact bytes"
            );
        }
    }

    // The business marks it read (POST and PUT, with the typing indicator).
    let messages = format!("{base}/v21.0/{}/messages", s("phone_number_id"));
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound_id, "typing_indicator": {"type": "text"}});
    assert_eq!(
        post(messages.clone(), Some(&s("access_token")), read.clone()).await,
        (200, json!({"success": true}))
    );
    let put = reqwest::Client::new()
        .put(&messages)
        .header("authorization", format!("Bearer {}", s("access_token")))
        .header("content-type", "application/json")
        .body(read.to_string())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 200);
    // The read receipt reaches the consumer's phone (under the id the phone sent it with).
    let mut receipted = Value::Null;
    for _ in 0..200 {
        receipted = get_json(&format!("{base}/sim/v1/devices/{CONSUMER}/inbox")).await;
        if receipted["read_by_business"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == device_id.as_str()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        receipted["read_by_business"],
        json!([device_id]),
        "the business's read receipt reached the device"
    );
    let unknown = post(messages.clone(), Some(&s("access_token")), json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.doesnotexist"})).await;
    assert_eq!(
        (unknown.0, unknown.1["error"]["code"].clone()),
        (400, json!(100))
    );

    // The business answers: statuses sent, delivered, read, with pricing and contacts.
    let (st, v) = post(format!("{base}/v21.0/{}/messages", s("phone_number_id")), Some(&s("access_token")), json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "text", "text": {"body": canary(0, "out")}, "biz_opaque_callback_data": "order-42"})).await;
    assert_eq!(st, 200, "{v}");
    let out_id = v["messages"][0]["id"].as_str().expect("id").to_owned();
    let got = wait_for(&hook, |v| {
        v.iter().filter(|n| n.to_string().contains(&out_id)).count() >= 3
    })
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
    for v in &statuses {
        assert_eq!(v["statuses"][0]["recipient_id"], CONSUMER);
        assert_eq!(v["statuses"][0]["biz_opaque_callback_data"], "order-42");
        assert_eq!(
            v["statuses"][0]["pricing"],
            json!({"billable": true, "pricing_model": "PMP", "category": "service", "type": "regular"})
        );
        assert_eq!(
            v["contacts"][0]["user_id"],
            user_id.as_str(),
            "the same user id in status notifications"
        );
    }

    // Answering by business-scoped user id: the business never needs the number.
    let by_user = post(messages.clone(), Some(&s("access_token")), json!({"messaging_product": "whatsapp", "recipient": user_id, "type": "text", "text": {"body": "by user id"}})).await;
    assert_eq!(by_user.0, 200, "{}", by_user.1);
    assert_eq!(
        by_user.1["contacts"],
        json!([{"input": user_id, "user_id": user_id}])
    );
    let unknown_user = post(messages.clone(), Some(&s("access_token")), json!({"messaging_product": "whatsapp", "recipient": "DE.00000000000000000000", "type": "text", "text": {"body": "x"}})).await;
    assert_eq!(
        (unknown_user.0, unknown_user.1["error"]["code"].clone()),
        (400, json!(131_009))
    );
    let mut delivered = false;
    for _ in 0..200 {
        let inbox: Value = serde_json::from_slice(
            &reqwest::get(format!("{base}/sim/v1/devices/{CONSUMER}/inbox"))
                .await
                .expect("inbox")
                .bytes()
                .await
                .expect("body"),
        )
        .expect("json");
        if inbox["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|x| x["content"]["text"]["body"] == "by user id")
        }) {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        delivered,
        "the message addressed by user id reached the device"
    );

    // A photo from the phone: the webhook carries a media id, MIME type and SHA-256; the
    // business fetches the description, then the bytes through the short-lived URL.
    let photo: Vec<u8> = canary(2, "photo")
        .into_bytes()
        .into_iter()
        .chain(0..=255u8)
        .collect();
    let (st, _) = post(
        format!("{base}/sim/v1/devices/{CONSUMER}/messages"),
        None,
        json!({"to": s("display_phone_number"), "type": "image", "image": {"data": base64::engine::general_purpose::STANDARD.encode(&photo), "mime_type": "image/jpeg", "caption": "my bike"}}),
    )
    .await;
    assert_eq!(st, 200);
    let got = wait_for(&hook, |v| {
        v.iter().any(|n| n.to_string().contains("my bike"))
    })
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
    let meta = reqwest::Client::new()
        .get(format!("{base}/v21.0/{media_id}"))
        .bearer_auth(s("access_token"))
        .send()
        .await
        .expect("media");
    let meta: Value = serde_json::from_slice(&meta.bytes().await.expect("body")).expect("json");
    assert_eq!(meta["sha256"], sha.as_str());
    let bytes = reqwest::Client::new()
        .get(meta["url"].as_str().expect("url"))
        .bearer_auth(s("access_token"))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.as_ref(), photo.as_slice());

    // A crash while the endpoint is down loses nothing.
    hook.lock().expect("lock").down = true;
    let (st, _) = post(
        format!("{base}/sim/v1/devices/{CONSUMER}/messages"),
        None,
        json!({"to": s("display_phone_number"), "type": "text", "text": {"body": canary(1, "in")}}),
    )
    .await;
    assert_eq!(st, 200);
    for _ in 0..200 {
        if hook
            .lock()
            .expect("lock")
            .received
            .iter()
            .any(|r| String::from_utf8_lossy(&r.2).contains(&canary(1, "in")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(server); // SIGKILL: no graceful shutdown
    hook.lock().expect("lock").down = false;
    let _again = serve(&data);
    let got = wait_for(&hook, |v| {
        v.iter().any(|n| n.to_string().contains(&canary(1, "in")))
    })
    .await;
    // De-duplicated by message id, the business has each inbound message exactly once.
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
