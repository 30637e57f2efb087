//! Typed content end to end: every send type is checked at the edge, read once into the
//! domain's `MessageContent`, sealed, and arrives at the phone in the Cloud API's shape.

use super::start;
use crate::common::CONSUMER;
use serde_json::{json, Value};

/// A send of `kind` with its object.
fn body(kind: &str, object: Value) -> Value {
    let mut b = json!({ "messaging_product": "whatsapp", "to": CONSUMER, "type": kind });
    b[kind] = object;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_and_contacts_arrive_typed_and_bad_ones_are_refused() {
    let node = start();
    let place = json!({ "latitude": "52.52", "longitude": 13.405, "name": "Alexanderplatz" });
    let (st, v) = node
        .converse("where are you?", body("location", place))
        .await;
    assert_eq!(st, 200, "{v}");
    let card = json!([{
        "name": { "formatted_name": "Ann Example", "first_name": "Ann" },
        "phones": [{ "phone": "+49 30 1234", "type": "WORK" }],
        "unknown_member": "dropped"
    }]);
    let mut contacts =
        json!({ "messaging_product": "whatsapp", "to": CONSUMER, "type": "contacts" });
    contacts["contacts"] = card;
    let (st, v) = node.send(contacts).await;
    assert_eq!(st, 200, "{v}");
    let shown = node.wait_inbox(CONSUMER, 2).await;
    let contents: Vec<&Value> = shown.iter().map(|m| &m["content"]).collect();
    // Coordinates as numbers, whichever way they came; unknown members dropped.
    assert!(
        contents.contains(&&json!({ "type": "location", "location": {
            "latitude": 52.52, "longitude": 13.405, "name": "Alexanderplatz" } })),
        "{contents:?}"
    );
    assert!(
        contents.contains(&&json!({ "type": "contacts", "contacts": [{
            "name": { "formatted_name": "Ann Example", "first_name": "Ann" },
            "phones": [{ "phone": "+49 30 1234", "type": "WORK" }] }] })),
        "{contents:?}"
    );

    // A coordinate that is no number, a missing one, no cards, a button without its title.
    let refused = [
        (
            body("location", json!({ "latitude": "north", "longitude": 1 })),
            131_009,
            "location",
        ),
        (
            body("location", json!({ "latitude": 1 })),
            131_008,
            "location.longitude",
        ),
        (
            json!({ "messaging_product": "whatsapp", "to": CONSUMER, "type": "contacts", "contacts": [] }),
            131_009,
            "contacts",
        ),
        (
            body(
                "interactive",
                json!({ "type": "button", "body": { "text": "?" },
                "action": { "buttons": [{ "type": "reply", "reply": { "id": "a" } }] } }),
            ),
            131_009,
            "interactive",
        ),
    ];
    for (send, code, param) in refused {
        let (st, v) = node.send(send).await;
        assert_eq!((st, v["error"]["code"].as_i64()), (400, Some(code)), "{v}");
        assert!(
            v["error"]["error_data"]["details"]
                .as_str()
                .is_some_and(|d| d.contains(param)),
            "{param}: {v}"
        );
    }
}

/// A call to action, a location request and a flow (issue 16) go from the business to the
/// phone in the Cloud API's shape; the phone's answers (its location in reply to the request,
/// a contact card, a flow's `nfm_reply`) reach the webhook typed the same way, not as text;
/// each of the three is refused with the API's own error when a member it needs is missing
/// or wrong, and a consumer's answer type cannot be sent by the business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_action_location_requests_and_flows_go_both_ways() {
    let node = start();
    let hook = crate::common::hook::Hook::default();
    node.subscribe(&hook.listen().await).await;
    let cta = json!({ "type": "cta_url", "body": { "text": "Our dates" },
        "action": { "name": "cta_url",
                    "parameters": { "display_text": "See dates", "url": "https://example.com/d" } } });
    let ask = json!({ "type": "location_request_message", "body": { "text": "Where are you?" },
        "action": { "name": "send_location" } });
    let flow = json!({ "type": "flow", "header": { "type": "text", "text": "Booking" },
        "body": { "text": "Book a table" },
        "action": { "name": "flow", "parameters": {
            "flow_message_version": "3", "flow_token": "tok-1", "flow_id": "1234567890",
            "flow_cta": "Book!", "flow_action": "navigate",
            "flow_action_payload": { "screen": "START", "data": { "seats": 2 } } } } });
    let (st, v) = node
        .converse("menu?", body("interactive", cta.clone()))
        .await;
    assert_eq!(st, 200, "{v}");
    let mut asked = String::new();
    for object in [&ask, &flow] {
        let (st, v) = node.send(body("interactive", object.clone())).await;
        assert_eq!(st, 200, "{v}");
        if object == &ask {
            asked = v["messages"][0]["id"].as_str().expect("wamid").to_owned();
        }
    }
    let shown = node.wait_inbox(CONSUMER, 3).await;
    let contents: Vec<&Value> = shown.iter().map(|m| &m["content"]).collect();
    for object in [&cta, &ask, &flow] {
        let want = json!({ "type": "interactive", "interactive": object });
        assert!(contents.contains(&&want), "{want} in {contents:?}");
    }

    // The phone answers: its location (a reply to the request), a card, the flow's answer.
    let to = node.s("display_phone_number");
    let place = json!({ "latitude": 52.52, "longitude": 13.405, "name": "Alexanderplatz" });
    let card = json!([{ "name": { "formatted_name": "Ann Example" },
                        "phones": [{ "phone": "+49 30 1234", "type": "WORK" }] }]);
    let answer = json!({ "type": "nfm_reply", "nfm_reply": {
        "response_json": "{\"flow_token\":\"tok-1\",\"seats\":\"2\"}", "body": "Sent", "name": "flow" } });
    let sent = [
        json!({ "to": to, "type": "location", "location": place, "context": { "id": asked } }),
        json!({ "to": to, "type": "contacts", "contacts": card }),
        json!({ "to": to, "type": "interactive", "interactive": answer }),
    ];
    for message in &sent {
        let (st, v) = node.device_send(CONSUMER, message.clone()).await;
        assert_eq!(st, 200, "{v}");
    }
    let messages = |values: &[Value]| -> Vec<Value> {
        values
            .iter()
            .flat_map(|v| v["messages"].as_array().cloned().unwrap_or_default())
            .filter(|m| m["type"] != "text")
            .collect()
    };
    let got = crate::common::server::poll(
        std::time::Duration::from_millis(50),
        20,
        "the phone's three answers at the webhook",
        || async { Some(messages(&hook.values())).filter(|m| m.len() >= 3) },
    )
    .await;
    for (kind, object) in [
        ("location", &place),
        ("contacts", &card),
        ("interactive", &answer),
    ] {
        let m = got
            .iter()
            .find(|m| m["type"] == kind)
            .unwrap_or_else(|| panic!("a {kind} message in {got:?}"));
        assert_eq!(&m[kind], object, "{m}");
        assert_eq!(m["from"], CONSUMER);
    }
    let located = got
        .iter()
        .find(|m| m["type"] == "location")
        .expect("location");
    assert_eq!(located["context"]["id"], asked.as_str(), "{located}");

    let with = |object: &Value, path: &[&str], value: Value| {
        let mut changed = object.clone();
        let (last, parents) = path.split_last().expect("a path");
        let mut at = &mut changed;
        for p in parents {
            at = &mut at[*p];
        }
        match value {
            Value::Null => {
                at.as_object_mut().expect("an object").remove(*last);
            }
            v => at[*last] = v,
        }
        body("interactive", changed)
    };
    let refused = [
        (
            with(&cta, &["action", "parameters", "url"], json!("not a link")),
            131_009,
            "interactive.action.parameters.url",
        ),
        (
            with(&cta, &["action", "parameters", "display_text"], Value::Null),
            131_008,
            "display_text",
        ),
        (
            with(&ask, &["action", "name"], json!("cta_url")),
            131_009,
            "interactive.action.name",
        ),
        (
            with(&flow, &["action", "parameters", "flow_cta"], Value::Null),
            131_008,
            "flow_cta",
        ),
        (
            with(&flow, &["action", "parameters", "flow_id"], Value::Null),
            131_008,
            "flow_id or flow_name",
        ),
        (
            with(
                &flow,
                &["action", "parameters", "flow_action"],
                json!("jump"),
            ),
            131_009,
            "flow_action",
        ),
        (
            body("interactive", answer.clone()),
            131_009,
            "interactive.type",
        ),
    ];
    for (send, code, param) in refused {
        let (st, v) = node.send(send).await;
        assert_eq!(
            (st, v["error"]["code"].as_i64()),
            (400, Some(code)),
            "{param}: {v}"
        );
        assert!(
            v["error"]["error_data"]["details"]
                .as_str()
                .is_some_and(|d| d.contains(param)),
            "{param}: {v}"
        );
    }
}
