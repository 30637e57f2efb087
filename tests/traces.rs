//! Traces as an operator's collector gets them (issue 17): the real binary exports over OTLP to
//! a receiver here, at the default log level. One send with an incoming `traceparent` makes the
//! HTTP span, the pipeline's hand-off, the device's receipt and the webhook POST spans of that
//! trace, and the webhook requests (sent, delivered) carry it; an idle server exports nothing; no attribute holds content, a number or
//! a token.

mod common;

use common::hook::Hook;
use common::otlp::Receiver;
use common::server::{checked, poll, Data, Serve};
use common::{canary, text, CONSUMER};
use std::time::Duration;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_request_to_the_webhook_and_none_while_idle() {
    let receiver = Receiver::default();
    let endpoint = receiver.listen().await;
    let s = Serve::on(&Data::fresh(None))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start();
    let hook = Hook::default();
    s.subscribe(&hook.listen().await).await;

    // Idle: nothing is exported for 10 s once the start-up's work is done (its spans are kept,
    // and scanned with the rest below).
    let started = receiver.settle(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle: Vec<String> = receiver.spans()[started..]
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert!(idle.is_empty(), "an idle server exported {idle:?}");

    // The consumer writes first (no trace of ours), then the business answers under ours.
    let (st, _) = s
        .device_send(
            CONSUMER,
            serde_json::json!({"to": s.s("display_phone_number"), "type": "text", "text": {"body": canary(0, "in")}}),
        )
        .await;
    assert_eq!(st, 200);
    let incoming = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let id = poll(Duration::from_millis(50), 20, "the window opens", || {
        let req = s
            .request(
                reqwest::Method::POST,
                &format!("/v21.0/{}/messages", s.s("phone_number_id")),
            )
            .bearer_auth(s.s("access_token"))
            .header("traceparent", &incoming)
            .header("content-type", "application/json")
            .body(text(CONSUMER, &canary(0, "out")).to_string());
        async move {
            let (st, v) = checked(req).await;
            (st == 200).then(|| v["messages"][0]["id"].as_str().expect("id").to_owned())
        }
    })
    .await;

    // The webhooks that tell of the hand-off and of the device's receipt carry the trace on.
    for status in ["sent", "delivered"] {
        let posted = poll(
            Duration::from_millis(100),
            30,
            "the status is posted",
            || {
                let attempts = hook.attempts();
                let (id, status) = (id.clone(), format!("\"{status}\""));
                async move {
                    attempts.into_iter().find(|a| {
                        let body = String::from_utf8_lossy(&a.body);
                        body.contains(&id) && body.contains(&status)
                    })
                }
            },
        )
        .await;
        assert!(
            posted.traceparent.contains(TRACE_ID),
            "the {status} webhook request continues the trace: {:?}",
            posted.traceparent
        );
    }

    let spans = poll(
        Duration::from_millis(200),
        20,
        "the trace is exported",
        || {
            let spans = receiver.spans();
            async move {
                let ours: Vec<_> = spans
                    .into_iter()
                    .filter(|s| s.trace_id == TRACE_ID)
                    .collect();
                let has = |name: &str| ours.iter().any(|s| s.name == name);
                (has("POST /{version}/{id}/messages")
                    && has("pipeline hand-off")
                    && has("device receipt")
                    && has("webhook POST"))
                .then_some(ours)
            }
        },
    )
    .await;
    // The send answered 200 (tries while the window was still closed answered 400).
    let attribute = |s: &common::otlp::Span, k: &str| {
        s.attributes
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let http = spans
        .iter()
        .find(|s| {
            s.name == "POST /{version}/{id}/messages"
                && attribute(s, "http.response.status_code").as_deref() == Some("200")
        })
        .expect("the HTTP span of the send");
    assert_eq!(
        attribute(http, "http.route").as_deref(),
        Some("/{version}/{id}/messages")
    );
    assert_eq!(
        attribute(http, "http.request.method").as_deref(),
        Some("POST")
    );

    // Nothing personal or secret in any attribute of any span exported, or of its events.
    let secrets = [
        "CANARY-".to_owned(),
        CONSUMER.to_owned(),
        s.s("access_token"),
        s.s("display_phone_number"),
    ];
    for span in receiver.spans() {
        for (k, v) in &span.attributes {
            for secret in &secrets {
                assert!(
                    !v.contains(secret.as_str()),
                    "span {} attribute {k} holds a secret or personal datum",
                    span.name
                );
            }
        }
    }
}
