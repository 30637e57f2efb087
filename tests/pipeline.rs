//! The message pipeline end to end, with real Signal sessions, the simulated transport and
//! simulated devices, on SQLite and on Postgres.

mod common;

use common::world::{consumer, world, World, BUSINESS_NUMBER};
use common::{canary, postgres_env, sqlite_env, Env};
use sealpost::pipeline::Pipeline;
use sealpost_adapters::store::StreamId;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_domain::{
    MessageContent, MessageId, MessageKind, MessageStatus, PhoneNumberId, Principal, E164,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The texts a phone showed, in order.
async fn shown(d: &SimDevice) -> Vec<String> {
    d.inbox()
        .await
        .expect("inbox")
        .iter()
        .map(|r| text_of(&r.plaintext))
        .collect()
}

/// The body of a text message as a device decrypted it: the Signal plaintext is the content in
/// the Cloud API's shape, `{"type":"text","text":{"body":…}}`.
fn text_of(plaintext: &[u8]) -> String {
    let content: MessageContent = serde_json::from_slice(plaintext).expect("typed content");
    content.text_body().expect("a text").to_owned()
}
async fn devices_step(w: &mut World) {
    for d in &mut w.devices {
        d.step(&w.net).await.expect("device step");
    }
}

/// Consumer 0 writes first (opening the service window), the business answers `text`, and the
/// answer reaches the device.
async fn opened_and_answered(
    env: &Env,
    w: &mut World,
    pipeline: &mut Pipeline,
    text: &str,
) -> MessageId {
    w.device_writes(0, "dev-0", b"hi").await;
    pipeline.run_until_idle(5).await.expect("pipeline");
    let id = w.answer(&env.app, 0, text).await;
    pipeline.run_until_idle(5).await.expect("pipeline");
    devices_step(w).await;
    id
}

async fn status(env: &Env, w: &World, id: &MessageId) -> Option<MessageStatus> {
    env.app
        .messaging()
        .message(&w.business, id)
        .await
        .expect("message")
        .status
}

async fn event_types(env: &Env, id: &MessageId) -> Vec<String> {
    common::event_types(&env.app, id).await
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
                .messaging()
                .send(
                    &w.me,
                    &w.number,
                    &phone,
                    &MessageContent::text(body.as_str()),
                    None,
                )
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
        let got: Vec<(String, String)> = d
            .inbox()
            .await
            .expect("inbox")
            .iter()
            .map(|r| (r.id.clone(), text_of(&r.plaintext)))
            .collect();
        let want: Vec<(String, String)> = sent[&i]
            .iter()
            .map(|(id, b)| (id.to_string(), b.clone()))
            .collect();
        assert_eq!(got, want, "device {i}");
        assert_eq!(d.decrypt_failures(), 0);
    }
    // Every outbound message tells its whole story and ends read.
    for (id, _) in sent.values().flatten() {
        assert_eq!(status(&env, &w, id).await, Some(MessageStatus::Read));
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
        assert_eq!(status(&env, &w, id).await, Some(MessageStatus::Forwarded));
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
            .messaging()
            .read_content(
                &w.me,
                sealpost_domain::Purpose::BusinessApi,
                &w.business,
                id,
            )
            .await
            .expect("read");
        assert!(c
            .plain()
            .is_some_and(|c| c.text_body().is_some_and(|b| b.starts_with("CANARY-"))));
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

fn count_message_envelopes(net: &SimNetwork, id: &MessageId) -> usize {
    net.routed()
        .iter()
        .filter(|e| {
            e.id == id.as_str()
                && matches!(
                    e.payload,
                    sealpost_adapters::transport::Payload::Message { .. }
                )
        })
        .count()
}

/// The processor is dropped and rebuilt over the same store in the middle of a run: nothing is
/// lost, nothing reaches a device twice, and the delivery projection resumes from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_loses_nothing_and_sends_nothing_twice() {
    let env = sqlite_env().await;
    let dir = env.dir.as_ref().expect("sqlite").path().to_path_buf();
    let (mut w, mut pipeline) = world(&env, 3).await;
    for (i, d) in w.devices.iter_mut().enumerate() {
        d.send(&w.net, BUSINESS_NUMBER, &format!("dev-{i}-0"), b"hi")
            .await
            .expect("send");
    }
    pipeline.run_until_idle(5).await.expect("pipeline");
    let mut ids = Vec::new();
    for round in 0..2 {
        for i in 0..3 {
            let phone = E164::parse(&consumer(i)).expect("phone");
            ids.push(
                env.app
                    .messaging()
                    .send(
                        &w.me,
                        &w.number,
                        &phone,
                        &MessageContent::text(format!("m{round}-{i}")),
                        None,
                    )
                    .await
                    .expect("send"),
            );
        }
        if round == 0 {
            pipeline.run_until_idle(5).await.expect("pipeline");
        }
    }
    // Replies arrive while the processor is down.
    devices_step(&mut w).await;
    for (i, d) in w.devices.iter_mut().enumerate() {
        d.send(&w.net, BUSINESS_NUMBER, &format!("dev-{i}-1"), b"again")
            .await
            .expect("send");
    }
    drop(pipeline);
    let app = env.app.clone();
    drop(app);

    let reopened =
        sealpost::app::Sealpost::open_sqlite(&dir, Arc::new(env.clock.clone()), Default::default())
            .await
            .expect("reopen");
    let mut pipeline = Pipeline::start(reopened.clone(), w.engine.clone(), Arc::new(w.net.clone()))
        .await
        .expect("restart");
    pipeline
        .attach_number(&w.business, &w.number)
        .await
        .expect("attach");
    pipeline.run_until_idle(10).await.expect("pipeline");
    devices_step(&mut w).await;
    pipeline.run_until_idle(10).await.expect("pipeline");

    for id in &ids {
        assert_eq!(
            count_message_envelopes(&w.net, id),
            1,
            "each message left exactly once"
        );
        assert_eq!(
            reopened
                .messaging()
                .message(&w.business, id)
                .await
                .expect("m")
                .status,
            Some(MessageStatus::Read)
        );
    }
    for (i, d) in w.devices.iter().enumerate() {
        let bodies = shown(d).await;
        assert_eq!(
            bodies,
            vec![format!("m0-{i}"), format!("m1-{i}")],
            "device {i} got each message once"
        );
    }
    let received = reopened
        .store()
        .read_all(0, 100_000)
        .await
        .expect("read")
        .iter()
        .filter(|e| e.header.event_type == "InboundMessageForwarded")
        .count();
    assert_eq!(
        received, 6,
        "replies sent while the processor was down were all taken"
    );
    env.finish().await;
}

/// Retransmission re-encrypts while the keys live; after 30 days + 1 hour it is a recorded refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_works_until_the_keys_are_gone_then_is_refused() {
    use sealpost_domain::time::{DAY_MS, HOUR_MS};
    let env = sqlite_env().await;
    let (mut w, mut pipeline) = world(&env, 2).await;
    let id = opened_and_answered(&env, &mut w, &mut pipeline, "your code is 4711").await;

    w.devices[0]
        .request_retransmission(&w.net, BUSINESS_NUMBER, id.as_str())
        .await
        .expect("request");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.retransmitted, 1);
    assert_eq!(count_message_envelopes(&w.net, &id), 2);
    devices_step(&mut w).await;
    assert_eq!(
        w.devices[0].inbox().await.expect("inbox").len(),
        1,
        "the retransmitted copy is recognised, not shown twice"
    );

    // Another consumer cannot have someone else's message re-sent to them.
    w.devices[1]
        .request_retransmission(&w.net, BUSINESS_NUMBER, id.as_str())
        .await
        .expect("request");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.retransmitted, 0);
    assert_eq!(count_message_envelopes(&w.net, &id), 2);

    env.clock.advance_millis(30 * DAY_MS + HOUR_MS);
    env.app
        .retention()
        .run_once(env.app.now())
        .await
        .expect("retention");
    w.devices[0]
        .request_retransmission(&w.net, BUSINESS_NUMBER, id.as_str())
        .await
        .expect("request");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.refused, 1);
    assert_eq!(count_message_envelopes(&w.net, &id), 2, "nothing was sent");
    let story = event_types(&env, &id).await;
    assert_eq!(
        story.last().map(String::as_str),
        Some("RetransmissionRefused"),
        "the refusal is recorded: {story:?}"
    );
    // Asking again changes nothing more.
    w.devices[0]
        .request_retransmission(&w.net, BUSINESS_NUMBER, id.as_str())
        .await
        .expect("request");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.refused, 0);
    assert_eq!(
        event_types(&env, &id).await,
        story,
        "one refusal is recorded, not one per request"
    );
    env.finish().await;
}

