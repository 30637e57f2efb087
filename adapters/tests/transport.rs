//! The simulated transport and devices around real Signal sessions: routing both ways, receipts,
//! offline queues, duplicates shown once, and a network that never carries plaintext.

use sealpost_adapters::clock::{Clock as _, SystemClock};
use sealpost_adapters::signal::{Libsignal, Peer, Session, SignalEngine};
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_adapters::transport::{Address, Envelope, Payload, Receipt, Transport};
use std::sync::Arc;

const BUSINESS: &str = "15550783881";

fn engine() -> Arc<dyn SignalEngine> {
    Arc::new(Libsignal)
}

#[tokio::test]
async fn messages_and_receipts_flow_and_the_network_sees_only_ciphertext() {
    let net = SimNetwork::new();
    let e = engine();
    let mut business = e.new_account(7, 10, SystemClock.now()).expect("account");
    net.publish(BUSINESS, e.directory_entry(&business).expect("entry"))
        .await
        .expect("publish");
    let mut alice = SimDevice::join(e.clone(), &net, "4915112345678")
        .await
        .expect("device");
    let mut bob = SimDevice::join(e.clone(), &net, "447700900123")
        .await
        .expect("device");
    bob.offline = true;

    alice
        .send(&net, BUSINESS, "dev-1", b"CANARY-in-alice hi")
        .await
        .expect("send");
    let inbox = net.take_inbox(BUSINESS, 10).await.expect("inbox");
    assert_eq!(inbox.len(), 1);
    let Payload::Message { ciphertext } = &inbox[0].payload else {
        panic!("a message")
    };
    let peer = Peer {
        name: inbox[0].from.handle.clone(),
        device: 1,
    };
    let d = e
        .decrypt(&mut business, &peer, None, None, ciphertext)
        .expect("decrypt");
    assert_eq!(d.plaintext, b"CANARY-in-alice hi");
    let mut alice_session: Session = d.session;

    // The business answers Alice and writes to Bob, who is offline.
    for (id, to, text) in [
        ("wamid.1", "4915112345678", "CANARY-out-alice ready"),
        ("wamid.2", "447700900123", "CANARY-out-bob hello"),
    ] {
        let (session, bundle) = if to == "4915112345678" {
            (Some(alice_session.clone()), None)
        } else {
            (None, net.fetch_bundle(to, 1).await.expect("bundle"))
        };
        let peer = Peer {
            name: to.into(),
            device: 1,
        };
        let out = e
            .encrypt(
                &business,
                &peer,
                session.as_ref(),
                bundle.as_ref(),
                None,
                text.as_bytes(),
                SystemClock.now(),
            )
            .expect("encrypt");
        if to == "4915112345678" {
            alice_session = out.session.clone();
        }
        let envelope = Envelope {
            id: id.into(),
            from: Address {
                handle: BUSINESS.into(),
                device: 1,
            },
            to: Address {
                handle: to.into(),
                device: 1,
            },
            payload: Payload::Message {
                ciphertext: out.ciphertext,
            },
        };
        net.send(envelope.clone()).await.expect("send");
        if id == "wamid.1" {
            net.send(envelope).await.expect("duplicate delivery");
        }
    }
    assert_eq!(
        alice.step(&net).await.expect("step"),
        1,
        "the duplicate is not shown twice"
    );
    assert_eq!(
        alice.inbox().await.expect("inbox")[0].plaintext,
        b"CANARY-out-alice ready"
    );
    assert_eq!(bob.step(&net).await.expect("step"), 0, "offline");
    assert_eq!(
        net.queued("447700900123"),
        1,
        "the transport queues for an offline device"
    );
    bob.offline = false;
    assert_eq!(bob.step(&net).await.expect("step"), 1);
    assert_eq!(
        bob.inbox().await.expect("inbox")[0].plaintext,
        b"CANARY-out-bob hello"
    );

    let receipts: Vec<(Receipt, String)> = net
        .take_inbox(BUSINESS, 100)
        .await
        .expect("inbox")
        .into_iter()
        .filter_map(|env| match env.payload {
            Payload::Receipt { receipt, of } => Some((receipt, of)),
            _ => None,
        })
        .collect();
    assert!(receipts.contains(&(Receipt::Delivered, "wamid.2".into())));
    assert!(receipts.contains(&(Receipt::Read, "wamid.1".into())));

    // Everything the transport ever held, serialized, holds no plaintext.
    let routed = serde_json::to_vec(&net.routed()).expect("serialize");
    for canary in ["CANARY-in-alice", "CANARY-out-alice", "CANARY-out-bob"] {
        assert!(
            !routed.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{canary} crossed the transport in plaintext"
        );
    }
}

#[tokio::test]
async fn unknown_recipients_are_refused() {
    let net = SimNetwork::new();
    let envelope = Envelope {
        id: "x".into(),
        from: Address {
            handle: BUSINESS.into(),
            device: 1,
        },
        to: Address {
            handle: "19995550000".into(),
            device: 1,
        },
        payload: Payload::Retransmit { of: "y".into() },
    };
    assert!(net.send(envelope).await.is_err());
    assert_eq!(
        net.fetch_bundle("19995550000", 1).await.expect("lookup"),
        None
    );
}
