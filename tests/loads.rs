//! One load per stream per command: an outbound send, its delivery, an inbound message and a
//! batch of webhook notifications are traced (`sealpost_adapters::ledger::traced`) and each
//! stream they touch is read once.

mod common;

use common::sqlite_env;
use common::world::{consumer, world, BUSINESS_NUMBER};
use sealpost_adapters::ledger::traced;
use sealpost_adapters::store::StreamId;
use sealpost_domain::{MessageContent, Region, E164};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Streams read more than once, with how often.
fn repeated(reads: &[StreamId]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in reads {
        *counts.entry(format!("{}/{}", s.kind, s.id)).or_default() += 1;
    }
    counts.retain(|_, n| *n > 1);
    counts
}

#[tokio::test]
async fn a_send_its_delivery_and_an_inbound_message_each_load_a_stream_once() {
    let env = sqlite_env().await;
    let (mut w, mut pipeline) = world(&env, 1).await;
    let mut device = w.devices.remove(0);

    // Inbound: the device writes first (opening the window); the pipeline records it.
    device
        .send(&w.net, BUSINESS_NUMBER, "dev-1", b"hi")
        .await
        .expect("device send");
    let (step, reads) = traced(pipeline.step()).await;
    assert_eq!(step.expect("step").received, 1);
    assert!(!reads.is_empty(), "the trace saw the inbound path");
    assert_eq!(repeated(&reads), BTreeMap::new(), "inbound: {reads:?}");

    // Outbound: the business answers (one command) ...
    let phone = E164::parse(&consumer(0)).expect("phone");
    let (sent, reads) = traced(env.app.messaging().send(
        &w.me,
        &w.number,
        &phone,
        &MessageContent::text("hello"),
        None,
    ))
    .await;
    sent.expect("send");
    assert_eq!(repeated(&reads), BTreeMap::new(), "send: {reads:?}");

    // ... and the pipeline delivers it.
    let (step, reads) = traced(pipeline.step()).await;
    assert_eq!(step.expect("step").sent, 1);
    assert_eq!(repeated(&reads), BTreeMap::new(), "delivery: {reads:?}");
    env.finish().await;
}

#[tokio::test]
async fn a_batch_of_webhook_notifications_loads_each_message_and_consumer_once() {
    let env = sqlite_env().await;
    let (mut w, mut pipeline) = world(&env, 1).await;
    // An inbound message, three answers, and the phone's receipts for them: ten notifications
    // (one message, three each of sent, delivered and read) about four messages of one consumer.
    w.device_writes(0, "dev-1", b"hi").await;
    pipeline.run_until_idle(5).await.expect("inbound");
    for i in 0..3 {
        w.answer(&env.app, 0, &format!("answer {i}")).await;
    }
    pipeline.run_until_idle(5).await.expect("outbound");
    w.devices[0].step(&w.net).await.expect("device");
    pipeline.run_until_idle(5).await.expect("receipts");

    let listener = common::hook::Hook::default();
    let hook = sealpost::webhooks::Hook {
        app_id: "app-loads".into(),
        business: w.business.clone(),
        waba_id: "waba-loads".into(),
        region: Region::Eu,
        callback_url: listener.listen().await,
        fields: vec!["messages".into()],
        muted: Vec::new(),
        secret: "app-secret".into(),
        numbers: Arc::new(BTreeMap::new()),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = async {
        while listener.attempts().len() < 10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).expect("stop");
    };
    let (((), reads), ()) = tokio::join!(
        traced(sealpost::webhooks::run(
            env.app.clone(),
            hook,
            sealpost_adapters::webhook::Poster::new(),
            sealpost::nodes::Claim::Alone,
            stopped,
        )),
        watcher
    );
    assert_eq!(
        listener.attempts().len(),
        10,
        "every notification was posted"
    );
    assert!(
        reads.iter().any(|s| s.kind == "subject"),
        "the trace saw the batch's reads"
    );
    assert_eq!(repeated(&reads), BTreeMap::new(), "webhooks: {reads:?}");
    env.finish().await;
}
