//! One load per stream per command: an outbound send, its delivery, and an inbound message are
//! traced (`sealpost_adapters::ledger::traced`) and each stream they touch is read once.

mod common;

use common::sqlite_env;
use sealpost::pipeline::{IntegrityRecorder, Pipeline};
use sealpost_adapters::ledger::traced;
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::store::StreamId;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_domain::{MessageContent, Principal, Region, E164};
use std::collections::BTreeMap;
use std::sync::Arc;

const BUSINESS_NUMBER: &str = "15550783881";
const CONSUMER: &str = "4915112340001";

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
    let recorder = IntegrityRecorder::new(&env.app);
    let net = SimNetwork::with(Arc::new(env.clock.clone()), Some(recorder.clone()));
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let business = env
        .app
        .register_business("Bikes", Region::Eu)
        .await
        .expect("business");
    let number = env
        .app
        .add_phone_number(&business, BUSINESS_NUMBER, Region::Eu)
        .await
        .expect("number");
    let mut pipeline = Pipeline::start(env.app.clone(), engine.clone(), Arc::new(net.clone()))
        .await
        .expect("pipeline")
        .with_integrity(recorder);
    pipeline.attach_number(&number).await.expect("attach");
    let mut device = SimDevice::join(engine, &net, CONSUMER)
        .await
        .expect("device");

    // Inbound: the device writes first (opening the window); the pipeline records it.
    device
        .send(&net, BUSINESS_NUMBER, "dev-1", b"hi")
        .await
        .expect("device send");
    let (step, reads) = traced(pipeline.step()).await;
    assert_eq!(step.expect("step").received, 1);
    assert!(!reads.is_empty(), "the trace saw the inbound path");
    assert_eq!(repeated(&reads), BTreeMap::new(), "inbound: {reads:?}");

    // Outbound: the business answers (one command) ...
    let me = Principal::business(business, "system-user");
    let phone = E164::parse(CONSUMER).expect("phone");
    let (sent, reads) =
        traced(
            env.app
                .send(&me, &number, &phone, &MessageContent::text("hello"), None),
        )
        .await;
    sent.expect("send");
    assert_eq!(repeated(&reads), BTreeMap::new(), "send: {reads:?}");

    // ... and the pipeline delivers it.
    let (step, reads) = traced(pipeline.step()).await;
    assert_eq!(step.expect("step").sent, 1);
    assert_eq!(repeated(&reads), BTreeMap::new(), "delivery: {reads:?}");
    env.finish().await;
}