/// A consumer re-installs the app: the new identity is recorded as an event and the
/// conversation goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstalled_device_is_an_identity_change_event_not_a_failure() {
    let env = sqlite_env().await;
    let (mut w, mut pipeline) = world(&env, 1).await;
    w.device_writes(0, "dev-0", b"hi").await;
    pipeline.run_until_idle(5).await.expect("pipeline");
    w.devices[0].reinstall(&w.net).await.expect("reinstall");
    w.device_writes(0, "dev-1", b"new phone").await;
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(
        (r.received, r.identity_changes, r.decrypt_failures),
        (1, 1, 0)
    );
    let id = w.answer(&env.app, 0, "welcome back").await;
    pipeline.run_until_idle(5).await.expect("pipeline");
    devices_step(&mut w).await;
    assert_eq!(
        w.devices[0]
            .inbox()
            .await
            .expect("inbox")
            .last()
            .map(|r| text_of(&r.plaintext)),
        Some("welcome back".to_owned())
    );
    let subject = common::subject_of(&env.app, &id).await;
    let subject_events: Vec<String> = env
        .app
        .store()
        .read_stream(
            &StreamId::new(w.business.as_str(), "subject", subject.as_str()),
            0,
        )
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.header.event_type)
        .collect();
    assert!(
        subject_events.contains(&"ConsumerIdentityChanged".to_owned()),
        "{subject_events:?}"
    );
    env.finish().await;
}

