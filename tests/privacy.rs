//! Privacy by construction, checked on the bytes: canary contents, phone numbers and profile
//! names never reach the SQLite files (main and WAL) or any Postgres column, before or after
//! shredding; after 30 days + 1 hour nothing older than 30 days opens for anyone, counts and
//! statuses still read, and destroyed keys' wrapped bytes are gone from the SQLite files.

mod common;
#[path = "privacy/root_keys.rs"]
mod root_keys;
#[path = "privacy/token.rs"]
mod token;

use common::{canary, postgres_env, sqlite_env, Env};
use sealpost::app::AppError;
use sealpost_adapters::scan::{scan_dir, scan_postgres, Hit};
use sealpost_adapters::store::KeyState;
use sealpost_adapters::vault::{epoch_key_id, subject_key_id};
use sealpost_audit::GateError;
use sealpost_domain::media::MediaOrigin;
use sealpost_domain::time::{DAY_MS, HOUR_MS};
use sealpost_domain::{
    BusinessId, DomainError, MediaId, MessageCommand, MessageContent, MessageId, MessageKind,
    MessageStatus, Opened, PhoneNumberId, Principal, PrincipalKind, Purpose, Region, SubjectId,
    E164,
};

const PHONES: [&str; 4] = [
    "4915112345678",
    "447700900123",
    "33612345678",
    "15551234567",
];

/// Every needle that must never be found in storage.
fn needles() -> Vec<Vec<u8>> {
    let mut n = Vec::new();
    for (i, p) in PHONES.iter().enumerate() {
        n.push(p.as_bytes().to_vec());
        for what in ["in", "out", "name", "cb", "ct", "media"] {
            n.push(canary(i, what).into_bytes());
        }
    }
    n
}

async fn hits(env: &Env) -> Vec<Hit> {
    match (&env.dir, &env.pg) {
        // Recursively: the regions' stores (`regions/<CODE>/`) included.
        (Some(dir), _) => scan_dir(dir.path(), &needles()).expect("scan"),
        (None, Some(pg)) => scan_every_schema(pg, &needles()).await,
        _ => unreachable!("an env has a directory or a database"),
    }
}

/// Every column of every table of the test's schema and of its regions' schemas.
async fn scan_every_schema(pg: &sealpost_testkit::PgTestDb, needles: &[Vec<u8>]) -> Vec<Hit> {
    let mut hits = scan_postgres(&pg.pool, needles).await.expect("scan");
    for schema in pg.region_schemas().await {
        let pool = sealpost_adapters::store::postgres::connect(&pg.url, Some(&schema), 1)
            .await
            .expect("connect");
        hits.extend(scan_postgres(&pool, needles).await.expect("scan"));
        pool.close().await;
    }
    hits
}

struct Traffic {
    business: BusinessId,
    /// The number's region (a Local Storage election, or EU).
    region: Region,
    me: Principal,
    old: Vec<(MessageId, MessageId)>,
    recent: Vec<MessageId>,
    old_subjects: Vec<SubjectId>,
    /// An upload in the old epoch, its bytes canary 0 "media" (ADR 0030: sealed chunks).
    media: MediaId,
}

