//! Black-box tests of `sealpost serve`: the real binary on port 0 with its own data directory,
//! spoken to over HTTP exactly as a Cloud API client would.

mod common;

use common::canary;
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    base: String,
    boot: Value,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    /// Stops the server, then greps everything it logged (at TRACE, as JSON) for the secrets
    /// and personal data of the suite: canary bodies, consumer numbers, tokens, the app secret.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            return;
        }
        let log = std::fs::read_to_string(&self.log).expect("the server log");
        assert!(
            log.contains("telemetry initialised"),
            "the log capture works"
        );
        let mut needles: Vec<String> = [
            "CANARY-", "-e1b2", CONSUMER, "4915112", "4915113", "4915114",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for key in [
            "access_token",
            "auditor_token",
            "dpo_token",
            "internal_token",
            "transport_token",
            "app_secret",
        ] {
            if let Some(v) = self.boot[key].as_str() {
                needles.push(v.to_owned());
            }
        }
        for n in &needles {
            assert!(
                !log.contains(n.as_str()),
                "the server logged a secret or personal datum ({} bytes of log)",
                log.len()
            );
        }
    }
}

fn start() -> Server {
    start_on(None)
}

/// Starts the server on the embedded store, or on Postgres at `database_url`.
fn start_on(database_url: Option<String>) -> Server {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut command = serve_command(&data);
    if let Some(url) = database_url {
        command.env("SEALPOST_DATABASE_URL", url);
    }
    spawn(command, dir, &data)
}

/// `sealpost serve` on a free port with the simulated clock and this data directory.
fn serve_command(data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sim-clock",
            "--data-dir",
        ])
        .arg(data);
    command
}

/// Runs `command` (a `sealpost serve`) with JSON trace logs into `dir`/server.log, waits for
/// its address, and reads the bootstrap file from `data`.
fn spawn(mut command: Command, dir: tempfile::TempDir, data: &std::path::Path) -> Server {
    let log = dir.path().join("server.log");
    let mut child = command
        .env("RUST_LOG", "trace")
        .env("SEALPOST_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn sealpost serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let base = line.trim().rsplit(' ').next().expect("url").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let boot: Value = serde_json::from_slice(
        &std::fs::read(data.join("bootstrap.json")).expect("bootstrap.json"),
    )
    .expect("json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("bootstrap.json"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "bootstrap.json holds tokens: owner only");
    }
    Server {
        child,
        base,
        boot,
        log,
        _dir: dir,
    }
}

impl Server {
    fn s(&self, key: &str) -> String {
        self.boot[key].as_str().expect("bootstrap field").to_owned()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        answer(req.send().await.expect("request")).await
    }

    async fn send(&self, body: Value) -> (u16, Value) {
        let path = format!("/v21.0/{}/messages", self.s("phone_number_id"));
        self.post(&path, Some(&self.s("access_token")), &body.to_string())
            .await
    }