async fn integrity_events(env: &Env, number: &PhoneNumberId) -> Vec<String> {
    let business = env
        .app
        .catalog()
        .find_phone_number(number)
        .await
        .expect("number")
        .business_id
        .expect("its business");
    env.app
        .store()
        .read_stream(
            &StreamId::new(business.as_str(), "integrity", number.as_str()),
            0,
        )
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.header.event_type)
        .collect()
}

/// A business that tries to message everyone: past its 250-user tier the transport throttles
/// it, the send fails with 131048, and the integrity events are in the transport's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messaging_everyone_is_throttled_past_the_tier() {
    let env = sqlite_env().await;
    let (w, mut pipeline) = world(&env, 251).await;
    let mut ids = Vec::new();
    for i in 0..251 {
        let phone = E164::parse(&consumer(i)).expect("phone");
        let template: MessageContent = serde_json::from_str(
            r#"{"type":"template","template":{"name":"spring_sale","language":{"code":"en_US"}}}"#,
        )
        .expect("template");
        ids.push(
            env.app
                .messaging()
                .send(&w.me, &w.number, &phone, &template, None)
                .await
                .expect("template"),
        );
        if i % 50 == 49 {
            pipeline.run_until_idle(5).await.expect("pipeline");
        }
    }
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.failed, 1);
    let mut statuses = BTreeMap::new();
    for id in &ids {
        *statuses
            .entry(format!(
                "{:?}",
                env.app
                    .messaging()
                    .message(&w.business, id)
                    .await
                    .expect("m")
                    .status
            ))
            .or_insert(0) += 1;
    }
    assert_eq!(statuses.get("Some(Sent)"), Some(&250), "{statuses:?}");
    assert_eq!(statuses.get("Some(Failed)"), Some(&1), "{statuses:?}");
    let last = event_types(&env, &ids[250]).await;
    assert_eq!(last.last().map(String::as_str), Some("MessageFailed"));
    let failed = env
        .app
        .store()
        .read_stream(
            &StreamId::new(w.business.as_str(), "message", ids[250].as_str()),
            0,
        )
        .await
        .expect("read");
    assert_eq!(
        failed.last().expect("event").payload["MessageFailed"]["code"],
        131_048
    );
    assert_eq!(
        integrity_events(&env, &w.number).await,
        ["MessagingLimitReached", "ThrottleApplied"]
    );
    assert!(w
        .net
        .integrity(BUSINESS_NUMBER)
        .expect("business")
        .throttled());
    env.finish().await;
}

