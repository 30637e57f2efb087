//! The Cloud API surface, on both stores: text sends, media, templates,
//! every other message type, deletes, the error envelopes, the unversioned path; and nothing of
//! it in the TRACE log.

use crate::common::server::{download, Node};
use crate::common::{canary, text, CONSUMER};
use crate::{assert_error, on_postgres, png, start};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_api_surface_answers_like_the_cloud_api() {
    cloud_api_surface(start()).await;
}

/// The same black-box run against a server on Postgres (a schema of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_api_surface_on_postgres() {
    let Some((s, pg)) = on_postgres("http").await else {
        return;
    };
    cloud_api_surface(s).await;
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sealpost_events")
        .fetch_one(&pg.pool)
        .await
        .expect("count");
    assert!(events > 50, "the server wrote its events to Postgres");
    pg.drop_schema().await;
}

/// The steps in order: later ones send to the conversation and the media object of earlier
/// ones.
async fn cloud_api_surface(s: Node) {
    let id = text_reaches_the_device(&s).await;
    let media = media_round_trip(&s).await;
    upload_errors(&s).await;
    templates_are_reviewed(&s).await;
    every_other_type_reaches_the_device(&s, &id, &media).await;
    a_deleted_object_is_gone_every_way(&s, &media).await;
    error_envelopes(&s).await;
    // Unversioned paths work too.
    let (st, _) = s
        .post(
            &format!("/{}/messages", s.s("phone_number_id")),
            Some(&s.s("access_token")),
            text(CONSUMER, "unversioned"),
        )
        .await;
    assert_eq!(st, 200);
    nothing_of_it_in_the_log(&s).await;
}

/// A consumer writes first (opening the service window), from a simulated phone. Text: the
/// exact success shape; the device decrypts exactly what was sent. The message's id.
async fn text_reaches_the_device(s: &Node) -> String {
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
    id
}

/// An uploaded picture: its id, short-lived URL, SHA-256 and bytes.
struct Media {
    id: String,
    url: String,
    sha: String,
    picture: Vec<u8>,
}

/// Media: upload (multipart), description, download through the short-lived URL.
async fn media_round_trip(s: &Node) -> Media {
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
    let media = Media {
        id: media_id,
        url,
        sha,
        picture,
    };
    the_url_needs_the_business_token(s, &media).await;
    media
}

/// The download URL answers the bytes to the business's token only, and not when altered.
async fn the_url_needs_the_business_token(s: &Node, media: &Media) {
    let (token, url) = (s.s("access_token"), &media.url);
    let (st, ctype, bytes) = download(url, Some(&token)).await;
    assert_eq!((st, ctype.as_str()), (200, "image/png"));
    assert_eq!(bytes, media.picture, "the bytes round-trip");
    assert_eq!(download(url, None).await.0, 401, "the URL needs the token");
    assert_eq!(
        download(url, Some(&s.s("dpo_token"))).await.0,
        403,
        "and the same business's token"
    );
    let tampered = format!("{}0", &url[..url.len() - 1]);
    let tampered = if tampered == *url {
        format!("{}1", &url[..url.len() - 1])
    } else {
        tampered
    };
    assert_eq!(download(&tampered, Some(&token)).await.0, 400);
}

async fn upload_errors(s: &Node) {
    let token = s.s("access_token");
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
                    Some(("big.png", "image/png")),
                    &vec![0u8; 6 * 1024 * 1024],
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
    let path = format!("/v21.0/{}/media", s.s("phone_number_id"));
    assert_error(&s.post_raw(&path, Some(&token), "{}").await, 400, 100);
}