    /// `POST /{v}/{phone-number-id}/media` as multipart/form-data, built by hand.
    async fn upload(&self, token: &str, parts: &[Part<'_>]) -> (u16, Value) {
        self.upload_to(&self.s("phone_number_id"), token, parts)
            .await
    }

    /// An upload to a given business number.
    async fn upload_to(&self, phone: &str, token: &str, parts: &[Part<'_>]) -> (u16, Value) {
        const BOUNDARY: &str = "sealpost-test-boundary-7MA4YWxk";
        let mut body = Vec::new();
        for (name, file, bytes) in parts {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"")
                    .as_bytes(),
            );
            if let Some((filename, mime)) = file {
                body.extend_from_slice(
                    format!("; filename=\"{filename}\"\r\nContent-Type: {mime}").as_bytes(),
                );
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let resp = reqwest::Client::new()
            .post(format!("{}/v21.0/{phone}/media", self.base))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .expect("upload");
        answer(resp).await
    }

    /// Moves the simulated clock on.
    async fn advance(&self, seconds: i64) {
        let (st, v) = self
            .post(
                "/sim/v1/clock/advance",
                None,
                &json!({ "seconds": seconds }).to_string(),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    /// Submits a marketing template and moves the simulated clock past its review.
    async fn approved_template(&self, name: &str) {
        let templates = format!("/v21.0/{}/message_templates", self.s("waba_id"));
        let (st, v) = self
            .post(
                &templates,
                Some(&self.s("access_token")),
                &json!({"name": name, "language": "en_US", "category": "MARKETING"}).to_string(),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        self.advance(61).await;
    }

    async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete");
        answer(resp).await
    }

    /// The consumer writes `first` from their phone; the business sends `answer` once the
    /// pipeline has taken the consumer's message (until then the window is closed: 131047).
    async fn converse(&self, first: &str, answer: Value) -> (u16, Value) {
        let (st, v) = self
            .post(
                &format!("/sim/v1/devices/{CONSUMER}/messages"),
                None,
                &json!({"to": self.s("display_phone_number"), "type": "text", "text": {"body": first}})
                    .to_string(),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let mut got = (0, Value::Null);
        for _ in 0..200 {
            got = self.send(answer.clone()).await;
            if got.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        got
    }

    async fn inbox(&self, wa_id: &str) -> Vec<Value> {
        let resp = reqwest::get(format!("{}/sim/v1/devices/{wa_id}/inbox", self.base))
            .await
            .expect("inbox");
        let v: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    async fn wait_inbox(&self, wa_id: &str, n: usize) -> Vec<Value> {
        // A liveness bound, not a speed target: the pipeline may have a backlog to work off.
        for _ in 0..2_400 {
            let got = self.inbox(wa_id).await;
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("device {wa_id} did not receive {n} messages");
    }
}

const CONSUMER: &str = "4915112345678";

/// A response's status and JSON body (`null` when it has none).
async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One part of a multipart form: name, (file name, MIME type) for a file, bytes.
type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"preview_url": false, "body": body}})
}

/// CRC-32 (ISO-HDLC, as PNG chunks carry it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid 1x1 grayscale PNG carrying `text` in a `tEXt` chunk and, when there are any,
/// `extra` bytes in a private ancillary chunk (which decoders skip).
fn png(text: &str, extra: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    chunk(
        &mut out,
        b"tEXt",
        &[b"Comment\0".as_slice(), text.as_bytes()].concat(),
    );
    if !extra.is_empty() {
        chunk(&mut out, b"seAl", extra);
    }
    // zlib of one scanline: filter byte 0, one black pixel.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn assert_error(got: &(u16, Value), status: u16, code: u64) {
    assert_eq!(got.0, status, "{}", got.1);
    let e = &got.1["error"];
    assert_eq!(e["code"], code, "{}", got.1);
    assert_eq!(e["type"], "OAuthException");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("(#{code}) "))),
        "{}",
        got.1
    );
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
    assert!(e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_api_surface_answers_like_the_cloud_api() {
    cloud_api_surface(start()).await;
}

/// The same black-box run against a server on Postgres (a schema of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_api_surface_on_postgres() {
    let Some(pg) = sealpost_adapters::testkit::postgres_test_db("http").await else {
        return;
    };
    let url = format!("{}?options=-csearch_path%3D{}", pg.url, pg.schema);
    cloud_api_surface(start_on(Some(url))).await;
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sealpost_events")
        .fetch_one(&pg.pool)
        .await
        .expect("count");
    assert!(events > 50, "the server wrote its events to Postgres");
    pg.drop_schema().await;
}

async fn cloud_api_surface(s: Server) {
    // The OpenAPI description names every endpoint this suite uses.
    let doc: Value = serde_json::from_slice(
        &reqwest::get(format!("{}/sealpost/v1/openapi.json", s.base))
            .await
            .expect("openapi")
            .bytes()
            .await
            .expect("body"),
    )
    .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/{version}/{phone_number_id}/messages",
        "/{phone_number_id}/messages",
        "/{version}/{waba_id}/message_templates",
        "/{version}/{app_id}/subscriptions",
        "/sim/v1/devices/{wa_id}/inbox",
        "/sim/v1/devices/{wa_id}/report",
        "/{version}/{phone_number_id}/media",
        "/{version}/{id}",
        "/sealpost/v1/media/{media_id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is described");
    }
    // A consumer writes first (opening the service window), from a simulated phone. Text: the
    // exact success shape; the device decrypts exactly what was sent.
    let (st, v) = s
        .converse(
            &canary(0, "in"),
            text(&format!("+{CONSUMER}"), &canary(0, "out")),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["contacts", "messages", "messaging_product"]);
    assert_eq!(v["messaging_product"], "whatsapp");
    assert_eq!(
        v["contacts"],
        json!([{"input": format!("+{CONSUMER}"), "wa_id": CONSUMER}])
    );
    let id = v["messages"][0]["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("wamid."));
    let inbox = s.wait_inbox(CONSUMER, 1).await;
    assert_eq!(inbox[0]["id"], id.as_str());
    assert_eq!(inbox[0]["content"]["text"]["body"], canary(0, "out"));

    // Media: upload (multipart), description, download through the short-lived URL.
    let token = s.s("access_token");
    let picture = png(&canary(2, "media"), &(0..=255u8).collect::<Vec<u8>>());
    let (st, up) = s
        .upload(
            &token,
            &[
                ("messaging_product", None, b"whatsapp"),
                ("file", Some(("bike.png", "image/png")), &picture),
            ],
        )
        .await;
    assert_eq!(st, 200, "{up}");
    let keys: Vec<&String> = up.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["id"]);
    let media_id = up["id"].as_str().expect("media id").to_owned();
    let (st, meta) = s.get(&format!("/v21.0/{media_id}"), &token).await;
    assert_eq!(st, 200, "{meta}");
    let keys: Vec<&String> = meta.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "file_size",
            "id",
            "messaging_product",
            "mime_type",
            "sha256",
            "url"
        ]
    );
    let sha = hex::encode(sealpost_adapters::crypto::sha256(&picture));
    assert_eq!(
        (
            meta["mime_type"].as_str(),
            meta["sha256"].as_str(),
            meta["file_size"].as_str(),
            meta["id"].as_str()
        ),
        (
            Some("image/png"),
            Some(sha.as_str()),
            Some(picture.len().to_string().as_str()),
            Some(media_id.as_str())
        )
    );
    let url = meta["url"].as_str().expect("url").to_owned();
    let download = |token: Option<String>, url: String| async move {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("download");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ctype, r.bytes().await.expect("bytes").to_vec())
    };
    let (st, ctype, bytes) = download(Some(token.clone()), url.clone()).await;
    assert_eq!((st, ctype.as_str()), (200, "image/png"));
    assert_eq!(bytes, picture, "the bytes round-trip");
    assert_eq!(
        download(None, url.clone()).await.0,
        401,
        "the URL needs the token"
    );
    assert_eq!(
        download(Some(s.s("dpo_token")), url.clone()).await.0,
        403,
        "and the same business's token"
    );
    let tampered = format!("{}0", &url[..url.len() - 1]);
    let tampered = if tampered == url {
        format!("{}1", &url[..url.len() - 1])
    } else {
        tampered
    };
    assert_eq!(download(Some(token.clone()), tampered).await.0, 400);
    // Upload errors.
    assert_error(
        &s.upload(&token, &[("file", Some(("a.png", "image/png")), b"x")])
            .await,
        400,
        131_008,
    );
    assert_error(
        &s.upload(&token, &[("messaging_product", None, b"whatsapp")])
            .await,
        400,
        131_008,
    );
    assert_error(
        &s.upload(
            &token,
            &[
                ("messaging_product", None, b"whatsapp"),
                ("file", Some(("a.bin", "hologram/x")), b"x"),
            ],
        )
        .await,
        400,
        131_009,
    );
    assert_error(
        &s.upload(
            &token,
            &[
                ("messaging_product", None, b"whatsapp"),
                (
                    "file",
                    Some(("big.bin", "application/octet-stream")),
                    &vec![0u8; 17 * 1024 * 1024],
                ),
            ],
        )
        .await,
        400,
        100,
    );
    assert_error(
        &s.upload("SPnot-a-token", &[("messaging_product", None, b"whatsapp")])
            .await,
        401,
        190,
    );
    assert_error(
        &s.post(
            &format!("/v21.0/{}/media", s.s("phone_number_id")),
            Some(&token),
            "{}",
        )
        .await,
        400,
        100,
    );

    // Templates: submitted, pending review (132001), approved after the review step, listed.
    let templates = format!("/v21.0/{}/message_templates", s.s("waba_id"));
    let tpl = json!({"name": "order_update", "language": "en_US", "category": "utility", "components": [{"type": "BODY", "text": "Order {{1}} shipped"}]});
    let (st, v) = s
        .post(&templates, Some(&s.s("access_token")), &tpl.to_string())
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["category"].as_str()),
        (200, Some("PENDING"), Some("UTILITY")),
        "{v}"
    );
    assert_error(
        &s.post(&templates, Some(&s.s("access_token")), &tpl.to_string())
            .await,
        400,
        100,
    );
    assert_error(
        &s.post(&templates, Some(&s.s("auditor_token")), &tpl.to_string())
            .await,
        403,
        200,
    );
    let template_send = json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}});
    assert_error(&s.send(template_send.clone()).await, 404, 132_001);
    s.advance(61).await;
    let (st, list) = s.post_get(&templates).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"][0]["status"], "APPROVED");
    assert_eq!(list["data"][0]["components"][0]["type"], "BODY");
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "template", "template": {"name": "no_such", "language": {"code": "en_US"}}})).await, 404, 132_001);

    // Every other type answers the same shape.
    let others = [
        json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}}),
        json!({"type": "image", "image": {"id": media_id, "caption": "your bike"}}),
        json!({"type": "document", "document": {"link": "https://example.com/invoice.pdf", "filename": "invoice.pdf"}}),
        json!({"type": "audio", "audio": {"id": media_id}}),
        json!({"type": "video", "video": {"link": "https://example.com/v.mp4"}}),
        json!({"type": "sticker", "sticker": {"id": media_id}}),
        json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick up today?"}, "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "Yes"}}]}}}),
        json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Pick"}, "action": {"button": "Pick", "sections": [{"title": "S", "rows": [{"id": "r1", "title": "R"}]}]}}}),
        json!({"type": "reaction", "reaction": {"message_id": id, "emoji": "👍"}}),
        json!({"type": "text", "text": {"body": "reply"}, "context": {"message_id": id}, "biz_opaque_callback_data": "order-42"}),
    ];
    for mut body in others {
        body["messaging_product"] = json!("whatsapp");
        body["to"] = json!(CONSUMER);
        let (st, v) = s.send(body.clone()).await;
        assert_eq!(st, 200, "{body} -> {v}");
        assert!(v["messages"][0]["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("wamid.")));
    }
    let inbox = s.wait_inbox(CONSUMER, 11).await;
    // A send by media id carries the object itself to the phone.
    let image = inbox
        .iter()
        .find(|m| m["content"]["type"] == "image")
        .expect("image on the device");
    assert_eq!(image["content"]["image"]["caption"], "your bike");
    assert_eq!(image["content"]["image"]["sha256"], sha.as_str());
    {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(image["content"]["image"]["data"].as_str().expect("data"))
            .expect("base64");
        assert_eq!(data, picture);
    }
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"id": "999999999999999"}})).await, 400, 131_009);
    // Delete: the object's key is destroyed; every way to it then answers as for no object.
    assert_eq!(
        s.delete(&format!("/v21.0/{media_id}"), &token).await,
        (200, json!({"success": true}))
    );
    assert_error(
        &s.get(&format!("/v21.0/{media_id}"), &token).await,
        403,
        200,
    );
    assert_eq!(download(Some(token.clone()), url.clone()).await.0, 403);
    assert_error(
        &s.delete(&format!("/v21.0/{media_id}"), &token).await,
        403,
        200,
    );
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"id": media_id}})).await, 400, 131_009);

    // Errors: the Graph envelope with the Cloud API code and HTTP status.
    let path = format!("/v21.0/{}/messages", s.s("phone_number_id"));
    let body = text(CONSUMER, "x").to_string();
    assert_error(&s.post(&path, None, &body).await, 401, 190);
    assert_error(&s.post(&path, Some("SPnot-a-token"), &body).await, 401, 190);
    assert_error(
        &s.post(&path, Some(&s.s("auditor_token")), &body).await,
        403,
        200,
    );
    assert_error(
        &s.post(&path, Some(&s.s("internal_token")), &body).await,
        403,
        200,
    );
    assert_error(
        &s.post(
            "/v21.0/106540352242922/messages",
            Some(&s.s("access_token")),
            &body,
        )
        .await,
        403,
        200,
    );
    assert_error(
        &s.post(
            &format!("/v99.0/{}/messages", s.s("phone_number_id")),
            Some(&s.s("access_token")),
            &body,
        )
        .await,
        400,
        100,
    );
    assert_error(
        &s.post(&path, Some(&s.s("access_token")), "{not json").await,
        400,
        100,
    );
    assert_error(
        &s.post(
            &path,
            Some(&s.s("access_token")),
            &"x".repeat(2 * 1024 * 1024),
        )
        .await,
        400,
        100,
    );
    assert_error(
        &s.send(json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}))
            .await,
        400,
        131_008,
    );
    assert_error(
        &s.send(json!({"messaging_product": "sms", "to": CONSUMER, "text": {"body": "x"}}))
            .await,
        400,
        131_009,
    );
    assert_error(&s.send(text("12ab", "x")).await, 400, 131_009);
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "hologram", "hologram": {}})).await, 400, 131_009);
    assert_error(
        &s.send(
            json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "text", "text": {}}),
        )
        .await,
        400,
        131_008,
    );
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"caption": "no media"}})).await, 400, 131_008);
    assert_error(
        &s.send(text("33612345678", &canary(1, "out"))).await,
        400,
        131_047,
    );
    // Unversioned paths work too.
    let (st, _) = s
        .post(
            &format!("/{}/messages", s.s("phone_number_id")),
            Some(&s.s("access_token")),
            &text(CONSUMER, "unversioned").to_string(),
        )
        .await;
    assert_eq!(st, 200);

    // Nothing the server logged holds a body, a number or a token.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = std::fs::read_to_string(&s.log).expect("log");
    assert!(
        log.contains("bootstrapped a development tenant"),
        "the log capture works"
    );
    for needle in [
        canary(0, "in"),
        canary(0, "out"),
        canary(1, "out"),
        canary(2, "media"),
        CONSUMER.to_owned(),
        "33612345678".to_owned(),
        s.s("access_token"),
        s.s("auditor_token"),
        s.s("app_secret"),
    ] {
        assert!(
            !log.contains(&needle),
            "the server logged a secret or personal datum"
        );
    }
}