/// Spam reports and blocks lower the quality rating; the events say so, with no consumer in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spam_reports_lower_the_quality_rating() {
    use sealpost_domain::integrity::QualityRating;
    let env = sqlite_env().await;
    let (w, mut pipeline) = world(&env, 6).await;
    for (i, d) in w.devices.iter().enumerate() {
        d.report(&w.net, BUSINESS_NUMBER, i % 3 == 0)
            .await
            .expect("report");
    }
    pipeline.run_until_idle(3).await.expect("pipeline");
    let events = integrity_events(&env, &w.number).await;
    let ratings: Vec<&String> = events
        .iter()
        .filter(|e| *e == "QualityRatingChanged")
        .collect();
    assert_eq!(ratings.len(), 2, "GREEN → YELLOW → RED: {events:?}");
    assert_eq!(events.iter().filter(|e| *e == "SpamReported").count(), 4);
    assert_eq!(events.iter().filter(|e| *e == "BusinessBlocked").count(), 2);
    assert_eq!(
        w.net.integrity(BUSINESS_NUMBER).expect("business").rating(),
        QualityRating::Red
    );
    let stored = env
        .app
        .store()
        .read_stream(
            &StreamId::new(w.business.as_str(), "integrity", w.number.as_str()),
            0,
        )
        .await
        .expect("read");
    let text = serde_json::to_string(&stored.iter().map(|e| &e.payload).collect::<Vec<_>>())
        .expect("json");
    for i in 0..6 {
        assert!(
            !text.contains(&consumer(i)),
            "integrity events name no consumer"
        );
    }
    env.finish().await;
}

/// Devices send media references and reactions as well as text; the business sees their
/// types. The signed prekey is rotated after a week and a session started after the rotation
/// works (a message in flight under the old one is covered by adapters/tests/signal.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_reactions_and_signed_prekey_rotation() {
    use sealpost_domain::time::DAY_MS;
    let env = sqlite_env().await;
    let (mut w, mut pipeline) = world(&env, 3).await;
    let image = r#"{"type":"image","image":{"id":"media-77","caption":"my bike"}}"#;
    let reaction = r#"{"type":"reaction","reaction":{"message_id":"wamid.x","emoji":"👍"}}"#;
    w.device_writes(0, "d0-0", image.as_bytes()).await;
    w.device_writes(0, "d0-1", reaction.as_bytes()).await;
    w.devices[0]
        .send(
            &w.net,
            BUSINESS_NUMBER,
            "d0-2",
            br#"{"type":"text","text":{"body":"and hi"}}"#,
        )
        .await
        .expect("send");
    let before = w.net.signed_prekey_id(BUSINESS_NUMBER).expect("published");
    pipeline.run_until_idle(5).await.expect("pipeline");
    env.clock.advance_millis(8 * DAY_MS);
    pipeline.run_until_idle(5).await.expect("pipeline");
    let after = w.net.signed_prekey_id(BUSINESS_NUMBER).expect("published");
    assert_ne!(before, after, "rotated after a week");
    w.device_writes(1, "d1-0", b"new session").await;
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!((r.received, r.decrypt_failures), (1, 0));

    let all = env.app.store().read_all(0, 100_000).await.expect("read");
    let mut kinds = Vec::new();
    for e in all
        .iter()
        .filter(|e| e.header.event_type == "InboundMessageReceived")
    {
        let id = MessageId::parse(&e.header.stream.id).expect("id");
        let c = env
            .app
            .messaging()
            .read_content(
                &w.me,
                sealpost_domain::Purpose::BusinessApi,
                &w.business,
                &id,
            )
            .await
            .expect("read");
        let c = c.plain().expect("readable");
        kinds.push((c.kind(), serde_json::to_value(&c).expect("json")));
    }
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
    assert_eq!(
        kinds,
        vec![
            (MessageKind::Image, json(image)),
            (MessageKind::Reaction, json(reaction)),
            (
                MessageKind::Text,
                json(r#"{"type":"text","text":{"body":"and hi"}}"#)
            ),
            // Plain bytes from a device are text.
            (
                MessageKind::Text,
                json(r#"{"type":"text","text":{"body":"new session"}}"#)
            ),
        ]
    );
    let _ = &mut w;
    env.finish().await;
}

/// After an erasure destroyed the business's session with a consumer, the consumer's next
/// message cannot be decrypted; that is recorded, the device is asked to start over, and the
/// message arrives under a new subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_erasure_the_consumer_is_asked_to_start_a_new_session() {
    use sealpost_domain::PrincipalKind;
    let env = sqlite_env().await;
    let (mut w, mut pipeline) = world(&env, 1).await;
    let id = opened_and_answered(&env, &mut w, &mut pipeline, "hello").await;
    let old_subject = common::subject_of(&env.app, &id).await;
    env.app
        .subjects()
        .erase(&Principal::of_kind(PrincipalKind::Dpo, "dpo"), &old_subject)
        .await
        .expect("erase");

    w.device_writes(0, "dev-1", b"still there?").await;
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(
        (r.decrypt_failures, r.received),
        (1, 0),
        "no session any more"
    );
    devices_step(&mut w).await; // the device answers the resend request with a new session
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!((r.received, r.decrypt_failures), (1, 0));
    let all = env.app.store().read_all(0, 100_000).await.expect("read");
    let failed = all
        .iter()
        .filter(|e| e.header.event_type == "InboundDecryptionFailed")
        .count();
    assert_eq!(failed, 1, "the undecryptable copy is on record");
    let last = all
        .iter()
        .rev()
        .find(|e| e.header.event_type == "InboundMessageReceived")
        .expect("inbound");
    let new_id = MessageId::parse(&last.header.stream.id).expect("id");
    assert_ne!(
        common::subject_of(&env.app, &new_id).await,
        old_subject,
        "a new subject"
    );
    let c = env
        .app
        .messaging()
        .read_content(
            &w.me,
            sealpost_domain::Purpose::BusinessApi,
            &w.business,
            &new_id,
        )
        .await
        .expect("read");
    assert_eq!(
        c.plain().and_then(|c| c.text_body().map(str::to_owned)),
        Some("still there?".to_owned())
    );
    env.finish().await;
}

