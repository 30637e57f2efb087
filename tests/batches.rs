//! The pipeline hands accepted messages over a batch at a time (ADR 0012): one batch carries
//! many consumers' messages, each consumer's in the order they were accepted, and what goes
//! wrong for one consumer stays with that consumer.

mod common;

use common::world::{consumer, world};
use common::{postgres_env, sqlite_env, Env};
use sealpost_domain::{MessageContent, MessageId, MessageStatus, Principal, PrincipalKind, E164};

const CONSUMERS: usize = 3;
const EACH: usize = 4;

fn body(consumer: usize, n: usize) -> String {
    format!("order {consumer}-{n} has shipped")
}

async fn one_batch_many_consumers(env: Env) {
    let (mut w, mut pipeline) = world(&env, CONSUMERS).await;
    for i in 0..CONSUMERS {
        w.device_writes(i, &format!("open-{i}"), b"hi").await;
    }
    pipeline.run_until_idle(5).await.expect("pipeline");
    let mut sent: Vec<Vec<MessageId>> = vec![Vec::new(); CONSUMERS];
    // Interleaved, as concurrent clients would send them.
    for n in 0..EACH {
        for (i, ids) in sent.iter_mut().enumerate() {
            let phone = E164::parse(&consumer(i)).expect("phone");
            let id = env
                .app
                .messaging()
                .send(
                    &w.me,
                    &w.number,
                    &phone,
                    &MessageContent::text(body(i, n)),
                    None,
                )
                .await
                .expect("send");
            ids.push(id);
        }
    }
    // Consumer 1 is erased before the pipeline runs: their messages cannot leave.
    let erased = common::subject_of(&env.app, &sent[1][0]).await;
    env.app
        .subjects()
        .erase(&Principal::of_kind(PrincipalKind::Dpo, "dpo"), &erased)
        .await
        .expect("erase");

    let report = pipeline.step().await.expect("one step");
    assert_eq!(
        (report.sent, report.failed),
        (((CONSUMERS - 1) * EACH) as u64, EACH as u64),
        "one step hands over every message it can and settles the rest"
    );
    for (i, ids) in sent.iter().enumerate() {
        for id in ids {
            let status = env
                .app
                .messaging()
                .message(&w.business, id)
                .await
                .expect("message")
                .status;
            let expected = if i == 1 {
                MessageStatus::Failed
            } else {
                MessageStatus::Sent
            };
            assert_eq!(status, Some(expected), "consumer {i}");
        }
    }
    for (i, d) in w.devices.iter_mut().enumerate() {
        d.step(&w.net).await.expect("device step");
        let shown: Vec<String> = d
            .inbox()
            .await
            .expect("inbox")
            .iter()
            .filter_map(|r| {
                let content: MessageContent = serde_json::from_slice(&r.plaintext).ok()?;
                content.text_body().map(str::to_owned)
            })
            .collect();
        let expected: Vec<String> = if i == 1 {
            Vec::new()
        } else {
            (0..EACH).map(|n| body(i, n)).collect()
        };
        assert_eq!(shown, expected, "consumer {i} sees their messages in order");
    }
    // Delivered and read receipts of the batch come back and are all recorded, in order.
    let back = pipeline.run_until_idle(5).await.expect("pipeline");
    assert_eq!(back.receipts, ((CONSUMERS - 1) * EACH * 2) as u64);
    for id in sent[0].iter().chain(&sent[2]) {
        let types = common::event_types(&env.app, id).await;
        assert_eq!(
            types,
            [
                "OutboundMessageAccepted",
                "MessageEncrypted",
                "MessageSent",
                "MessageDelivered",
                "MessageRead"
            ],
            "each step once, delivered before read"
        );
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_batch_carries_many_consumers_and_an_erasure_stays_with_its_consumer() {
    one_batch_many_consumers(sqlite_env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_batch_carries_many_consumers_and_an_erasure_stays_with_its_consumer() {
    let Some(env) = postgres_env("batches").await else {
        return;
    };
    one_batch_many_consumers(env).await;
}
