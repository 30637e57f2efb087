//! One load per stream per command: an outbound send, its delivery, and an inbound message are
//! traced (`sealpost_adapters::ledger::traced`) and each stream they touch is read once.

mod common;

use common::sqlite_env;
use common::world::{consumer, world, BUSINESS_NUMBER};
use sealpost_adapters::ledger::traced;
use sealpost_adapters::store::StreamId;
use sealpost_domain::{MessageContent, E164};
use std::collections::BTreeMap;

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