/// The real simulated network with a switch that makes the business's hand-offs fail, as an
/// unreachable transport would.
#[derive(Debug, Clone)]
struct Flaky {
    inner: SimNetwork,
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl sealpost_adapters::transport::Transport for Flaky {
    async fn register_business(
        &self,
        h: &str,
        t: sealpost_domain::aggregates::business::MessagingLimitTier,
    ) -> Result<(), TransportError> {
        self.inner.register_business(h, t).await
    }
    async fn publish(
        &self,
        h: &str,
        e: sealpost_adapters::signal::DirectoryEntry,
    ) -> Result<(), TransportError> {
        self.inner.publish(h, e).await
    }
    async fn add_prekeys(&self, h: &str, p: Vec<(u32, Vec<u8>)>) -> Result<(), TransportError> {
        self.inner.add_prekeys(h, p).await
    }
    async fn update_signed_prekey(
        &self,
        h: &str,
        s: (u32, Vec<u8>, Vec<u8>),
    ) -> Result<(), TransportError> {
        self.inner.update_signed_prekey(h, s).await
    }
    async fn prekeys_left(&self, h: &str) -> Result<usize, TransportError> {
        self.inner.prekeys_left(h).await
    }
    async fn fetch_bundle(
        &self,
        h: &str,
        d: u8,
    ) -> Result<Option<sealpost_adapters::signal::Bundle>, TransportError> {
        self.inner.fetch_bundle(h, d).await
    }
    async fn send(&self, e: sealpost_adapters::transport::Envelope) -> Result<(), TransportError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TransportError::Unavailable("switched off".into()));
        }
        self.inner.send(e).await
    }
    async fn take_inbox(
        &self,
        h: &str,
        m: usize,
    ) -> Result<Vec<sealpost_adapters::transport::Envelope>, TransportError> {
        self.inner.take_inbox(h, m).await
    }
    async fn ack(&self, h: &str, ids: &[String]) -> Result<(), TransportError> {
        self.inner.ack(h, ids).await
    }
}

use sealpost_adapters::transport::TransportError;

