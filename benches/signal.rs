//! Signal costs as Sealpost pays them (`SignalEngine`: state in, state out, serialized between
//! calls) next to the bare library calls on long-lived in-memory stores, in the same run.
//!
//! `cargo bench --bench signal` (figures in docs/benchmarks.md).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures::FutureExt as _;
use libsignal_protocol as lib;
use sealpost_adapters::clock::{Clock as _, SystemClock};
use sealpost_adapters::signal::{Account, Libsignal, Peer, Session, SignalEngine};
use std::cell::RefCell;
use std::rc::Rc;

const MESSAGE: [u8; 200] = [42; 200];

fn done<T>(f: impl std::future::Future<Output = T>) -> T {
    f.now_or_never().expect("in-memory stores never wait")
}

fn store() -> lib::InMemSignalProtocolStore {
    let mut rng = rand::rng();
    lib::InMemSignalProtocolStore::new(lib::IdentityKeyPair::generate(&mut rng), 7).expect("store")
}

/// A bundle for `s`, its prekeys saved in `s` (what a device publishes).
fn bundle(s: &mut lib::InMemSignalProtocolStore) -> lib::PreKeyBundle {
    use lib::{
        GenericSignedPreKey as _, IdentityKeyStore as _, KyberPreKeyStore as _, PreKeyStore as _,
        SignedPreKeyStore as _,
    };
    let mut rng = rand::rng();
    let identity = done(s.get_identity_key_pair()).expect("identity");
    let pre = lib::KeyPair::generate(&mut rng);
    let signed = lib::KeyPair::generate(&mut rng);
    let signed_sig = identity
        .private_key()
        .calculate_signature(&signed.public_key.serialize(), &mut rng)
        .expect("sign");
    let kyber = lib::KyberPreKeyRecord::generate(
        lib::kem::KeyType::Kyber1024,
        1.into(),
        identity.private_key(),
    )
    .expect("kyber");
    done(s.save_pre_key(1.into(), &lib::PreKeyRecord::new(1.into(), &pre))).expect("save");
    done(s.save_signed_pre_key(
        1.into(),
        &lib::SignedPreKeyRecord::new(
            1.into(),
            lib::Timestamp::from_epoch_millis(1),
            &signed,
            &signed_sig,
        ),
    ))
    .expect("save");
    done(s.save_kyber_pre_key(1.into(), &kyber)).expect("save");
    lib::PreKeyBundle::new(
        7,
        lib::DeviceId::new(1).expect("device"),
        Some((1.into(), pre.public_key)),
        1.into(),
        signed.public_key,
        signed_sig.to_vec(),
        1.into(),
        kyber.public_key().expect("kyber public"),
        kyber.signature().expect("kyber signature"),
        *identity.identity_key(),
    )
    .expect("bundle")
}

fn addr(name: &str) -> lib::ProtocolAddress {
    lib::ProtocolAddress::new(name.into(), lib::DeviceId::new(1).expect("device"))
}

fn bare_encrypt(from: &mut lib::InMemSignalProtocolStore, to: &str) -> lib::CiphertextMessage {
    done(lib::message_encrypt(
        &MESSAGE,
        &addr(to),
        &mut from.session_store,
        &mut from.identity_store,
        std::time::SystemTime::now(),
        &mut rand::rng(),
    ))
    .expect("encrypt")
}

fn bare_decrypt(
    at: &mut lib::InMemSignalProtocolStore,
    from: &str,
    m: &lib::CiphertextMessage,
) -> Vec<u8> {
    done(lib::message_decrypt(
        m,
        &addr(from),
        &mut at.session_store,
        &mut at.identity_store,
        &mut at.pre_key_store,
        &at.signed_pre_key_store,
        &mut at.kyber_pre_key_store,
        &mut rand::rng(),
    ))
    .expect("decrypt")
}