impl Server {
    async fn post_get(&self, path: &str) -> (u16, Value) {
        self.get(path, &self.s("access_token")).await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("get");
        answer(r).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_number_management_and_rate_limits() {
    let s = start();
    let token = s.s("access_token");
    let id = s.s("phone_number_id");
    // Deleting a template that does not exist is an error; an existing one goes.
    let del = reqwest::Client::new()
        .delete(format!(
            "{}/v21.0/{}/message_templates?name=ghost",
            s.base,
            s.s("waba_id")
        ))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status().as_u16(), 400);

    // GET of the number.
    let (st, v) = s.get(&format!("/v21.0/{id}"), &token).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["display_phone_number"],
        format!("+{}", s.s("display_phone_number"))
    );
    assert_eq!(
        (
            v["quality_rating"].as_str(),
            v["throughput"]["level"].as_str(),
            v["messaging_limit_tier"].as_str()
        ),
        (Some("GREEN"), Some("STANDARD"), Some("TIER_250"))
    );
    assert_error(
        &s.get(&format!("/v21.0/{id}"), &s.s("dpo_token")).await,
        403,
        200,
    );

    // Local Storage can be elected while unregistered, not after.
    let settings = format!("/v21.0/{id}/settings");
    assert_eq!(
        s.get(&settings, &token).await.1,
        json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_DISABLED"}})
    );
    let enable = json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": "DE"}}).to_string();
    assert_eq!(
        s.post(&settings, Some(&token), &enable).await.1,
        json!({"success": true})
    );
    assert_eq!(
        s.get(&settings, &token).await.1["storage_configuration"]["data_localization_region"],
        "DE"
    );
    let bad_region = json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": "XX"}}).to_string();
    assert_error(
        &s.post(&settings, Some(&token), &bad_region).await,
        400,
        131_009,
    );
    let register = format!("/v21.0/{id}/register");
    assert_error(
        &s.post(
            &register,
            Some(&token),
            &json!({"messaging_product": "whatsapp", "pin": "12ab56"}).to_string(),
        )
        .await,
        400,
        131_009,
    );
    assert_eq!(
        s.post(
            &register,
            Some(&token),
            &json!({"messaging_product": "whatsapp", "pin": "123456"}).to_string()
        )
        .await
        .1,
        json!({"success": true})
    );
    assert_error(&s.post(&settings, Some(&token), &enable).await, 400, 100);
    assert_eq!(
        s.get(&format!("/v21.0/{id}"), &token).await.1["platform_type"],
        "CLOUD_API"
    );
    // Ten register/deregister calls in 72 hours, then 133016.
    for i in 0..9 {
        let path = if i % 2 == 0 {
            format!("/v21.0/{id}/deregister")
        } else {
            register.clone()
        };
        let (st, v) = s
            .post(
                &path,
                Some(&token),
                &json!({"messaging_product": "whatsapp", "pin": "123456"}).to_string(),
            )
            .await;
        assert_eq!(st, 200, "call {i}: {v}");
    }
    assert_error(
        &s.post(
            &register,
            Some(&token),
            &json!({"messaging_product": "whatsapp", "pin": "123456"}).to_string(),
        )
        .await,
        429,
        133_016,
    );

