//! The Business Manager surface a client library calls (issue 16): the WABA, its phone
//! numbers, `?fields=`, the apps subscribed to its webhooks (an unsubscribed app gets
//! nothing, subscribed again it gets what happens next), and a number's business profile,
//! kept across a restart and checked against the Cloud API's limits.

use super::{assert_error, start};
use crate::common::hook::Hook;
use crate::common::CONSUMER;
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waba_its_numbers_its_subscribed_apps_and_the_business_profile() {
    let node = start();
    let token = node.s("access_token");
    let (waba, number, app) = (
        node.s("waba_id"),
        node.s("phone_number_id"),
        node.s("app_id"),
    );

    // The WABA, whole and narrowed; another id is refused like a foreign one.
    let (st, described) = node.get(&format!("/v21.0/{waba}"), &token).await;
    assert_eq!(st, 200, "{described}");
    assert_eq!(described["id"], waba.as_str());
    assert!(
        described["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{described}"
    );
    let (_, narrow) = node
        .get(&format!("/v21.0/{waba}?fields=name"), &token)
        .await;
    assert_eq!(keys(&narrow), ["id", "name"], "{narrow}");
    assert_error(
        &node
            .get("/v21.0/123456789012345/phone_numbers", &token)
            .await,
        403,
        200,
    );

    // Its phone numbers, and one number narrowed by `fields`.
    let (st, numbers) = node
        .get(&format!("/v21.0/{waba}/phone_numbers"), &token)
        .await;
    assert_eq!(st, 200, "{numbers}");
    let listed = numbers["data"].as_array().expect("data");
    assert_eq!(listed.len(), 1, "{numbers}");
    assert_eq!(listed[0]["id"], number.as_str());
    assert_eq!(
        listed[0]["platform_type"], "CLOUD_API",
        "a number it serves"
    );
    assert!(
        numbers["paging"]["cursors"]["after"].is_string(),
        "{numbers}"
    );
    let (_, one) = node
        .get(
            &format!("/v21.0/{number}?fields=display_phone_number,quality_rating"),
            &token,
        )
        .await;
    assert_eq!(
        keys(&one),
        ["display_phone_number", "id", "quality_rating"],
        "{one}"
    );

    // Subscribed apps: the app from its registration; unsubscribed, its webhook gets nothing.
    let hook = Hook::default();
    node.subscribe(&hook.listen().await).await;
    let subscribed = format!("/v21.0/{waba}/subscribed_apps");
    let (st, apps) = node.get(&subscribed, &token).await;
    assert_eq!(st, 200, "{apps}");
    assert_eq!(
        apps["data"],
        json!([{ "whatsapp_business_api_data": { "id": app } }])
    );
    assert_eq!(
        node.delete(&subscribed, &token).await,
        (200, json!({"success": true}))
    );
    assert_eq!(node.get(&subscribed, &token).await.1["data"], json!([]));
    let write = |body: &str| json!({"to": node.s("display_phone_number"), "type": "text", "text": {"body": body}});
    // The phone writes, and the business's answer is accepted inside the window that opened:
    // the phone's message was forwarded (recorded before the window opens) while unsubscribed.
    // (The answer's own statuses may come after the app subscribes again, and then go to it.)
    let answer = json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "text",
                        "text": {"body": "answer while unsubscribed"}});
    let (st, answered) = node.converse("while unsubscribed", answer).await;
    assert_eq!(st, 200, "{answered}");
    let (st, v) = node.post(&subscribed, Some(&token), json!({})).await;
    assert_eq!((st, v), (200, json!({"success": true})));
    let (st, _) = node.device_send(CONSUMER, write("subscribed again")).await;
    assert_eq!(st, 200);
    let got = hook
        .wait_for(|n| n.iter().any(|v| v.to_string().contains("subscribed again")))
        .await;
    assert!(
        !got.iter()
            .any(|v| v.to_string().contains("\"body\":\"while unsubscribed\"")),
        "an unsubscribed app gets nothing of that time: {got:?}"
    );
    let (st, refused) = node
        .post(
            &subscribed,
            Some(&token),
            json!({"override_callback_uri": "https://elsewhere.example/hook", "verify_token": "x"}),
        )
        .await;
    assert_eq!(st, 400, "{refused}");

    // The business profile: empty, set, read back after a restart, its limits enforced.
    let profile = format!("/v21.0/{number}/whatsapp_business_profile");
    let (st, empty) = node.get(&profile, &token).await;
    assert_eq!(st, 200, "{empty}");
    assert_eq!(empty["data"][0]["about"], "", "{empty}");
    assert_eq!(empty["data"][0]["messaging_product"], "whatsapp");
    let set = json!({"messaging_product": "whatsapp", "about": "Fresh bread daily",
        "email": "shop@bakery.example", "vertical": "RETAIL",
        "websites": ["https://bakery.example"], "address": "1 Main St"});
    assert_eq!(
        node.post(&profile, Some(&token), set).await,
        (200, json!({"success": true}))
    );
    let node = node.restart();
    let (st, read) = node
        .get(&format!("{profile}?fields=about,websites"), &token)
        .await;
    assert_eq!(st, 200, "{read}");
    assert_eq!(
        read["data"][0],
        json!({"messaging_product": "whatsapp", "about": "Fresh bread daily",
               "websites": ["https://bakery.example"]})
    );
    let (_, whole) = node.get(&profile, &token).await;
    assert_eq!(whole["data"][0]["email"], "shop@bakery.example");
    assert_eq!(whole["data"][0]["vertical"], "RETAIL");
    for (body, code, param) in [
        (
            json!({"messaging_product": "whatsapp", "email": "not-an-address"}),
            131_009,
            "email",
        ),
        (
            json!({"messaging_product": "whatsapp", "about": "x".repeat(140)}),
            131_009,
            "about",
        ),
        (
            json!({"messaging_product": "whatsapp", "vertical": "SPACESHIPS"}),
            131_009,
            "vertical",
        ),
        (
            json!({"messaging_product": "whatsapp", "websites": ["https://a.example", "https://b.example", "https://c.example"]}),
            131_009,
            "websites",
        ),
        (
            json!({"messaging_product": "whatsapp", "websites": "https://a.example"}),
            100,
            "websites",
        ),
        (json!({"about": "no product"}), 131_008, "messaging_product"),
    ] {
        let (st, v) = node.post(&profile, Some(&token), body).await;
        assert_eq!(
            (st, v["error"]["code"].as_i64()),
            (400, Some(code)),
            "{param}: {v}"
        );
        assert!(
            v.to_string().contains(param),
            "the error names {param}: {v}"
        );
    }
    let (_, unchanged) = node.get(&profile, &token).await;
    assert_eq!(unchanged["data"][0]["about"], "Fresh bread daily");
}