/// Alice (the business) and Bob (a device) with a session both ways.
fn bare_pair() -> (lib::InMemSignalProtocolStore, lib::InMemSignalProtocolStore) {
    let (mut alice, mut bob) = (store(), store());
    let b = bundle(&mut bob);
    done(lib::process_prekey_bundle(
        &addr("bob"),
        &mut alice.session_store,
        &mut alice.identity_store,
        &b,
        std::time::SystemTime::now(),
        &mut rand::rng(),
    ))
    .expect("bundle");
    let first = bare_encrypt(&mut alice, "bob");
    bare_decrypt(&mut bob, "alice", &first);
    let reply = bare_encrypt(&mut bob, "alice");
    bare_decrypt(&mut alice, "bob", &reply);
    (alice, bob)
}

struct Side {
    account: Account,
    session: Option<Session>,
}

/// The same through Sealpost's port, with every state serialized between calls.
fn engine_pair(e: &Libsignal) -> (Side, Side) {
    let business = e.new_account(1, 5, SystemClock.now()).expect("account");
    let mut device = e.new_account(2, 5, SystemClock.now()).expect("account");
    let bundle = e.directory_entry(&device).expect("entry").take_bundle(1);
    let first = e
        .encrypt(
            &business,
            &peer("device"),
            None,
            Some(&bundle),
            None,
            &MESSAGE,
            SystemClock.now(),
        )
        .expect("encrypt");
    let d = e
        .decrypt(
            &mut device,
            &peer("business"),
            None,
            None,
            &first.ciphertext,
        )
        .expect("decrypt");
    (
        Side {
            account: business,
            session: Some(first.session),
        },
        Side {
            account: device,
            session: Some(d.session),
        },
    )
}

fn peer(name: &str) -> Peer {
    Peer {
        name: name.into(),
        device: 1,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal");
    g.sample_size(30);

    // Encrypt one 200-byte message on an established session.
    let (mut alice, _bob) = bare_pair();
    g.bench_function("bare library: encrypt 200 B", |b| {
        b.iter(|| bare_encrypt(&mut alice, "bob"))
    });
    let e = Libsignal;
    let (mut biz, _dev) = engine_pair(&e);
    g.bench_function("sealpost engine: encrypt 200 B", |b| {
        b.iter(|| {
            let out = e
                .encrypt(
                    &biz.account,
                    &peer("device"),
                    biz.session.as_ref(),
                    None,
                    None,
                    &MESSAGE,
                    SystemClock.now(),
                )
                .expect("encrypt");
            biz.session = Some(out.session);
        })
    });

    // Decrypt one 200-byte message (each ciphertext made, untimed, just before).
    let (alice, bob) = bare_pair();
    let (alice, bob) = (Rc::new(RefCell::new(alice)), Rc::new(RefCell::new(bob)));
    g.bench_function("bare library: decrypt 200 B", |b| {
        b.iter_batched(
            || bare_encrypt(&mut alice.borrow_mut(), "bob"),
            |m| bare_decrypt(&mut bob.borrow_mut(), "alice", &m),
            BatchSize::SmallInput,
        )
    });
    let (biz, dev) = engine_pair(&e);
    let (biz, dev) = (Rc::new(RefCell::new(biz)), Rc::new(RefCell::new(dev)));
    g.bench_function("sealpost engine: decrypt 200 B", |b| {
        b.iter_batched(
            || {
                let mut s = biz.borrow_mut();
                let out = e
                    .encrypt(
                        &s.account,
                        &peer("device"),
                        s.session.as_ref(),
                        None,
                        None,
                        &MESSAGE,
                        SystemClock.now(),
                    )
                    .expect("encrypt");
                s.session = Some(out.session);
                out.ciphertext
            },
            |ct| {
                let mut d = dev.borrow_mut();
                let side = &mut *d;
                let out = e
                    .decrypt(
                        &mut side.account,
                        &peer("business"),
                        side.session.as_ref(),
                        None,
                        &ct,
                    )
                    .expect("decrypt");
                side.session = Some(out.session);
            },
            BatchSize::SmallInput,
        )
    });

    // A full PQXDH session set-up: bundle, first (PreKey) message, its decryption, first reply.
    g.sample_size(20);
    g.bench_function("bare library: session set-up", |b| b.iter(bare_pair));
    g.bench_function("sealpost engine: session set-up", |b| {
        b.iter(|| engine_pair(&e))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