    // Throughput: 80 messages per second per number (the simulated clock stands still).
    s.approved_template("hello").await;
    let template = |to: String| json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}});
    for i in 0..80 {
        let (st, v) = s.send(template(format!("4915112{:06}", i))).await;
        assert_eq!(st, 200, "message {i}: {v}");
    }
    assert_error(
        &s.send(template("4915112999999".into())).await,
        429,
        130_429,
    );
    // Pair rate: after a second the number may send again, but 45 is the burst to one user.
    s.advance(1).await;
    for i in 0..45 {
        let (st, v) = s.send(template("4915112888888".into())).await;
        assert_eq!(st, 200, "pair message {i}: {v}");
    }
    assert_error(
        &s.send(template("4915112888888".into())).await,
        429,
        131_056,
    );

    // The messaging limit: 250 unique users outside a service window in 24 hours (81 so far).
    // The 251st is refused by the transport (failed, 131048) and turns the throttle on; from
    // then on a send to a new user is refused at once with 131048. (Sends are admitted at 80
    // per second of the simulated clock, so it moves on a second every 70.)
    let mut sent = 0usize;
    let mut refused = None;
    for i in 0..2_000 {
        if i % 70 == 0 {
            s.advance(1).await;
        }
        let got = s.send(template(format!("4915113{:06}", i))).await;
        if got.0 != 200 {
            refused = Some(got);
            break;
        }
        sent += 1;
        if sent >= 170 {
            // Past the limit: wait for the pipeline to hand the 251st user's message over.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let got = refused.expect("the throttle came on");
    assert!(sent >= 170, "not before the limit: refused after {sent}");
    assert_error(&got, 429, 131_048);
    // A user in a service window may still be answered (a second later: throughput refills).
    s.advance(1).await;
    let (answered, _) = s.converse("hi", text(CONSUMER, "still here")).await;
    assert_eq!(answered, 200, "the throttle spares service-window replies");
    // (All of this after the number moved to Local Storage in DE: the pipeline followed it.)
    let inbox = s.wait_inbox(CONSUMER, 1).await;
    assert_eq!(inbox[0]["content"]["text"]["body"], "still here");

    // Consumers report the number as spam and block it: the quality rating falls.
    for (i, kind) in ["spam", "spam", "block"].into_iter().enumerate() {
        let (st, v) = s
            .post(
                &format!("/sim/v1/devices/49151140000{i:02}/report"),
                None,
                &json!({"to": s.s("display_phone_number"), "type": kind}).to_string(),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    assert_error(
        &s.post(
            "/sim/v1/devices/4915114000000/report",
            None,
            &json!({"to": s.s("display_phone_number"), "type": "hug"}).to_string(),
        )
        .await,
        400,
        131_009,
    );
    let mut rating = Value::Null;
    for _ in 0..200 {
        rating = s.get(&format!("/v21.0/{id}"), &token).await.1["quality_rating"].clone();
        if rating == "YELLOW" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rating, "YELLOW");
}

/// `--config`: the file's settings apply (simulated clock, a throughput of 2 messages per
/// second), an environment variable overrides the file (the data directory), and a file with
/// a typo is refused with a message that names the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_up_serve_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("sealpost.toml");
    let ignored = dir.path().join("from-file");
    let data = dir.path().join("from-env");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nsim_clock = true\nthroughput_per_second = 2\n",
            ignored.display()
        ),
    )
    .expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .args(["serve", "--config"])
        .arg(&file)
        .env("SEALPOST_DATA_DIR", &data);
    let s = spawn(command, dir, &data);
    assert!(!ignored.exists(), "the environment overrode the file");
    // The simulated clock came from the file: it moves, so the template gets approved.
    s.approved_template("hello").await;
    let template = json!({"messaging_product": "whatsapp", "to": "4915112000001", "type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}});
    for _ in 0..2 {
        let (st, v) = s.send(template.clone()).await;
        assert_eq!(st, 200, "{v}");
    }
    assert_error(&s.send(template).await, 429, 130_429);

    let bad = tempfile::tempdir().expect("dir");
    let typo = bad.path().join("typo.toml");
    std::fs::write(&typo, "lissten = \"127.0.0.1:0\"\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["serve", "--config"])
        .arg(&typo)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lissten"), "{stderr}");
}

/// System-user tokens: issued with at most the caller's scopes, listed without secrets, and
/// revoked with immediate effect; only the business's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_and_revoked_with_immediate_effect() {
    let s = start();
    let admin = s.s("access_token");
    let number = format!("/v21.0/{}", s.s("phone_number_id"));
    let (st, issued) = s
        .post(
            "/sealpost/v1/tokens",
            Some(&admin),
            &json!({"scopes": ["whatsapp_business_messaging"]}).to_string(),
        )
        .await;
    assert_eq!(st, 200, "{issued}");
    let (id, token) = (
        issued["id"].as_str().expect("id").to_owned(),
        issued["access_token"].as_str().expect("token").to_owned(),
    );
    assert!(token.len() >= 43, "at least 32 random bytes");
    assert_eq!(s.get(&number, &token).await.0, 200, "the new token works");
    let (st, list) = s.get("/sealpost/v1/tokens", &admin).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    assert!(
        !list.to_string().contains(&token) && !list.to_string().contains(&admin),
        "listing never shows a token"
    );
    // A messaging-only token cannot manage tokens; nobody gets more than they hold.
    assert_error(&s.get("/sealpost/v1/tokens", &token).await, 403, 10);
    assert_error(
        &s.post("/sealpost/v1/tokens", Some(&token), "{}").await,
        403,
        10,
    );
    assert_error(
        &s.post(
            "/sealpost/v1/tokens",
            Some(&admin),
            &json!({"scopes": ["ads_management"]}).to_string(),
        )
        .await,
        400,
        131_009,
    );
    assert_error(
        &s.get("/sealpost/v1/tokens", &s.s("auditor_token")).await,
        403,
        200,
    );
    // Revocation takes effect at once.
    assert_eq!(
        s.delete(&format!("/sealpost/v1/tokens/{id}"), &admin).await,
        (200, json!({"success": true}))
    );
    assert_error(&s.get(&number, &token).await, 401, 190);
    assert_error(
        &s.delete(&format!("/sealpost/v1/tokens/{id}"), &admin).await,
        400,
        100,
    );
    assert_error(
        &s.delete("/sealpost/v1/tokens/tok_unknown", &admin).await,
        400,
        100,
    );
    assert_eq!(s.get(&number, &admin).await.0, 200, "the others still work");
}

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
    let db = s._dir.path().join("data/events.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open");
    let mut shredded = 0i64;
    for _ in 0..200 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sealpost_events WHERE event_type = 'EpochKeyShredded'",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        shredded = n;
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(shredded >= 1, "the retention process ran");
}

/// One tenant as the tenancy test sees it: its ids and its system-user token.
#[derive(Clone, Debug)]
struct Tenant {
    token: String,
    phone: String,
    waba: String,
    app: String,
    media: String,
    message: String,
    token_id: String,
    template: String,
}

/// A request of the tenancy property: method, path, JSON body (or none).
type Probe = (&'static str, String, Option<Value>);

/// The requests a token of `attacker` makes against `target`'s data (or a fabricated tenant).
fn probes(attacker: &Tenant, target: &Tenant) -> Vec<Probe> {
    let t = target;
    vec![
        ("GET", format!("/v21.0/{}", t.phone), None),
        (
            "POST",
            format!("/v21.0/{}/messages", t.phone),
            Some(text(CONSUMER, "x")),
        ),
        ("GET", format!("/v21.0/{}/settings", t.phone), None),
        (
            "POST",
            format!("/v21.0/{}/settings", t.phone),
            Some(
                json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": "DE"}}),
            ),
        ),
        (
            "POST",
            format!("/v21.0/{}/register", t.phone),
            Some(json!({"messaging_product": "whatsapp", "pin": "123456"})),
        ),
        (
            "POST",
            format!("/v21.0/{}/deregister", t.phone),
            Some(json!({"messaging_product": "whatsapp"})),
        ),
        ("GET", format!("/v21.0/{}/message_templates", t.waba), None),
        (
            "POST",
            format!("/v21.0/{}/message_templates", t.waba),
            Some(json!({"name": "intruder", "language": "en_US", "category": "MARKETING"})),
        ),
        (
            "DELETE",
            format!("/v21.0/{}/message_templates?name={}", t.waba, t.template),
            None,
        ),
        (
            "POST",
            format!("/v21.0/{}/subscriptions", t.app),
            Some(
                json!({"object": "whatsapp_business_account", "callback_url": "http://127.0.0.1:9/hook", "verify_token": "x"}),
            ),
        ),
        ("GET", format!("/v21.0/{}", t.media), None),
        ("DELETE", format!("/v21.0/{}", t.media), None),
        (
            "GET",
            format!(
                "/sealpost/v1/media/{}?expires=9999999999&signature=00",
                t.media
            ),
            None,
        ),
        (
            "POST",
            format!("/v21.0/{}/messages", attacker.phone),
            Some(
                json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"id": t.media}}),
            ),
        ),
        (
            "POST",
            format!("/v21.0/{}/messages", attacker.phone),
            Some(
                json!({"messaging_product": "whatsapp", "status": "read", "message_id": t.message}),
            ),
        ),
        (
            "POST",
            format!("/v21.0/{}/messages", attacker.phone),
            Some(
                json!({"messaging_product": "whatsapp", "type": "reaction", "to": CONSUMER, "reaction": {"message_id": t.message, "emoji": "👍"}}),
            ),
        ),
        (
            "DELETE",
            format!("/sealpost/v1/tokens/{}", t.token_id),
            None,
        ),
        ("POST", format!("/v21.0/{}/media", t.phone), Some(json!({}))),
    ]
}

