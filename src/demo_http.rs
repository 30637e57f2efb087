//! The HTTP act of `sealpost demo`: `sealpost serve` in process on a loopback port, a local
//! webhook listener, and the Cloud API spoken over HTTP as an existing client would: the
//! webhook subscription (verified by `hub.challenge`), a consumer's message arriving as a signed
//! webhook, the business answering by business-scoped user id (it never needs the number),
//! the answer decrypted on the phone, and the business's read receipt reaching the phone.

use crate::claims::Check;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The consumer of the HTTP act.
pub const DANA: &str = "4915199990000";
const VERIFY_TOKEN: &str = "demo-verify-token";

/// What the webhook listener received: (signature header, exact body).
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn listener() -> anyhow::Result<(String, Received, tokio::task::JoinHandle<()>)> {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                if q.get("hub.verify_token").map(String::as_str) == Some(VERIFY_TOKEN) {
                    (
                        axum::http::StatusCode::OK,
                        q.get("hub.challenge").cloned().unwrap_or_default(),
                    )
                } else {
                    (axum::http::StatusCode::FORBIDDEN, String::new())
                }
            })
            .post(
                |State(r): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let sig = headers
                        .get("x-hub-signature-256")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    r.lock()
                        .expect("listener lock is never poisoned")
                        .push((sig, body.to_vec()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(received.clone());
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", socket.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(socket, app).await;
    });
    Ok((url, received, task))
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Polls `GET path` until `done` holds (up to 20 s).
    async fn wait(
        &self,
        path: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Option<Value>> {
        for _ in 0..400 {
            let (_, v) = self.call(reqwest::Method::GET, path, None, None).await?;
            if done(&v) {
                return Ok(Some(v));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(None)
    }
}

/// Waits until the listener holds a notification for which `pick` answers.
async fn notification(
    received: &Received,
    pick: impl Fn(&Value) -> bool,
) -> Option<(String, Vec<u8>, Value)> {
    for _ in 0..400 {
        let found = received
            .lock()
            .expect("listener lock is never poisoned")
            .iter()
            .find_map(|(sig, body)| {
                let v: Value = serde_json::from_slice(body).ok()?;
                pick(&v).then(|| (sig.clone(), body.clone(), v))
            });
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Runs the HTTP act in `dir` (a fresh directory); returns its checks and the plaintexts it
/// used (for the data-directory scan).
pub async fn run(dir: &Path, out: &mut dyn Write) -> anyhow::Result<(Vec<Check>, Vec<String>)> {
    let mut checks = Vec::new();
    let mut check = |out: &mut dyn Write, name: &str, passed: bool| -> std::io::Result<()> {
        writeln!(out, "  [{}] {name}", if passed { "PASS" } else { "FAIL" })?;
        checks.push(Check {
            name: name.to_owned(),
            passed,
        });
        Ok(())
    };
    let (hook_url, received, hook_task) = listener().await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let config = crate::http::ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_path_buf(),
        database_url: None,
        region_database_url: None,
        connect_timeout: sealpost_adapters::store::postgres::DEFAULT_CONNECT_TIMEOUT,
        sim_clock: true,
        throughput: (
            crate::http::THROUGHPUT_STANDARD,
            crate::http::THROUGHPUT_HIGH,
        ),
        leases: crate::nodes::LeaseTiming::default(),
        transport_url: None,
        webhook_ca_file: None,
        webhook_allow_http: false,
    };
    let server = tokio::spawn(crate::http::serve(
        config,
        async {
            let _ = stop_rx.await;
        },
        move |bound| {
            let _ = ready_tx.send(bound);
        },
    ));
    let bound = ready_rx.await?;
    let boot: Value =
        serde_json::from_slice(&std::fs::read(dir.join(crate::bootstrap::BOOTSTRAP_FILE))?)?;
    let f = |k: &str| boot[k].as_str().unwrap_or_default().to_owned();
    let token = f("access_token");
    let c = Client {
        base: format!("http://{bound}"),
        http: reqwest::Client::new(),
    };
    writeln!(out, "\nover HTTP: `sealpost serve` on http://{bound} (bootstrap.json, mode 0600), a webhook listener on {hook_url}")?;

    let (st, _) = c
        .post(
            &format!("/v21.0/{}/subscriptions", f("app_id")),
            Some(&token),
            json!({"object": "whatsapp_business_account", "callback_url": hook_url, "verify_token": VERIFY_TOKEN, "fields": ["messages"]}),
        )
        .await?;
    check(
        out,
        "the webhook subscription was verified by the hub.challenge handshake",
        st == 200,
    )?;

    let hello = "CANARY-Dana-7f3a — do you fix e-bikes?".to_owned();
    let (st, sent) = c
        .post(
            &format!("/sim/v1/devices/{DANA}/messages"),
            None,
            json!({"to": f("display_phone_number"), "type": "text", "text": {"body": hello}}),
        )
        .await?;
    let device_id = sent["id"].as_str().unwrap_or_default().to_owned();
    let inbound = notification(&received, |v| v.to_string().contains("do you fix e-bikes")).await;
    let signed = inbound.as_ref().is_some_and(|(sig, body, _)| {
        *sig == format!(
            "sha256={}",
            sealpost_adapters::crypto::hmac_hex(f("app_secret").as_bytes(), body)
        )
    });
    check(out, "Dana's message reached the business as a webhook signed with the app secret (X-Hub-Signature-256)", st == 200 && signed)?;
    let value = inbound
        .map(|(_, _, v)| v["entry"][0]["changes"][0]["value"].clone())
        .unwrap_or(Value::Null);
    let user_id = value["contacts"][0]["user_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message_id = value["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let reply = "CANARY-Reply-7f3a — yes, bring it in".to_owned();
    let (st, v) = c
        .post(
            &format!("/v21.0/{}/messages", f("phone_number_id")),
            Some(&token),
            json!({"messaging_product": "whatsapp", "recipient": user_id, "type": "text", "text": {"body": reply}}),
        )
        .await?;
    check(
        out,
        &format!(
            "the business answered by business-scoped user id {user_id}, never holding the number"
        ),
        st == 200 && v["contacts"][0]["user_id"] == user_id.as_str(),
    )?;
    let inbox = format!("/sim/v1/devices/{DANA}/inbox");
    let got = c
        .wait(&inbox, |v| v.to_string().contains("yes, bring it in"))
        .await?;
    check(out, "Dana's phone decrypted the answer", got.is_some())?;

    let (st, _) = c
        .post(
            &format!("/v21.0/{}/messages", f("phone_number_id")),
            Some(&token),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id, "typing_indicator": {"type": "text"}}),
        )
        .await?;
    let read = c
        .wait(&inbox, |v| {
            v["read_by_business"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == device_id.as_str()))
        })
        .await?;
    check(
        out,
        "the business marked her message read and the receipt reached her phone",
        st == 200 && read.is_some(),
    )?;
    let out_id = v["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let statuses = notification(&received, |n| {
        n.to_string().contains(&out_id) && n.to_string().contains("\"read\"")
    })
    .await;
    check(
        out,
        "status webhooks followed the answer: sent, delivered, read",
        statuses.is_some(),
    )?;

    let _ = stop_tx.send(());
    server.await??;
    hook_task.abort();
    Ok((
        checks,
        vec![
            "CANARY-Dana-7f3a".to_owned(),
            "CANARY-Reply-7f3a".to_owned(),
            DANA.to_owned(),
        ],
    ))
}
