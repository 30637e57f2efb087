//! The transport port across a process boundary: a real `sealpost transport` process, the
//! pipeline and the devices talking to it over HTTP on a local socket.

mod common;

use common::server::start_transport;
use common::sqlite_env;
use sealpost::pipeline::Pipeline;
use sealpost_adapters::clock::{Clock as _, SystemClock};
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::transport::http::HttpTransport;
use sealpost_adapters::transport::sim::SimDevice;
use sealpost_domain::{MessageContent, MessageStatus, Principal, Region, E164};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_a_separate_transport_process() {
    let dir = tempfile::tempdir().expect("dir");
    let (_process, url) = start_transport(dir.path());
    let transport = HttpTransport::new(&url);
    let env = sqlite_env().await;
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let business = env
        .app
        .catalog()
        .register_business("Remote", Region::Eu)
        .await
        .expect("business");
    let number = env
        .app
        .catalog()
        .add_phone_number(&business, "15550783881", Region::Eu)
        .await
        .expect("number");
    let mut pipeline =
        Pipeline::start(env.app.clone(), engine.clone(), Arc::new(transport.clone()))
            .await
            .expect("pipeline");
    pipeline
        .attach_number(&business, &number)
        .await
        .expect("attach");
    let mut device = SimDevice::join(engine, &transport, "4915112345678")
        .await
        .expect("device");

    device
        .send(
            &transport,
            "15550783881",
            "dev-1",
            br#"{"type":"text","text":{"body":"over the wire"}}"#,
        )
        .await
        .expect("send");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.received, 1);
    let me = Principal::business(business.clone(), "system-user");
    let phone = E164::parse("4915112345678").expect("phone");
    let id = env
        .app
        .messaging()
        .send(
            &me,
            &number,
            &phone,
            &MessageContent::text("and back"),
            None,
        )
        .await
        .expect("send");
    pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(device.step(&transport).await.expect("device"), 1);
    assert_eq!(
        MessageContent::from_bytes(&device.inbox().await.expect("inbox")[0].plaintext),
        MessageContent::text("and back")
    );
    pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(
        env.app
            .messaging()
            .message(&business, &id)
            .await
            .expect("m")
            .status,
        Some(MessageStatus::Read)
    );

    // A 3 MiB document sent by its media id crosses the process too (ADR 0030: the device gets
    // the file inside the Signal message; the envelope is base64 in JSON, under its own limit).
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let media = env
        .app
        .media()
        .store_media(
            &me,
            &business,
            &number,
            sealpost_domain::media::MediaOrigin::Upload,
            None,
            "application/pdf",
            Some("big.pdf"),
            &pdf,
        )
        .await
        .expect("upload");
    let by_id = MessageContent::from_bytes(
        serde_json::json!({"type": "document", "document": {"id": media.as_str()}})
            .to_string()
            .as_bytes(),
    );
    env.app
        .messaging()
        .send(&me, &number, &phone, &by_id, None)
        .await
        .expect("send by id");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!((r.sent, r.failed), (1, 0), "{r:?}");
    assert_eq!(device.step(&transport).await.expect("device"), 1);
    let got: serde_json::Value =
        serde_json::from_slice(&device.inbox().await.expect("inbox")[1].plaintext).expect("json");
    let data = got["document"]["data"].as_str().expect("the file inside");
    use base64::Engine as _;
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64")
            == pdf,
        "the device has the file, byte for byte"
    );
    env.finish().await;
}

/// The transport is the outside world: killed and started again on its data, it still has the
/// directory entries and the envelopes it accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_process_keeps_its_network_across_a_kill() {
    use sealpost_adapters::transport::{Address, Envelope, Payload, Transport as _};
    let dir = tempfile::tempdir().expect("dir");
    let engine = Libsignal;
    let account = engine
        .new_account(7, 5, SystemClock.now())
        .expect("account");
    let entry = engine.directory_entry(&account).expect("entry");
    let envelope = Envelope {
        id: "env-1".into(),
        from: Address {
            handle: "4915112345678".into(),
            device: 1,
        },
        to: Address {
            handle: "15550783881".into(),
            device: 1,
        },
        payload: Payload::Message {
            ciphertext: b"opaque".to_vec(),
        },
    };
    {
        let (process, url) = start_transport(dir.path());
        let t = HttpTransport::new(&url);
        t.publish("15550783881", entry.clone())
            .await
            .expect("publish");
        t.send(envelope.clone()).await.expect("send");
        drop(process); // SIGKILL
    }
    let (_process, url) = start_transport(dir.path());
    let t = HttpTransport::new(&url);
    assert_eq!(
        t.prekeys_left("15550783881").await.expect("left"),
        entry.one_time.len(),
        "the directory entry is still there"
    );
    let inbox = t.take_inbox("15550783881", 10).await.expect("inbox");
    assert_eq!(
        inbox,
        vec![envelope],
        "the accepted envelope is still there"
    );
    t.ack("15550783881", &["env-1".to_owned()])
        .await
        .expect("ack");
}