async fn call(base: &str, token: &str, probe: &Probe) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{}", probe.1);
    let req = match probe.0 {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    let req = match &probe.2 {
        Some(b) => req
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => req,
    };
    let (status, mut body) = answer(req.bearer_auth(token).send().await.expect("request")).await;
    if let Some(e) = body.get_mut("error").and_then(Value::as_object_mut) {
        e.remove("fbtrace_id"); // random per answer
    }
    (status, body)
}

/// For random pairs of businesses and random endpoints, a token of one business never reads,
/// changes or learns the existence of the other's data: every answer about the other's real
/// number, WABA, app, media, message, template or token is a refusal, and the very same answer
/// as about ids that exist nowhere. Afterwards every business's data is as it was.
#[test]
fn a_business_token_never_reaches_another_business() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Three tenants: the development tenant, then two added by `sealpost tenant add`.
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_sealpost");
    let mut first = serve_command(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(first.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("started");
    let _ = first.kill();
    let _ = first.wait();
    let mut files = Vec::new();
    for (name, number) in [("Tenant B", "15550001111"), ("Tenant C", "15550002222")] {
        let out = Command::new(bin)
            .args([
                "tenant",
                "add",
                "--name",
                name,
                "--display-number",
                number,
                "--data-dir",
            ])
            .arg(&data)
            .output()
            .expect("tenant add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.push(std::path::PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ));
    }
    let s = spawn(serve_command(&data), dir, &data);
    let mut boots = vec![s.boot.clone()];
    for f in &files {
        boots.push(serde_json::from_slice(&std::fs::read(f).expect("tenant file")).expect("json"));
    }
    let tenants: Vec<Tenant> = rt.block_on(async {
        let mut out = Vec::new();
        for (i, b) in boots.iter().enumerate() {
            let f = |k: &str| b[k].as_str().expect("field").to_owned();
            let token = f("access_token");
            let template = format!("greeting_{i}");
            let (st, _) = s
                .post(
                    &format!("/v21.0/{}/message_templates", f("waba_id")),
                    Some(&token),
                    &json!({"name": template, "language": "en_US", "category": "UTILITY"}).to_string(),
                )
                .await;
            assert_eq!(st, 200);
            let picture = png(&canary(10 + i, "tenant media"), &[]);
            let upload = s
                .upload_to(&f("phone_number_id"), &token, &[("messaging_product", None, b"whatsapp"), ("file", Some(("p.png", "image/png")), &picture)])
                .await;
            assert_eq!(upload.0, 200, "{}", upload.1);
            let (_, tokens) = s.get("/sealpost/v1/tokens", &token).await;
            out.push(Tenant {
                token,
                phone: f("phone_number_id"),
                waba: f("waba_id"),
                app: f("app_id"),
                media: upload.1["id"].as_str().expect("media").to_owned(),
                message: String::new(),
                token_id: tokens["data"][0]["id"].as_str().expect("token id").to_owned(),
                template,
            });
        }
        s.advance(61).await;
        for t in &mut out {
            let (st, v) = s
                .post(
                    &format!("/v21.0/{}/messages", t.phone),
                    Some(&t.token),
                    &json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "template", "template": {"name": t.template, "language": {"code": "en_US"}}}).to_string(),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            t.message = v["messages"][0]["id"].as_str().expect("id").to_owned();
        }
        out
    });
    let nowhere = |n: u64| Tenant {
        token: String::new(),
        phone: format!("{}", 190_000_000_000_000 + n),
        waba: format!("{}", 290_000_000_000_000 + n),
        app: format!("{}", 390_000_000_000_000 + n),
        media: format!("{}", 490_000_000_000_000 + n),
        message: format!("wamid.AAAAAAAAAAAAAAAAAAAAAAA{}", n % 10),
        token_id: format!("tok_{n:032x}"),
        template: "greeting_9".into(),
    };
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 96,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let endpoints = probes(&tenants[0], &tenants[1]).len();
    runner
        .run(
            &(0..3usize, 1..3usize, 0..endpoints, proptest::num::u64::ANY),
            |(a, offset, e, n)| {
                let (attacker, victim) = (&tenants[a], &tenants[(a + offset) % 3]);
                let real = &probes(attacker, victim)[e];
                let fake = &probes(attacker, &nowhere(n))[e];
                let (got, control) = rt.block_on(async {
                    (
                        call(&s.base, &attacker.token, real).await,
                        call(&s.base, &attacker.token, fake).await,
                    )
                });
                proptest::prop_assert!(
                    (400..500).contains(&got.0),
                    "{} {} answered {}: {}",
                    real.0,
                    real.1,
                    got.0,
                    got.1
                );
                proptest::prop_assert_eq!(
                    &got,
                    &control,
                    "{} {} tells the other business's data from none",
                    real.0,
                    real.1
                );
                Ok(())
            },
        )
        .expect("no business reaches another's data");
    // Nothing of anyone's changed.
    rt.block_on(async {
        for t in &tenants {
            let (st, number) = s.get(&format!("/v21.0/{}", t.phone), &t.token).await;
            assert_eq!(
                (st, number["platform_type"].as_str()),
                (200, Some("NOT_APPLICABLE"))
            );
            assert_eq!(
                s.get(&format!("/v21.0/{}/settings", t.phone), &t.token)
                    .await
                    .1,
                json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_DISABLED"}})
            );
            let (_, list) = s
                .get(&format!("/v21.0/{}/message_templates", t.waba), &t.token)
                .await;
            let names: Vec<&str> = list["data"]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|x| x["name"].as_str())
                .collect();
            assert_eq!(names, [t.template.as_str()]);
            assert_eq!(
                s.get(&format!("/v21.0/{}", t.media), &t.token).await.0,
                200,
                "media intact"
            );
            assert_eq!(
                s.get("/sealpost/v1/tokens", &t.token).await.0,
                200,
                "token intact"
            );
        }
    });
}