/// Templates: submitted, pending review (132001), approved after the review step, listed.
async fn templates_are_reviewed(s: &Node) {
    let templates = format!("/v21.0/{}/message_templates", s.s("waba_id"));
    let tpl = json!({"name": "order_update", "language": "en_US", "category": "utility", "components": [{"type": "BODY", "text": "Order {{1}} shipped"}]});
    let (st, v) = s
        .post(&templates, Some(&s.s("access_token")), tpl.clone())
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["category"].as_str()),
        (200, Some("PENDING"), Some("UTILITY")),
        "{v}"
    );
    assert_error(
        &s.post(&templates, Some(&s.s("access_token")), tpl.clone())
            .await,
        400,
        100,
    );
    assert_error(
        &s.post(&templates, Some(&s.s("auditor_token")), tpl).await,
        403,
        200,
    );
    let template_send = json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}});
    assert_error(&s.send(template_send).await, 404, 132_001);
    s.advance(61).await;
    let (st, list) = s.get(&templates, &s.s("access_token")).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"][0]["status"], "APPROVED");
    assert_eq!(list["data"][0]["components"][0]["type"], "BODY");
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "template", "template": {"name": "no_such", "language": {"code": "en_US"}}})).await, 404, 132_001);
}

/// Every other type answers the same shape and reaches the device; a send by media id carries
/// the object itself to the phone.
async fn every_other_type_reaches_the_device(s: &Node, id: &str, media: &Media) {
    let media_id = &media.id;
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
    let image = inbox
        .iter()
        .find(|m| m["content"]["type"] == "image")
        .expect("image on the device");
    assert_eq!(image["content"]["image"]["caption"], "your bike");
    assert_eq!(image["content"]["image"]["sha256"], media.sha.as_str());
    {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(image["content"]["image"]["data"].as_str().expect("data"))
            .expect("base64");
        assert_eq!(data, media.picture);
    }
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"id": "999999999999999"}})).await, 400, 131_009);
}

/// Delete: the object's key is destroyed; every way to it then answers as for no object.
async fn a_deleted_object_is_gone_every_way(s: &Node, media: &Media) {
    let (token, path) = (s.s("access_token"), format!("/v21.0/{}", media.id));
    assert_eq!(
        s.delete(&path, &token).await,
        (200, json!({"success": true}))
    );
    assert_error(&s.get(&path, &token).await, 403, 200);
    assert_eq!(download(&media.url, Some(&token)).await.0, 403);
    assert_error(&s.delete(&path, &token).await, 403, 200);
    assert_error(&s.send(json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"id": media.id}})).await, 400, 131_009);
}

/// Errors: the Graph envelope with the Cloud API code and HTTP status.
async fn error_envelopes(s: &Node) {
    let path = format!("/v21.0/{}/messages", s.s("phone_number_id"));
    let token = s.s("access_token");
    let body = text(CONSUMER, "x").to_string();
    assert_error(&s.post_raw(&path, None, &body).await, 401, 190);
    assert_error(
        &s.post_raw(&path, Some("SPnot-a-token"), &body).await,
        401,
        190,
    );
    for who in ["auditor_token", "internal_token"] {
        assert_error(&s.post_raw(&path, Some(&s.s(who)), &body).await, 403, 200);
    }
    let other = "/v21.0/106540352242922/messages";
    assert_error(&s.post_raw(other, Some(&token), &body).await, 403, 200);
    let v99 = format!("/v99.0/{}/messages", s.s("phone_number_id"));
    assert_error(&s.post_raw(&v99, Some(&token), &body).await, 400, 100);
    assert_error(
        &s.post_raw(&path, Some(&token), "{not json").await,
        400,
        100,
    );
    let huge = "x".repeat(2 * 1024 * 1024);
    assert_error(&s.post_raw(&path, Some(&token), &huge).await, 400, 100);
    bad_sends_are_refused(s).await;
}

/// Sends the API refuses before anything is sent.
async fn bad_sends_are_refused(s: &Node) {
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
}

/// Nothing the server logged holds a body, a number or a token.
async fn nothing_of_it_in_the_log(s: &Node) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        s.log_text().contains("bootstrapped a development tenant"),
        "the log capture works"
    );
    s.assert_log_lacks(&[
        canary(0, "in"),
        canary(0, "out"),
        canary(1, "out"),
        canary(2, "media"),
        CONSUMER.to_owned(),
        "33612345678".to_owned(),
        s.s("access_token"),
        s.s("auditor_token"),
        s.s("app_secret"),
    ]);
}
