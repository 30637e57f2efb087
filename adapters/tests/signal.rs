//! The Signal port on the official protocol code: PQXDH handshakes in both directions, the
//! ratchet across serialized state, duplicates, identity changes, prekey consumption and
//! replenishment, signed-prekey rotation, and garbage that must not panic.

use proptest::prelude::*;
use sealpost_adapters::clock::{Clock as _, SystemClock};
use sealpost_adapters::signal::{
    Account, Bundle, DirectoryEntry, Libsignal, Peer, Session, SignalEngine, SignalError,
};

const E: Libsignal = Libsignal;

struct Party {
    account: Account,
    entry: DirectoryEntry,
    me: Peer,
}

fn party(name: &str, prekeys: u32) -> Party {
    let account = E
        .new_account(1234, prekeys, SystemClock.now())
        .expect("account");
    let entry = E.directory_entry(&account).expect("entry");
    // Round-trip through bytes as a store would.
    let account = Account::from_bytes(&account.to_bytes()).expect("bytes");
    Party {
        account,
        entry,
        me: Peer {
            name: name.into(),
            device: 1,
        },
    }
}

/// One side of a conversation: its session with the peer and the identity it pinned.
#[derive(Default)]
struct Link {
    session: Option<Session>,
    identity: Option<Vec<u8>>,
}

fn send(from: &Party, link: &mut Link, to: &Peer, bundle: Option<&Bundle>, text: &[u8]) -> Vec<u8> {
    let out = E
        .encrypt(
            &from.account,
            to,
            link.session.as_ref(),
            bundle,
            link.identity.as_deref(),
            text,
            SystemClock.now(),
        )
        .expect("encrypt");
    link.session = Some(out.session);
    link.identity = Some(out.peer_identity);
    out.ciphertext
}

fn receive(
    to: &mut Party,
    link: &mut Link,
    from: &Peer,
    ciphertext: &[u8],
) -> Result<(Vec<u8>, bool), SignalError> {
    let out = E.decrypt(
        &mut to.account,
        from,
        link.session.as_ref(),
        link.identity.as_deref(),
        ciphertext,
    )?;
    link.session = Some(out.session);
    link.identity = Some(out.peer_identity);
    Ok((out.plaintext, out.identity_changed))
}

#[test]
fn consumer_starts_then_both_ratchet() {
    let mut business = party("15550783881", 5);
    let mut device = party("4915112345678", 5);
    let (mut b, mut d) = (Link::default(), Link::default());
    let bundle = business.entry.take_bundle(1);
    assert!(bundle.one_time.is_some());

    let first = send(
        &device,
        &mut d,
        &business.me,
        Some(&bundle),
        b"hi, is my bike ready?",
    );
    assert_eq!(first[0], 3, "the first message is a PreKey message");
    assert!(
        first.len() > 1_568,
        "it carries a Kyber1024 ciphertext (PQXDH): {} bytes",
        first.len()
    );
    let (text, changed) = receive(&mut business, &mut b, &device.me, &first).expect("decrypt");
    assert_eq!(text, b"hi, is my bike ready?");
    assert!(!changed);
    assert_eq!(
        business.account.one_time_prekeys(),
        4,
        "the one-time prekey was consumed"
    );

    let reply = send(&business, &mut b, &device.me, None, b"yes, at 5pm");
    assert_eq!(reply[0], 2, "the responder answers with a normal message");
    assert_eq!(
        receive(&mut device, &mut d, &business.me, &reply)
            .expect("decrypt")
            .0,
        b"yes, at 5pm"
    );
    let next = send(&device, &mut d, &business.me, None, b"thanks");
    assert_eq!(
        next[0], 2,
        "after the first reply the sender stops sending PreKey messages"
    );
    assert_eq!(
        receive(&mut business, &mut b, &device.me, &next)
            .expect("decrypt")
            .0,
        b"thanks"
    );
    for i in 0..20u8 {
        let c = send(&business, &mut b, &device.me, None, &[i; 200]);
        assert_eq!(
            receive(&mut device, &mut d, &business.me, &c)
                .expect("decrypt")
                .0,
            vec![i; 200]
        );
    }
}