impl Server {
    async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        answer(resp).await
    }

    async fn get_text(&self, path: &str, token: &str) -> (u16, String) {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("text"))
    }

    async fn published_key(&self) -> ed25519_dalek::VerifyingKey {
        let resp = reqwest::get(format!("{}/sealpost/v1/audit/public-key", self.base))
            .await
            .expect("public key");
        let (st, v) = answer(resp).await;
        assert_eq!(st, 200, "{v}");
        sealpost_audit::log::parse_public_key(v["public_key"].as_str().expect("key"))
            .expect("an Ed25519 key")
    }
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

    let (st, own) = s.get_as(&path, &s.s("access_token")).await;
    assert_eq!(st, 200, "the business reads its own message: {own}");
    assert_eq!(own["message"]["text"]["body"], body.as_str());

    let internal = s.s("internal_token");
    for _ in 0..3 {
        assert_error(&s.get_as(&path, &internal).await, 403, 200);
    }
    assert_error(
        &s.get_as("/sealpost/v1/audit/access", &internal).await,
        403,
        200,
    );
    let (st, stats) = s.get_as("/sealpost/v1/statistics", &internal).await;
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
        let token = s.s(who);
        assert_error(&s.get_as(&path, &token).await, 403, 200);
        let (st, denials) = s
            .get_as(
                "/sealpost/v1/audit/access?principal_kind=operator&decision=denied",
                &token,
            )
            .await;
        assert_eq!(st, 200, "{denials}");
        let rows = denials["data"].as_array().expect("rows");
        let content_denials = rows
            .iter()
            .filter(|r| r["category"] == "message_content" && r["object"] == id.as_str())
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
            .verify(Some(&key))
            .expect("signed by the published key");
        assert!(checkpoint.size >= rows.last().expect("row")["position"].as_u64().expect("pos"));

        // Paging: one at a time, in order, no repeats.
        let (_, first) = s
            .get_as(
                "/sealpost/v1/audit/access?principal_kind=operator&decision=denied&limit=1",
                &token,
            )
            .await;
        let next = first["paging"]["next"].as_str().expect("a next page");
        let (_, second) = s
            .get_as(
                &format!("/sealpost/v1/audit/access?principal_kind=operator&decision=denied&limit=1&after={next}"),
                &token,
            )
            .await;
        assert!(first["data"][0]["position"].as_u64() < second["data"][0]["position"].as_u64());

        let (_, everything) = s
            .get_as("/sealpost/v1/audit/access?limit=1000", &token)
            .await;
        let (_, report) = s
            .get_text("/sealpost/v1/dpo/retention?format=html", &token)
            .await;
        for text in [everything.to_string(), denials.to_string(), report] {
            assert!(!text.contains(&body), "{who} saw a message body");
            assert!(!text.contains("CANARY-"), "{who} saw content");
            assert!(!text.contains(CONSUMER), "{who} saw a phone number");
        }
    }
    // The auditors' own refused reads are in the log as well.
    let (_, theirs) = s
        .get_as(
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
        let (st, r) = s
            .get_as("/sealpost/v1/dpo/retention?format=json", &dpo)
            .await;
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

    let (st, html) = s
        .get_text("/sealpost/v1/dpo/retention?format=html", &dpo)
        .await;
    assert_eq!(st, 200);
    let metrics = sealpost_projections::report::html_metrics(&html);
    for (metric, json) in [
        ("messages_created", &m["created"]),
        ("messages_live", &m["live"]),
        ("messages_shredded", &m["shredded"]),
        ("overdue_keys", &report["overdue_keys"]),
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
    let (st, bill) = s
        .get_as("/sealpost/v1/billing", &s.s("internal_token"))
        .await;
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
    let (st, erased) = s
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("access_token")),
            &request.to_string(),
        )
        .await;
    assert_eq!(st, 201, "{erased}");
    assert!(
        !erased.to_string().contains(CONSUMER),
        "no number in a certificate"
    );
    let cert: sealpost_audit::certificate::ErasureCertificate =
        serde_json::from_value(erased["certificate"].clone()).expect("certificate");
    let key = s.published_key().await;
    cert.verify(&key).expect("the certificate verifies");
    assert!(cert.completed_at.is_some());
    assert!(cert.categories.iter().any(|c| c == "consumer phone number"));
    let mut forged = cert.clone();
    let mut bytes = hex::decode(&forged.inclusion_proof.path[0]).expect("hex");
    bytes[0] ^= 0x80;
    forged.inclusion_proof.path[0] = hex::encode(bytes);
    assert!(forged.verify(&key).is_err(), "a changed proof fails");

    let (st, gone) = s
        .get_as(
            &format!("/sealpost/v1/messages/{old}"),
            &s.s("access_token"),
        )
        .await;
    assert_eq!(st, 200, "{gone}");
    assert_eq!(gone["shredded"], true, "{gone}");

    // Repeating is safe: by number nothing is held any more; by subject, the same erasure.
    let (st, again) = s
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("access_token")),
            &request.to_string(),
        )
        .await;
    assert_eq!((st, &again["erased"]), (200, &json!(false)), "{again}");
    let (st, same) = s
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("dpo_token")),
            &json!({"subject_id": cert.subject_id}).to_string(),
        )
        .await;
    assert_eq!(st, 201, "{same}");
    assert_eq!(
        same["certificate"]["event"]["position"],
        json!(cert.event.position)
    );

    // The same number writes again: a new subject, which can be erased in its turn.
    let (st, _) = s.converse("hello again", text(CONSUMER, "after")).await;
    assert_eq!(st, 200);
    let (st, second) = s
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("dpo_token")),
            &request.to_string(),
        )
        .await;
    assert_eq!(st, 201, "{second}");
    assert_ne!(
        second["certificate"]["subject_id"],
        json!(cert.subject_id),
        "a later message from the same number is a new subject"
    );
    // The auditor cannot erase.
    assert_error(
        &s.post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("auditor_token")),
            &json!({"subject_id": cert.subject_id}).to_string(),
        )
        .await,
        403,
        200,
    );
}

