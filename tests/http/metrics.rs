//! `/metrics` (issue 17): the operator's scrape moves by exactly what a scripted conversation
//! did, other principals are refused, and no label holds a number, content, an id or a token.

use crate::common::hook::Hook;
use crate::common::server::{eventually, Node};
use crate::common::{canary, text, CONSUMER};
use crate::start;

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(s: &Node) -> String {
    let (status, text) = s.get_text("/metrics", &s.s("internal_token")).await;
    assert_eq!(status, 200, "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_counts_a_conversation_and_names_nothing_personal() {
    let s = start();
    let hook = Hook::default();
    s.subscribe(&hook.listen().await).await;
    // Only the operator's token reads it.
    let (st, _) = s.get("/metrics", &s.s("access_token")).await;
    assert_eq!(st, 403);
    let (st, _) = s.get("/metrics", "not-a-token").await;
    assert_eq!(st, 401);

    let before = scrape(&s).await;
    let accepted = |t: &str| sample(t, "sealpost_messages_total", &[("status", "accepted")]);
    let sent = |t: &str| sample(t, "sealpost_messages_total", &[("status", "sent")]);
    let delivered = |t: &str| sample(t, "sealpost_messages_total", &[("status", "delivered")]);
    let sends_ok = |t: &str| {
        sample(
            t,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", "/{version}/{id}/messages"),
                ("http_request_method", "POST"),
                ("http_response_status_code", "200"),
            ],
        )
    };
    let posted = |t: &str| {
        sample(
            t,
            "sealpost_webhook_attempts_total",
            &[("outcome", "delivered")],
        )
    };

    let (st, v) = s
        .converse(&canary(0, "in"), text(CONSUMER, &canary(0, "out")))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.send_text(CONSUMER, &canary(1, "out")).await;
    assert_eq!(st, 200, "{v}");

    let after = eventually(30, "both messages delivered and told of", || async {
        let now = scrape(&s).await;
        (delivered(&now) - delivered(&before) >= 2.0 && posted(&now) - posted(&before) >= 5.0)
            .then_some(now)
    })
    .await;
    assert_eq!(
        accepted(&after) - accepted(&before),
        2.0,
        "two sends accepted"
    );
    assert_eq!(sent(&after) - sent(&before), 2.0, "two handed over");
    assert_eq!(delivered(&after) - delivered(&before), 2.0, "two delivered");
    assert_eq!(
        sends_ok(&after) - sends_ok(&before),
        2.0,
        "two sends answered 200"
    );

    // The node holds its leases and says how far its lanes are behind.
    assert!(
        sample(&after, "sealpost_leases_held", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("sealpost_pipeline_lag{lane="),
        "the lag is reported per lane"
    );

    // An erasure: counted, with the subject's key destroyed.
    let destroyed = |t: &str| sample(t, "sealpost_keys_destroyed_total", &[("kind", "subject")]);
    let erasures = |t: &str| sample(t, "sealpost_erasures_total", &[]);
    let (st, v) = s
        .post(
            "/sealpost/v1/dpo/erasures",
            Some(&s.s("dpo_token")),
            serde_json::json!({"phone_number_id": s.s("phone_number_id"), "wa_id": CONSUMER}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let erased = scrape(&s).await;
    assert_eq!(erasures(&erased) - erasures(&after), 1.0, "one erasure");
    assert_eq!(
        destroyed(&erased) - destroyed(&after),
        1.0,
        "its subject key destroyed"
    );
    let after = erased;

    // No label holds a number, content, an id or a token.
    let mut secrets = vec![
        "CANARY-".to_owned(),
        CONSUMER.to_owned(),
        "wamid.".to_owned(),
        s.s("phone_number_id"),
        s.s("display_phone_number"),
    ];
    secrets.extend(["access_token", "internal_token", "app_secret"].map(|k| s.s(k)));
    for secret in &secrets {
        assert!(
            !after.contains(secret.as_str()),
            "the scrape holds a secret or personal datum"
        );
    }
}