/// Every consumer writes in and gets an answer at `START`; consumer 3 writes again 20 days later.
/// The number is in `region` (elected before any traffic when it is a Local Storage region).
async fn traffic(env: &Env, region: Region) -> Traffic {
    let app = &env.app;
    let business = app
        .catalog()
        .register_business("Canary Shop", Region::Eu)
        .await
        .expect("business");
    let number: PhoneNumberId = app
        .catalog()
        .add_phone_number(&business, "15550783881", Region::Eu)
        .await
        .expect("number");
    let me = Principal::business(business.clone(), "system-user");
    if region.is_local_storage() {
        common::world::elect(app, &me, &number, region).await;
    }
    let mut old = Vec::new();
    for (i, p) in PHONES.iter().enumerate() {
        let phone = E164::parse(&format!("+{p}")).expect("phone");
        let inbound = common::receive(
            app,
            &number,
            &phone,
            canary(i, "ct").as_bytes(),
            &MessageContent::text(canary(i, "in")),
            Some(&canary(i, "name")),
        )
        .await
        .expect("receive");
        let outbound = app
            .messaging()
            .send(
                &me,
                &number,
                &phone,
                &MessageContent::text(canary(i, "out")),
                Some(&canary(i, "cb")),
            )
            .await
            .expect("send");
        for step in [
            MessageCommand::RecordSent,
            MessageCommand::RecordDelivered,
            MessageCommand::RecordRead,
        ] {
            app.messaging()
                .record(&business, &outbound, step)
                .await
                .expect("status");
        }
        old.push((inbound, outbound));
    }
    let mut old_subjects = Vec::new();
    for (inbound, _) in &old[..3] {
        old_subjects.push(
            app.messaging()
                .message(&business, inbound)
                .await
                .expect("message")
                .subject_id
                .expect("subject"),
        );
    }
    let media = app
        .media()
        .store_media(
            &me,
            &business,
            &number,
            MediaOrigin::Upload,
            None,
            "text/plain",
            Some("notes.txt"),
            canary(0, "media").as_bytes(),
        )
        .await
        .expect("upload");
    env.clock.advance_millis(20 * DAY_MS);
    let phone = E164::parse(PHONES[3]).expect("phone");
    let recent_in = common::receive(
        app,
        &number,
        &phone,
        b"ct",
        &MessageContent::text("again"),
        None,
    )
    .await
    .expect("receive");
    let recent_out = app
        .messaging()
        .send(&me, &number, &phone, &MessageContent::text("answer"), None)
        .await
        .expect("send");
    Traffic {
        business,
        region,
        me,
        old,
        recent: vec![recent_in, recent_out],
        old_subjects,
        media,
    }
}

async fn no_plaintext_before_and_after_shredding(env: Env, region: Region) {
    let t = traffic(&env, region).await;
    // The business can read its own message: the canary really went in.
    let opened = env
        .app
        .messaging()
        .read_content(
            &t.me,
            sealpost_domain::Purpose::BusinessApi,
            &t.business,
            &t.old[0].1,
        )
        .await
        .expect("read");
    assert_eq!(
        opened
            .plain()
            .and_then(|c| c.text_body().map(str::to_owned)),
        Some(canary(0, "out"))
    );
    assert_eq!(
        hits(&env).await,
        vec![],
        "{}: plaintext found before shredding",
        env.name()
    );

    env.clock.advance_millis(10 * DAY_MS + HOUR_MS);
    let subject = env
        .app
        .messaging()
        .message(&t.business, &t.recent[0])
        .await
        .expect("m")
        .subject_id
        .expect("s");
    env.app
        .subjects()
        .erase(&Principal::of_kind(PrincipalKind::Dpo, "dpo"), &subject)
        .await
        .expect("erase");
    let report = env
        .app
        .retention()
        .run_once(env.app.now())
        .await
        .expect("retention");
    assert!(report.epoch_keys_destroyed >= 1);
    assert_eq!(
        hits(&env).await,
        vec![],
        "{}: plaintext found after shredding",
        env.name()
    );
    env.finish().await;
}

/// Every principal kind, each with every purpose it may act for.
fn everyone(business: &BusinessId) -> Vec<(Principal, sealpost_domain::Purpose)> {
    let mut all = Vec::new();
    for kind in PrincipalKind::ALL {
        let p = match kind {
            PrincipalKind::Business => Principal::business(business.clone(), "system-user"),
            k => Principal::of_kind(k, "x"),
        };
        for purpose in kind.purposes() {
            all.push((p.clone(), *purpose));
        }
    }
    all
}

