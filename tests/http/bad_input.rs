//! Bad input, on both stores (what a fuzzing pass found, issue 10, item 8): every bad input gets
//! the Graph error envelope with its Cloud API code, and a media object is deleted once however
//! many clients race.

use crate::common::server::{answer, content_type, Node};
use crate::common::{text, CONSUMER};
use crate::{assert_error, on_postgres, png, start};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_graph_envelope_and_a_racing_delete_succeeds_once() {
    bad_input(start()).await;
}

/// The same on Postgres (a schema of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_postgres() {
    if let Some((s, pg)) = on_postgres("http bad input").await {
        bad_input(s).await;
        pg.drop_schema().await;
    }
}

async fn bad_input(s: Node) {
    let reference = reference_envelope(&s).await;
    links_that_are_not_http_are_131009(&s, &reference).await;
    parameters_of_the_wrong_type_are_100(&s).await;
    paths_that_are_not_utf8_get_the_envelope(&s).await;
    uploads_must_be_what_they_declare(&s).await;
    racing_deletes_succeed_once(&s).await;
}

/// An error envelope with what varies per answer (trace id, details) blanked out.
fn envelope_shape(v: &Value) -> Value {
    let mut v = v.clone();
    v["error"]["fbtrace_id"] = json!("…");
    v["error"]["error_data"]["details"] = json!("…");
    v
}

/// A text send to [`CONSUMER`] with the fields of `extra` set (or removed where `null`).
async fn send_with(s: &Node, extra: Value) -> (u16, Value) {
    let mut body = json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "text", "text": {"body": "x"}});
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            body.as_object_mut().expect("object").remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    s.send(body).await
}

/// A request with a raw (already percent-encoded) path: status, content type, JSON body.
async fn raw(s: &Node, method: &str, path: &str) -> (u16, String, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let resp = s
        .request(method, path)
        .bearer_auth(s.s("access_token"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    let ctype = content_type(&resp);
    let (status, body) = answer(resp).await;
    (status, ctype, body)
}

/// Uploads `bytes` as a file of type `mime` with the business's token.
async fn upload_file(s: &Node, mime: &str, bytes: &[u8]) -> (u16, Value) {
    s.upload(
        &s.s("access_token"),
        &[
            ("messaging_product", None, b"whatsapp"),
            ("file", Some(("f", mime)), bytes),
        ],
    )
    .await
}

/// The 131009 the server already gives for a bad number: the reference envelope.
async fn reference_envelope(s: &Node) -> (u16, Value) {
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
    reference
}

/// 1. A media link that is not an http(s) URL is 131009, in exactly the `reference` envelope.
async fn links_that_are_not_http_are_131009(s: &Node, reference: &(u16, Value)) {
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
            let got = send_with(s, json!({"type": kind, kind: {"link": link}})).await;
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
            &send_with(s, json!({"type": "image", "image": {"link": link}})).await,
            400,
            131_047,
        );
    }
}

/// 2. A parameter of the wrong JSON type is error 100 naming it; nothing is echoed.
async fn parameters_of_the_wrong_type_are_100(s: &Node) {
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
        let got = send_with(s, extra.clone()).await;
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
}

/// 3. A path segment that is not UTF-8 is a bad parameter in the envelope, on every route.
async fn paths_that_are_not_utf8_get_the_envelope(s: &Node) {
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
        let (status, ctype, body) = raw(s, method, &path).await;
        assert_eq!(
            (status, ctype.as_str()),
            (400, "application/json"),
            "{method} {path}: {body}"
        );
        assert_error(&(status, body), 400, 100);
    }
}

/// 4. Uploaded bytes must be what their declared type says (131053, Media upload error).
async fn uploads_must_be_what_they_declare(s: &Node) {
    let exe: Vec<u8> = [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".as_slice(),
        &[0u8; 48],
        b"PE\x00\x00".as_slice(),
    ]
    .concat();
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n".to_vec();
    let zip = [b"PK\x03\x04\x14\x00\x00\x00\x08\x00".as_slice(), &[0u8; 40]].concat();
    for (mime, bytes) in [
        ("image/png", exe.clone()),
        ("image/png", pdf.clone()),
        ("image/jpeg", png("a picture", &[])),
        ("video/mp4", exe.clone()),
        ("application/pdf", exe.clone()),
        ("text/plain", exe.clone()),
        ("text/csv", zip.clone()),
    ] {
        let got = upload_file(s, mime, &bytes).await;
        assert_error(&got, 400, 131_053);
        assert_eq!(got.1["error"]["message"], "(#131053) Media upload error");
    }
    // The `type` field declares it too.
    assert_error(
        &s.upload(
            &s.s("access_token"),
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
        let (st, v) = upload_file(s, mime, &bytes).await;
        assert_eq!(st, 200, "{mime}: {v}");
    }
}

/// 5. Racing deletes of one object: exactly one succeeds, the others answer as for an
///    unknown id. Several rounds, so that the race really happens.
async fn racing_deletes_succeed_once(s: &Node) {
    let token = s.s("access_token");
    let unknown = s.delete("/v21.0/999999999999999", &token).await;
    assert_error(&unknown, 403, 200);
    for round in 0..3 {
        let (st, up) = upload_file(s, "image/png", &png(&format!("round {round}"), &[])).await;
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