#[test]
fn business_starts_without_one_time_prekeys_left() {
    let business = party("15550783881", 0);
    let mut device = party("447700900123", 0);
    let (mut b, mut d) = (Link::default(), Link::default());
    let bundle = device.entry.take_bundle(1);
    assert!(
        bundle.one_time.is_none(),
        "the signed and Kyber last-resort prekeys suffice"
    );
    let c = send(
        &business,
        &mut b,
        &device.me,
        Some(&bundle),
        b"order 42 shipped",
    );
    assert_eq!(
        receive(&mut device, &mut d, &business.me, &c)
            .expect("decrypt")
            .0,
        b"order 42 shipped"
    );
}

#[test]
fn a_duplicate_is_recognised_and_garbage_is_an_error() {
    let mut business = party("15550783881", 2);
    let mut device = party("33612345678", 2);
    let (mut b, mut d) = (Link::default(), Link::default());
    let bundle = business.entry.take_bundle(1);
    let first = send(&device, &mut d, &business.me, Some(&bundle), b"one");
    receive(&mut business, &mut b, &device.me, &first).expect("decrypt");
    let reply = send(&business, &mut b, &device.me, None, b"two");
    receive(&mut device, &mut d, &business.me, &reply).expect("decrypt");
    assert_eq!(
        receive(&mut device, &mut d, &business.me, &reply),
        Err(SignalError::Duplicate)
    );
    let mut tampered = send(&business, &mut b, &device.me, None, b"three");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        receive(&mut device, &mut d, &business.me, &tampered),
        Err(SignalError::InvalidMessage(_))
    ));
    assert!(receive(&mut device, &mut d, &business.me, &[]).is_err());
    assert!(receive(&mut device, &mut d, &business.me, &[9, 1, 2, 3]).is_err());
}

#[test]
fn a_reinstalled_device_is_reported_as_an_identity_change() {
    let mut business = party("15550783881", 3);
    let device = party("4915112345678", 3);
    let (mut b, mut d) = (Link::default(), Link::default());
    let c = send(
        &device,
        &mut d,
        &business.me,
        Some(&business.entry.take_bundle(1)),
        b"before",
    );
    receive(&mut business, &mut b, &device.me, &c).expect("decrypt");

    let reinstalled = party("4915112345678", 3);
    let mut d2 = Link::default();
    let c = send(
        &reinstalled,
        &mut d2,
        &business.me,
        Some(&business.entry.take_bundle(1)),
        b"after",
    );
    let (text, changed) = receive(&mut business, &mut b, &reinstalled.me, &c).expect("decrypt");
    assert_eq!(text, b"after");
    assert!(changed, "the new identity is accepted and reported");
}

#[test]
fn replenished_and_rotated_prekeys_keep_working() {
    let mut business = party("15550783881", 1);
    let published = E.replenish(&mut business.account, 4).expect("replenish");
    assert_eq!(published.len(), 3);
    assert_eq!(business.account.one_time_prekeys(), 4);
    let mut entry = E.directory_entry(&business.account).expect("entry");
    assert_eq!(entry.one_time.len(), 4);

    // A device starts with the current signed prekey, then the business rotates it once:
    // the message in flight still decrypts.
    let device = party("447700900123", 0);
    let mut d = Link::default();
    let c = send(
        &device,
        &mut d,
        &business.me,
        Some(&entry.take_bundle(1)),
        b"in flight",
    );
    E.rotate_signed_prekey(&mut business.account, SystemClock.now())
        .expect("rotate");
    let mut b = Link::default();
    assert_eq!(
        receive(&mut business, &mut b, &device.me, &c)
            .expect("decrypt")
            .0,
        b"in flight"
    );
    assert_ne!(
        E.directory_entry(&business.account)
            .expect("entry")
            .signed_prekey
            .0,
        entry.signed_prekey.0
    );
}

#[test]
fn debug_output_holds_no_secrets() {
    let p = party("4915112345678", 1);
    let debug = format!("{:?} {:?}", p.account, p.me);
    assert!(!debug.contains("4915112345678"));
    assert!(debug.contains("one_time_prekeys"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        let mut business = party("15550783881", 1);
        let device = Peer { name: "1555".into(), device: 1 };
        let _ = E.decrypt(&mut business.account, &device, None, None, &bytes);
    }
}