/// What a fuzzing pass found (issue 10, item 8): every bad input gets the Graph error envelope
/// with its Cloud API code, and a media object is deleted once however many clients race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_graph_envelope_and_a_racing_delete_succeeds_once() {
    bad_input(start()).await;
}

/// The same on Postgres (a schema of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_postgres() {
    let Some(pg) = sealpost_adapters::testkit::postgres_test_db("http bad input").await else {
        return;
    };
    let url = format!("{}?options=-csearch_path%3D{}", pg.url, pg.schema);
    bad_input(start_on(Some(url))).await;
    pg.drop_schema().await;
}

/// An error envelope with what varies per answer (trace id, details) blanked out.
fn envelope_shape(v: &Value) -> Value {
    let mut v = v.clone();
    v["error"]["fbtrace_id"] = json!("…");
    v["error"]["error_data"]["details"] = json!("…");
    v
}

impl Server {
    /// A request with a raw (already percent-encoded) path: status, content type, JSON body.
    async fn raw(&self, method: &str, path: &str) -> (u16, String, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.s("access_token"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (status, body) = answer(resp).await;
        (status, ctype, body)
    }
}

async fn bad_input(s: Server) {
    let token = s.s("access_token");
    let send = |extra: Value| {
        let mut body = json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "text", "text": {"body": "x"}});
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                body.as_object_mut().expect("object").remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        s.send(body)
    };
    // The 131009 the server already gives for a bad number: the reference envelope.
    let reference = s.send(text("12ab", "x")).await;
    assert_error(&reference, 400, 131_009);
    let keys: Vec<&String> = reference.1["error"]
        .as_object()
        .expect("error")
        .keys()
        .collect();
    assert_eq!(
        keys,
        ["code", "error_data", "fbtrace_id", "message", "type"]
    );
    assert_eq!(
        reference.1["error"]["message"],
        "(#131009) Parameter value is not valid"
    );

    // 1. A media link that is not an http(s) URL is 131009, in exactly that envelope.
    for link in [
        "ftp://x/y.png",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "picture",
        "https://",
        "http:///no-host",
        "data:image/png;base64,iVBORw0KGgo=",
        " https://example.com/a.png",
    ] {
        for kind in ["image", "document", "sticker"] {
            let got = send(json!({"type": kind, kind: {"link": link}})).await;
            assert_error(&got, 400, 131_009);
            assert_eq!(
                envelope_shape(&got.1),
                envelope_shape(&reference.1),
                "{link}"
            );
            assert_eq!(
                got.1["error"]["error_data"]["details"],
                format!("The value of {kind}.link is not valid."),
            );
        }
    }
    // An http(s) link passes the check (and meets the closed service window: no conversation).
    for link in ["https://example.com/a.png", "HTTP://example.com/a.png"] {
        assert_error(
            &send(json!({"type": "image", "image": {"link": link}})).await,
            400,
            131_047,
        );
    }

    // 2. A parameter of the wrong JSON type is error 100 naming it; nothing is echoed.
    let wrong_types = [
        (
            json!({"text": {"body": "x", "preview_url": "true"}}),
            "text.preview_url",
        ),
        (json!({"context": {"message_id": 42}}), "context.message_id"),
        (json!({"context": "wamid.x"}), "context"),
        (json!({"text": {"body": 5}}), "text.body"),
        (json!({"text": "hello"}), "text"),
        (json!({"type": 7}), "type"),
        (json!({"recipient_type": 1}), "recipient_type"),
        (json!({"messaging_product": true}), "messaging_product"),
        (
            json!({"biz_opaque_callback_data": {"order": 42}}),
            "biz_opaque_callback_data",
        ),
        (json!({"to": 4_915_112_345_678_u64}), "to"),
        (json!({"to": null, "recipient": 5}), "recipient"),
        (
            json!({"type": "image", "image": {"link": "https://example.com/a.png", "caption": 3}}),
            "image.caption",
        ),
        (
            json!({"type": "document", "document": {"id": "1", "filename": ["a"]}}),
            "document.filename",
        ),
        (json!({"type": "image", "image": {"id": 123}}), "image.id"),
        (
            json!({"type": "template", "template": {"name": "x", "language": "en_US"}}),
            "template.language",
        ),
        (
            json!({"type": "template", "template": {"name": "x", "language": {"code": "en_US"}, "components": {}}}),
            "template.components",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "body": "Pick", "action": {}}}),
            "interactive.body",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "action": []}}),
            "interactive.action",
        ),
        (
            json!({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": 1}}),
            "reaction.emoji",
        ),
    ];
    for (extra, field) in wrong_types {
        let got = send(extra.clone()).await;
        assert_error(&got, 400, 100);
        let details = got.1["error"]["error_data"]["details"]
            .as_str()
            .expect("details");
        assert!(
            details.starts_with(&format!("The parameter {field} must be ")),
            "{extra} -> {details}"
        );
        assert!(!details.contains("4915112"), "no number in an error");
    }
    // Mark-read reads its parameters the same way.
    let read = s
        .send(json!({"messaging_product": "whatsapp", "status": "read", "message_id": 42}))
        .await;
    assert_error(&read, 400, 100);
    assert_eq!(
        read.1["error"]["error_data"]["details"],
        "The parameter message_id must be a string."
    );

    // 3. A path segment that is not UTF-8 is a bad parameter in the envelope, on every route.
    let phone = s.s("phone_number_id");
    for (method, path) in [
        ("GET", "/v21.0/%FF%FE".to_owned()),
        ("DELETE", "/v21.0/%FF%FE".to_owned()),
        ("POST", "/v21.0/%C3%28/messages".to_owned()),
        ("POST", "/%C3%28/messages".to_owned()),
        ("POST", "/v21.0/%FF/media".to_owned()),
        ("GET", "/v21.0/%FF/settings".to_owned()),
        ("POST", "/v21.0/%FF/register".to_owned()),
        ("GET", "/v21.0/%FF/message_templates".to_owned()),
        ("POST", "/v21.0/%FF/subscriptions".to_owned()),
        ("POST", format!("/%FF/{phone}/messages")),
        ("GET", "/sealpost/v1/media/%FF".to_owned()),
        ("DELETE", "/sealpost/v1/tokens/%FF".to_owned()),
        ("GET", "/sealpost/v1/messages/%FF".to_owned()),
        ("GET", "/sealpost/v1/audit/proofs/%FF".to_owned()),
        ("GET", "/sim/v1/devices/%FF/inbox".to_owned()),
        ("POST", "/sim/v1/devices/%C3%28/messages".to_owned()),
    ] {
        let (status, ctype, body) = s.raw(method, &path).await;
        assert_eq!(
            (status, ctype.as_str()),
            (400, "application/json"),
            "{method} {path}: {body}"
        );
        assert_error(&(status, body), 400, 100);
    }

    // 4. Uploaded bytes must be what their declared type says (131053, Media upload error).
    let exe: Vec<u8> = [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".as_slice(),
        &[0u8; 48],
        b"PE\x00\x00".as_slice(),
    ]
    .concat();
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n".to_vec();
    let zip = [b"PK\x03\x04\x14\x00\x00\x00\x08\x00".as_slice(), &[0u8; 40]].concat();
    let upload = |mime: &'static str, bytes: Vec<u8>| {
        let token = token.clone();
        let s = &s;
        async move {
            s.upload(
                &token,
                &[
                    ("messaging_product", None, b"whatsapp"),
                    ("file", Some(("f", mime)), &bytes),
                ],
            )
            .await
        }
    };
    for (mime, bytes) in [
        ("image/png", exe.clone()),
        ("image/png", pdf.clone()),
        ("image/jpeg", png("a picture", &[])),
        ("video/mp4", exe.clone()),
        ("application/pdf", exe.clone()),
        ("text/plain", exe.clone()),
        ("text/csv", zip.clone()),
    ] {
        let got = upload(mime, bytes).await;
        assert_error(&got, 400, 131_053);
        assert_eq!(got.1["error"]["message"], "(#131053) Media upload error");
    }
    // The `type` field declares it too.
    assert_error(
        &s.upload(
            &token,
            &[
                ("messaging_product", None, b"whatsapp"),
                ("type", None, b"image/png"),
                ("file", Some(("f", "application/octet-stream")), &exe),
            ],
        )
        .await,
        400,
        131_053,
    );
    for (mime, bytes) in [
        ("image/png", png("a picture", &[])),
        ("application/pdf", pdf.clone()),
        ("text/csv", b"MZ Holdings,42\nBC Hydro,7\n".to_vec()),
        ("text/plain", "Grüße\n".as_bytes().to_vec()),
    ] {
        let (st, v) = upload(mime, bytes).await;
        assert_eq!(st, 200, "{mime}: {v}");
    }

    // 5. Racing deletes of one object: exactly one succeeds, the others answer as for an
    // unknown id. Several rounds, so that the race really happens.
    let unknown = s.delete("/v21.0/999999999999999", &token).await;
    assert_error(&unknown, 403, 200);
    for round in 0..3 {
        let (st, up) = upload("image/png", png(&format!("round {round}"), &[])).await;
        assert_eq!(st, 200, "{up}");
        let path = format!("/v21.0/{}", up["id"].as_str().expect("media id"));
        let answers = futures::future::join_all((0..8).map(|_| s.delete(&path, &token))).await;
        let successes = answers
            .iter()
            .filter(|a| **a == (200, json!({"success": true})))
            .count();
        assert_eq!(successes, 1, "round {round}: {answers:?}");
        for a in answers.iter().filter(|a| a.0 != 200) {
            assert_error(a, 403, 200);
            assert_eq!(envelope_shape(&a.1), envelope_shape(&unknown.1));
            assert_eq!(
                a.1["error"]["error_data"]["details"],
                unknown.1["error"]["error_data"]["details"]
            );
        }
    }
}
