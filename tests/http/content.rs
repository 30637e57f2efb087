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
