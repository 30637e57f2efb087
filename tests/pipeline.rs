//! The message pipeline end to end, with real Signal sessions, the simulated transport and
//! simulated devices, on SQLite and on Postgres.

mod common;

use common::{canary, postgres_env, sqlite_env, Env};
use sealpost::pipeline::Pipeline;
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::store::StreamId;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_domain::{
    BusinessId, MessageId, MessageKind, MessageStatus, PhoneNumberId, Principal, Region, E164,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const BUSINESS_NUMBER: &str = "15550783881";

fn consumer(i: usize) -> String {
    format!("49151{:08}", 1000 + i)
}

struct World {
    net: SimNetwork,
    engine: Arc<dyn SignalEngine>,
    devices: Vec<SimDevice>,
    business: BusinessId,
    number: PhoneNumberId,
    me: Principal,
}

async fn world(env: &Env, devices: usize) -> (World, Pipeline) {
    let net = SimNetwork::new();
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
        .expect("pipeline");
    pipeline.attach_number(&number).await.expect("attach");
    let mut list = Vec::new();
    for i in 0..devices {
        list.push(
            SimDevice::join(engine.clone(), &net, &consumer(i))
                .await
                .expect("device"),
        );
    }
    let me = Principal::business(business.clone(), "system-user");
    (
        World {
            net,
            engine,
            devices: list,
            business,
            number,
            me,
        },
        pipeline,
    )
}

async fn devices_step(w: &mut World) {
    for d in &mut w.devices {
        d.step(&w.net).await.expect("device step");
    }
}

async fn event_types(env: &Env, id: &MessageId) -> Vec<String> {
    env.app
        .store()
        .read_stream(&StreamId::new("message", id.as_str()), 0)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.header.event_type)
        .collect()
}

/// A business sends 100 messages to 10 devices and receives 50 replies.
async fn hundred_out_fifty_in(env: Env) {
    let (mut w, mut pipeline) = world(&env, 10).await;
    let mut inbound = 0;
    // Each consumer writes first (opening the service window).
    for (i, d) in w.devices.iter_mut().enumerate() {
        d.send(
            &w.net,
            BUSINESS_NUMBER,
            &format!("dev-{i}-0"),
            canary(i, "hello").as_bytes(),
        )
        .await
        .expect("send");
        inbound += 1;
    }
    let r = pipeline.run_until_idle(10).await.expect("pipeline");
    assert_eq!(r.received, 10);
    let mut sent: BTreeMap<usize, Vec<(MessageId, String)>> = BTreeMap::new();
    for round in 0..10 {
        for i in 0..10 {
            let body = format!("{}-{round}", canary(i, "out"));
            let phone = E164::parse(&consumer(i)).expect("phone");
            let id = env
                .app
                .send(&w.me, &w.number, &phone, MessageKind::Text, &body, None)
                .await
                .expect("send");
            sent.entry(i).or_default().push((id, body));
        }
        pipeline.step().await.expect("pipeline");
        devices_step(&mut w).await;
    }
    for round in 1..5 {
        for (i, d) in w.devices.iter_mut().enumerate() {
            d.send(
                &w.net,
                BUSINESS_NUMBER,
                &format!("dev-{i}-{round}"),
                format!("{}-{round}", canary(i, "reply")).as_bytes(),
            )
            .await
            .expect("send");
            inbound += 1;
        }
    }
    pipeline.run_until_idle(20).await.expect("pipeline");
    devices_step(&mut w).await;
    pipeline.run_until_idle(20).await.expect("pipeline");
    assert_eq!(inbound, 50);

    // Every device decrypted exactly what was sent to it, once each.
    for (i, d) in w.devices.iter().enumerate() {
        let got: Vec<(String, Vec<u8>)> = d
            .inbox()
            .iter()
            .map(|r| (r.id.clone(), r.plaintext.clone()))
            .collect();
        let want: Vec<(String, Vec<u8>)> = sent[&i]
            .iter()
            .map(|(id, b)| (id.to_string(), b.clone().into_bytes()))
            .collect();
        assert_eq!(got, want, "device {i}");
        assert_eq!(d.decrypt_failures(), 0);
    }
    // Every outbound message tells its whole story and ends read.
    for (id, _) in sent.values().flatten() {
        assert_eq!(
            env.app.message(id).await.expect("m").status,
            Some(MessageStatus::Read)
        );
        assert_eq!(
            event_types(&env, id).await,
            [
                "OutboundMessageAccepted",
                "MessageEncrypted",
                "MessageSent",
                "MessageDelivered",
                "MessageRead"
            ]
        );
    }
    // Every inbound message was decrypted and queued for the business, with its content sealed.
    let all = env.app.store().read_all(0, 1_000_000).await.expect("read");
    let inbound_ids: Vec<MessageId> = all
        .iter()
        .filter(|e| e.header.event_type == "InboundMessageReceived")
        .map(|e| MessageId::parse(&e.header.stream.id).expect("id"))
        .collect();
    assert_eq!(inbound_ids.len(), 50);
    for id in &inbound_ids {
        assert_eq!(
            env.app.message(id).await.expect("m").status,
            Some(MessageStatus::Forwarded)
        );
        assert_eq!(
            event_types(&env, id).await,
            [
                "InboundMessageReceived",
                "InboundMessageDecrypted",
                "InboundMessageForwarded"
            ]
        );
        let c = env
            .app
            .read_content(&w.me, sealpost_domain::Purpose::BusinessApi, id)
            .await
            .expect("read");
        assert!(c.plain().is_some_and(|c| c.body.starts_with("CANARY-")));
    }
    // The transport never held a plaintext byte of any message.
    let routed = serde_json::to_vec(&w.net.routed()).expect("serialize");
    for i in 0..10 {
        for what in ["hello", "out", "reply"] {
            let c = canary(i, what);
            assert!(
                !routed.windows(c.len()).any(|x| x == c.as_bytes()),
                "{c} crossed the transport"
            );
        }
    }
    let _ = (&w.engine, &w.business);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hundred_messages_out_fifty_in() {
    hundred_out_fifty_in(sqlite_env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hundred_messages_out_fifty_in() {
    let Some(env) = postgres_env("pipeline").await else {
        return;
    };
    hundred_out_fifty_in(env).await;
}
