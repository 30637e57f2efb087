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
    round_trip(
        r#"{"type":"interactive","interactive":{"type":"location_request_message","body":{"text":"Where?"},
            "action":{"name":"send_location"}}}"#,
    );
    let flow = round_trip(
        r#"{"type":"interactive","interactive":{"type":"flow","body":{"text":"Book"},
            "action":{"name":"flow","parameters":{"flow_message_version":"3","flow_token":"t1",
            "flow_id":"1234","flow_cta":"Book!","flow_action":"navigate",
            "flow_action_payload":{"screen":"START","data":{"seats":2,"nested":{"a":[1,"b"]}}}}}}}"#,
    );
    let Payload::Interactive(i) = &flow.payload else {
        panic!("interactive")
    };
    let parameters = i.action.as_ref().and_then(|a| a.parameters.as_ref());
    assert_eq!(
        parameters.and_then(|p| p.flow_action),
        Some(super::FlowAction::Navigate)
    );
    round_trip(
        r#"{"type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{
            "response_json":"{\"flow_token\":\"t1\",\"seats\":\"2\"}","body":"Sent","name":"flow"}}}"#,
    );
    // An interactive type this build does not know stays interactive, as `unsupported`, and
    // is nothing a business may send.
    let unknown: MessageContent = serde_json::from_str(
        r#"{"type":"interactive","interactive":{"type":"carousel_of_dreams"}}"#,
    )
    .expect("read");
    let Payload::Interactive(i) = &unknown.payload else {
        panic!("interactive")
    };
    assert_eq!(i.kind, super::InteractiveKind::Unsupported);
    assert!(!i.kind.is_outbound());
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

/// Every optional member present, in declaration order: written back to the byte.
#[test]
fn every_member_written_back_to_the_byte() {
    let media = r#"{"id":"1","link":"https://x/y","data":"AA==","mime_type":"image/png","sha256":"ab","caption":"c","filename":"f","voice":true,"animated":false}"#;
    for json in [
        r#"{"type":"text","text":{"body":"hi","preview_url":true},"context":{"message_id":"m","id":"i","from":"f"}}"#.to_owned(),
        format!(r#"{{"type":"image","image":{media}}}"#),
        format!(r#"{{"type":"sticker","sticker":{media}}}"#),
        r#"{"type":"location","location":{"latitude":52.52,"longitude":13.4,"name":"n","address":"a"}}"#.to_owned(),
        r#"{"type":"button","button":{"text":"t","payload":"p"}}"#.to_owned(),
        r#"{"type":"system","system":{"body":"b","type":"user_changed_number"}}"#.to_owned(),
        r#"{"type":"contacts","contacts":[{"name":{"formatted_name":"A B","first_name":"A","last_name":"B","middle_name":"M","prefix":"Dr","suffix":"Jr"},"phones":[{"phone":"+1","type":"CELL","wa_id":"1"}],"emails":[{"email":"a@b.c","type":"WORK"}],"urls":[{"url":"https://b.c","type":"WORK"}],"addresses":[{"street":"s","city":"c","state":"st","zip":"z","country":"co","country_code":"CC","type":"HOME"}],"org":{"company":"c","department":"d","title":"t"},"birthday":"2000-01-02"}]}"#.to_owned(),
        format!(r#"{{"type":"template","template":{{"name":"n","language":{{"code":"en","policy":"deterministic"}},"components":[{{"type":"button","sub_type":"url","index":0,"parameters":[{{"type":"text","parameter_name":"p","text":"t","payload":"y","coupon_code":"c","currency":{{"fallback_value":"$1","code":"USD","amount_1000":1000}},"date_time":{{"fallback_value":"today"}},"image":{media},"document":{media},"video":{media}}}]}}]}}}}"#),
        format!(r#"{{"type":"interactive","interactive":{{"type":"cta_url","header":{{"type":"image","text":"t","image":{media},"video":{media},"document":{media}}},"body":{{"text":"b"}},"footer":{{"text":"f"}},"action":{{"button":"b","buttons":[{{"type":"reply","reply":{{"id":"i","title":"t","description":"d"}}}}],"sections":[{{"title":"s","rows":[{{"id":"r","title":"t","description":"d"}}]}}],"name":"cta_url","parameters":{{"display_text":"d","url":"https://u"}}}},"button_reply":{{"id":"i","title":"t","description":"d"}},"list_reply":{{"id":"i","title":"t","description":"d"}}}}}}"#),
    ] {
        let content = MessageContent::from_bytes(json.as_bytes());
        assert_eq!(String::from_utf8(content.to_bytes()).expect("utf-8"), json);
    }
}

/// Every optional member absent: none is written, not even as `null`.
#[test]
fn absent_members_are_left_out() {
    for json in [
        r#"{"type":"text","text":{"body":"hi"}}"#,
        r#"{"type":"image","image":{}}"#,
        r#"{"type":"location","location":{"latitude":1.5,"longitude":2.5}}"#,
        r#"{"type":"button","button":{"text":"t"}}"#,
        r#"{"type":"system","system":{}}"#,
        r#"{"type":"text","text":{"body":"hi"},"context":{}}"#,
        r#"{"type":"contacts","contacts":[{"name":{"formatted_name":"A"},"phones":[{"phone":"+1"}],"emails":[{"email":"e"}],"urls":[{"url":"u"}],"addresses":[{}],"org":{}}]}"#,
        r#"{"type":"template","template":{"name":"n","language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"text"}]}]}}"#,
        r#"{"type":"interactive","interactive":{"type":"list","header":{"type":"text"},"action":{"sections":[{"rows":[{"id":"r","title":"t"}]}],"parameters":{}}}}"#,
    ] {
        let content = MessageContent::from_bytes(json.as_bytes());
        assert_eq!(String::from_utf8(content.to_bytes()).expect("utf-8"), json);
    }
}

/// A required member missing makes the object unreadable (so the payload reads as text).
#[test]
fn a_missing_required_member_is_refused() {
    assert!(serde_json::from_str::<Text>(r#"{"preview_url":true}"#).is_err());
    assert!(serde_json::from_str::<Reaction>(r#"{"emoji":"x"}"#).is_err());
    assert!(serde_json::from_str::<Location>(r#"{"latitude":1}"#).is_err());
    assert!(serde_json::from_str::<ButtonReply>(r#"{"payload":"p"}"#).is_err());
    assert!(serde_json::from_str::<Contact>(r#"{"phones":[]}"#).is_err());
    assert!(serde_json::from_str::<ContactPhone>(r#"{"type":"CELL"}"#).is_err());
    assert!(serde_json::from_str::<Template>(r#"{"language":{"code":"en"}}"#).is_err());
    assert!(serde_json::from_str::<Language>(r#"{"policy":"deterministic"}"#).is_err());
    assert!(serde_json::from_str::<Choice>(r#"{"id":"i","description":"d"}"#).is_err());
    let raw = r#"{"type":"text","text":{"preview_url":true}}"#;
    assert_eq!(
        MessageContent::from_bytes(raw.as_bytes()),
        MessageContent::text(raw)
    );
}