/// Failed hand-offs are retried with backoff, and the retry survives a restart: the delivery
/// checkpoint stays before a message whose hand-off is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_hand_offs_are_retried_with_backoff_and_across_a_restart() {
    use sealpost_domain::time::SECOND_MS;
    let env = sqlite_env().await;
    let (mut w, pipeline) = world(&env, 1).await;
    drop(pipeline);
    let flaky = Flaky {
        inner: w.net.clone(),
        down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let mut pipeline = Pipeline::start(env.app.clone(), w.engine.clone(), Arc::new(flaky.clone()))
        .await
        .expect("pipeline");
    pipeline
        .attach_number(&w.business, &w.number)
        .await
        .expect("attach");
    w.device_writes(0, "dev-0", b"hi").await;
    pipeline.run_until_idle(5).await.expect("pipeline");
    let phone = E164::parse(&consumer(0)).expect("phone");

    flaky.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = env
        .app
        .messaging()
        .send(
            &w.me,
            &w.number,
            &phone,
            &MessageContent::text("first"),
            None,
        )
        .await
        .expect("send");
    let r = pipeline.step().await.expect("step");
    assert_eq!(r.retries_scheduled, 1);
    assert_eq!(
        pipeline.step().await.expect("step").retries_scheduled,
        0,
        "not before its backoff"
    );
    env.clock.advance_millis(2 * SECOND_MS);
    assert_eq!(
        pipeline.step().await.expect("step").retries_scheduled,
        1,
        "retried, failed, rescheduled"
    );
    flaky.down.store(false, std::sync::atomic::Ordering::SeqCst);
    env.clock.advance_millis(4 * SECOND_MS);
    assert_eq!(
        pipeline.step().await.expect("step").sent,
        1,
        "the retry goes through"
    );
    assert_eq!(
        env.app
            .messaging()
            .message(&w.business, &first)
            .await
            .expect("m")
            .status,
        Some(MessageStatus::Sent)
    );

    // A pending retry survives a restart.
    flaky.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = env
        .app
        .messaging()
        .send(
            &w.me,
            &w.number,
            &phone,
            &MessageContent::text("second"),
            None,
        )
        .await
        .expect("send");
    assert_eq!(pipeline.step().await.expect("step").retries_scheduled, 1);
    drop(pipeline);
    flaky.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut pipeline = Pipeline::start(env.app.clone(), w.engine.clone(), Arc::new(flaky.clone()))
        .await
        .expect("restart");
    pipeline
        .attach_number(&w.business, &w.number)
        .await
        .expect("attach");
    let r = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(r.sent, 1, "only the pending message is sent again");
    assert_eq!(
        env.app
            .messaging()
            .message(&w.business, &second)
            .await
            .expect("m")
            .status,
        Some(MessageStatus::Sent)
    );
    devices_step(&mut w).await;
    let shown = shown(&w.devices[0]).await;
    assert_eq!(shown, vec!["first".to_owned(), "second".to_owned()]);
    env.finish().await;
}

/// A pipeline whose lease another node took over while it was paused resumes mid-work: its
/// first guarded write (the consumer's session) is refused, and the step ends there. It fails
/// no message (once it recorded 131000 for messages the new holder then delivered), and the
/// node holding the lease now delivers what was waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_lost_its_lease_stops_and_fails_no_message() {
    use sealpost_adapters::clock::Clock as _;
    let Some(env) = postgres_env("lostlease").await else {
        return;
    };
    let (mut w, mut pipeline) = world(&env, 1).await;
    let leases = env.app.stores().leases.clone();
    let (now, ttl) = (env.clock.now().millis(), 10_000);
    let ours = leases
        .acquire("pipeline:0", "node-a", now, ttl)
        .await
        .expect("acquire")
        .expect("free");
    pipeline
        .hold(
            Some(ours.fence()),
            &[(w.business.clone(), w.number.clone())],
        )
        .await
        .expect("hold");
    opened_and_answered(&env, &mut w, &mut pipeline, "before the pause").await;

    // Paused past its lease: another node takes the lane over.
    let theirs = leases
        .acquire("pipeline:0", "node-b", now + ttl + 1, ttl)
        .await
        .expect("acquire")
        .expect("expired: taken over");
    let waiting = w.answer(&env.app, 0, "while paused").await;
    let refused = pipeline
        .step()
        .await
        .expect_err("the resumed pipeline is refused");
    assert!(refused.is_fenced(), "{refused}");
    assert_eq!(
        event_types(&env, &waiting).await,
        ["OutboundMessageAccepted"],
        "the resumed pipeline settled nothing"
    );

    let mut holder = Pipeline::start(env.app.clone(), w.engine.clone(), Arc::new(w.net.clone()))
        .await
        .expect("pipeline");
    holder
        .hold(
            Some(theirs.fence()),
            &[(w.business.clone(), w.number.clone())],
        )
        .await
        .expect("hold");
    holder.run_until_idle(5).await.expect("the holder delivers");
    devices_step(&mut w).await;
    assert_eq!(
        shown(&w.devices[0]).await,
        ["before the pause", "while paused"]
    );
    env.pg.expect("postgres").drop_schema().await;
}