async fn nothing_older_than_30_days_opens(env: Env, region: Region) {
    let t = traffic(&env, region).await;
    let keys = env.app.stores().keys.clone();
    let epoch = env
        .app
        .messaging()
        .message(&t.business, &t.old[0].0)
        .await
        .expect("m")
        .epoch
        .expect("epoch");
    let mut doomed = vec![epoch_key_id(t.business.as_str(), t.region, epoch)];
    doomed.extend(
        t.old_subjects
            .iter()
            .map(|s| subject_key_id(t.business.as_str(), t.region, s)),
    );
    let mut wrapped = Vec::new();
    for id in &doomed {
        match keys.get(t.business.as_str(), id).await.expect("get") {
            KeyState::Live(w) => wrapped.push(w.wrapped),
            other => panic!("key {id} should be live before retention, is {other:?}"),
        }
    }

    let (_, reader, _) = env
        .app
        .media()
        .media_reader(&t.me, Purpose::BusinessApi, &t.media)
        .await
        .expect("the upload opens before");
    assert_eq!(
        reader.read_all().await.expect("bytes"),
        canary(0, "media").into_bytes()
    );

    // 30 days + 1 hour after the first messages (the clock is already 20 days on).
    env.clock.advance_millis(10 * DAY_MS + HOUR_MS);
    let report = env
        .app
        .retention()
        .run_once(env.app.now())
        .await
        .expect("retention");
    assert_eq!(
        report.epoch_keys_destroyed, 1,
        "one key per epoch, however many messages"
    );
    assert_eq!(
        report.subjects_expired, 3,
        "consumers 0-2 had no message in the last 30 days"
    );
    assert_eq!(
        report.media_chunks_deleted, 1,
        "the old upload's one chunk is deleted with its epoch"
    );
    assert!(
        matches!(
            env.app
                .media()
                .media_reader(&t.me, Purpose::BusinessApi, &t.media)
                .await,
            Err(AppError::Domain(DomainError::NotFound))
        ),
        "an upload older than 30 days does not open"
    );

    for (inbound, outbound) in &t.old {
        for id in [inbound, outbound] {
            for (who, purpose) in everyone(&t.business) {
                match env
                    .app
                    .messaging()
                    .read_content(&who, purpose, &t.business, id)
                    .await
                {
                    Ok(Opened::Shredded) | Err(AppError::Gate(GateError::Denied(_))) => {}
                    Ok(Opened::Plain(_)) => panic!(
                        "{}: {:?} opened a message older than 30 days",
                        env.name(),
                        who.kind
                    ),
                    Err(e) => panic!("{}: unexpected error {e}", env.name()),
                }
            }
        }
        // Non-personal facts survive.
        let m = env
            .app
            .messaging()
            .message(&t.business, outbound)
            .await
            .expect("status");
        assert_eq!(m.status, Some(MessageStatus::Read));
        assert_eq!(m.kind, Some(MessageKind::Text));
    }
    for s in &t.old_subjects {
        assert!(env
            .app
            .subjects()
            .read_phone(&t.me, sealpost_domain::Purpose::BusinessApi, &t.business, s)
            .await
            .expect("phone")
            .is_shredded());
    }
    for id in &t.recent {
        let c = env
            .app
            .messaging()
            .read_content(
                &t.me,
                sealpost_domain::Purpose::BusinessApi,
                &t.business,
                id,
            )
            .await
            .expect("recent");
        assert!(!c.is_shredded(), "a 10-day-old message is still readable");
    }
    // Counts still read from the log: 4 inbound + 4 outbound at day 0, 2 more at day 20.
    let all = env.app.store().read_all(0, 100_000).await.expect("read");
    let accepted = all
        .iter()
        .filter(|e| e.header.event_type == "OutboundMessageAccepted")
        .count();
    let received = all
        .iter()
        .filter(|e| e.header.event_type == "InboundMessageReceived")
        .count();
    assert_eq!((accepted, received), (5, 5));

    for id in &doomed {
        assert_eq!(
            keys.get(t.business.as_str(), id).await.expect("get"),
            KeyState::Destroyed,
            "{id}"
        );
    }
    if let Some(dir) = &env.dir {
        let found = scan_dir(dir.path(), &wrapped).expect("scan");
        assert_eq!(
            found,
            vec![],
            "destroyed keys' wrapped bytes linger in the SQLite files"
        );
    }
    if let Some(pg) = &env.pg {
        assert_eq!(scan_every_schema(pg, &wrapped).await, vec![]);
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_never_stores_plaintext() {
    no_plaintext_before_and_after_shredding(sqlite_env().await, Region::Eu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_never_stores_plaintext() {
    let Some(env) = postgres_env("canary").await else {
        return;
    };
    no_plaintext_before_and_after_shredding(env, Region::Eu).await;
}

/// The same for a Local Storage number, whose keys are in its region's store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_never_stores_plaintext_of_a_local_storage_number() {
    no_plaintext_before_and_after_shredding(sqlite_env().await, Region::De).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_never_stores_plaintext_of_a_local_storage_number() {
    let Some(env) = postgres_env("canary de").await else {
        return;
    };
    no_plaintext_before_and_after_shredding(env, Region::De).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_nothing_older_than_30_days_opens() {
    nothing_older_than_30_days_opens(sqlite_env().await, Region::Eu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nothing_older_than_30_days_opens() {
    let Some(env) = postgres_env("thirty").await else {
        return;
    };
    nothing_older_than_30_days_opens(env, Region::Eu).await;
}

/// The same for a Local Storage number: its region's keys are destroyed in its region's store
/// and their bytes leave its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_nothing_older_than_30_days_opens_in_a_local_storage_region() {
    nothing_older_than_30_days_opens(sqlite_env().await, Region::In).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nothing_older_than_30_days_opens_in_a_local_storage_region() {
    let Some(env) = postgres_env("thirty in").await else {
        return;
    };
    nothing_older_than_30_days_opens(env, Region::In).await;
}

/// A crash between recording a destruction and performing it is finished by the next pass:
/// here the events are written without destroying the keys, as a crash would leave them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_destructions_are_finished_by_the_next_pass() {
    interrupted_destructions_are_finished(sqlite_env().await).await;
}

async fn interrupted_destructions_are_finished(env: Env) {
    use sealpost_adapters::exec::CommandMeta;
    use sealpost_domain::{Subject, SubjectCommand};
    let t = traffic(&env, Region::Eu).await;
    let exec = sealpost_adapters::exec::Executor::new(env.app.store().clone());
    let keys = env.app.stores().keys.clone();
    let dpo = Principal::of_kind(PrincipalKind::Dpo, "dpo");
    let meta = CommandMeta::new(t.business.as_str(), Region::Eu, &dpo);
    let (erased, expired) = (&t.old_subjects[0], &t.old_subjects[1]);
    exec.execute::<Subject>(
        erased.as_str(),
        SubjectCommand::Erase {
            requested_by: "dpo".into(),
        },
        &meta,
        env.app.now(),
    )
    .await
    .expect("erase event");
    exec.execute::<Subject>(
        expired.as_str(),
        SubjectCommand::Expire,
        &meta,
        env.app.now(),
    )
    .await
    .expect("expire event");
    for s in [erased, expired] {
        assert!(matches!(
            keys.get(
                t.business.as_str(),
                &subject_key_id(t.business.as_str(), Region::Eu, s)
            )
            .await
            .expect("get"),
            KeyState::Live(_)
        ));
    }
    let report = env
        .app
        .retention()
        .run_once(env.app.now())
        .await
        .expect("retention");
    assert_eq!(report.erasures_completed, 1);
    for s in [erased, expired] {
        assert_eq!(
            keys.get(
                t.business.as_str(),
                &subject_key_id(t.business.as_str(), Region::Eu, s)
            )
            .await
            .expect("get"),
            KeyState::Destroyed
        );
        assert!(env
            .app
            .subjects()
            .read_phone(&t.me, sealpost_domain::Purpose::BusinessApi, &t.business, s)
            .await
            .expect("phone")
            .is_shredded());
    }
    env.finish().await;
}
