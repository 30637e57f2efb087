use super::*;
use proptest::prelude::*;

fn round_trip(json: &str) -> MessageContent {
    let content: MessageContent = serde_json::from_str(json).expect("parses");
    let again = MessageContent::from_bytes(&content.to_bytes());
    assert_eq!(again, content, "{json}");
    content
}

#[test]
fn every_cloud_api_type_reads_and_writes_in_its_own_shape() {
    let text = round_trip(r#"{"type":"text","text":{"body":"hi","preview_url":false}}"#);
    assert_eq!(text.kind(), MessageKind::Text);
    let image = round_trip(r#"{"type":"image","image":{"id":"123","caption":"your bike"}}"#);
    assert_eq!(image.media().and_then(|m| m.id.as_deref()), Some("123"));
    let link = round_trip(
        r#"{"type":"document","document":{"link":"https://x/y.pdf","filename":"y.pdf"}}"#,
    );
    assert_eq!(link.kind(), MessageKind::Document);
    let template = round_trip(
        r#"{"type":"template","template":{"name":"order_update","language":{"code":"en_US"},
            "components":[{"type":"body","parameters":[{"type":"text","text":"42"},
            {"type":"currency","currency":{"fallback_value":"$1","code":"USD","amount_1000":1000}}]},
            {"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"p"}]}]}}"#,
    );
    let Payload::Template(t) = &template.payload else {
        panic!("a template")
    };
    assert_eq!(t.components[1].index, Some(Index::Text("0".into())));
    let list = round_trip(
        r#"{"type":"interactive","interactive":{"type":"list","body":{"text":"Pick"},
            "action":{"button":"Pick","sections":[{"title":"S","rows":[{"id":"r1","title":"One","description":"d"}]}]}}}"#,
    );
    assert_eq!(list.kind(), MessageKind::Interactive);
    round_trip(
        r#"{"type":"interactive","interactive":{"type":"button","body":{"text":"?"},
            "action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"Yes"}}]}}}"#,
    );
    round_trip(
        r#"{"type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"a","title":"Yes"}}}"#,
    );
    round_trip(r#"{"type":"reaction","reaction":{"message_id":"wamid.x","emoji":"👍"}}"#);
    let place = round_trip(
        r#"{"type":"location","location":{"latitude":"52.52","longitude":13.4,"name":"Berlin"}}"#,
    );
    let Payload::Location(l) = &place.payload else {
        panic!("a location")
    };
    assert!((l.latitude - 52.52).abs() < 1e-9);
    round_trip(
        r#"{"type":"contacts","contacts":[{"name":{"formatted_name":"Ann B","first_name":"Ann"},
            "phones":[{"phone":"+49 151","type":"CELL","wa_id":"49151"}],"emails":[{"email":"a@b.c"}],"birthday":"2000-01-02"}]}"#,
    );
    round_trip(r#"{"type":"button","button":{"text":"Yes","payload":"p"}}"#);
    let reply =
        round_trip(r#"{"type":"text","text":{"body":"re"},"context":{"message_id":"wamid.a"}}"#);
    assert_eq!(
        reply.context.and_then(|c| c.message_id).as_deref(),
        Some("wamid.a")
    );
}

#[test]
fn the_json_is_the_cloud_api_shape() {
    let json = String::from_utf8(MessageContent::text("hi").to_bytes()).expect("utf-8");
    assert_eq!(json, r#"{"type":"text","text":{"body":"hi"}}"#);
}

#[test]
fn anything_else_is_text_with_its_bytes_as_the_body() {
    for raw in [
        "plain words",
        r#"{"type":"hologram"}"#,
        r#"{"type":"image"}"#,
        r#"{"type":"location","location":{"latitude":"north","longitude":1}}"#,
        "[1,2]",
    ] {
        assert_eq!(
            MessageContent::from_bytes(raw.as_bytes()),
            MessageContent::text(raw)
        );
    }
    assert_eq!(
        MessageContent::from_bytes(&[0xff, 0xfe]).kind(),
        MessageKind::Text
    );
}

#[test]
fn unknown_members_are_dropped() {
    let c = MessageContent::from_bytes(br#"{"type":"text","text":{"body":"hi","x":1},"y":2}"#);
    assert_eq!(c, MessageContent::text("hi"));
}

proptest! {
    #[test]
    fn text_survives_its_encoding(body in ".{0,64}", preview in proptest::option::of(any::<bool>())) {
        let c = MessageContent::new(Payload::Text(Text { body, preview_url: preview }));
        prop_assert_eq!(MessageContent::from_bytes(&c.to_bytes()), c);
    }

    #[test]
    fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = MessageContent::from_bytes(&bytes);
    }
}

#[test]
fn debug_never_shows_the_content() {
    let c = MessageContent::text("secret words");
    assert_eq!(format!("{c:?}"), "MessageContent(text, <redacted>)");
    assert!(!format!("{:?}", c.payload).contains("secret"));
}
