//! A Sealpost over a real store with a simulated clock, for the end-to-end tests; the black-box
//! harness around the real binary is `server` (with `hook`, a webhook listener), a private
//! Postgres cluster `cluster`; the message path's set-up (a business, a pipeline, devices)
//! `world`; several nodes over one store `nodes`.
#![allow(dead_code)]

pub mod cluster;
pub mod hook;
pub mod nodes;
pub mod openapi;
pub mod otlp;
pub mod server;
pub mod world;

use sealpost::app::Sealpost;
use sealpost_adapters::clock::SimClock;
use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::store::Stores;
use sealpost_adapters::vault::RootKeys;
use sealpost_domain::{Region, RetentionPolicy, Timestamp};
use sealpost_testkit::{postgres_test_db, PgTestDb};
use std::sync::Arc;

/// 2026-03-01T00:00:00Z.
pub const START_MS: i64 = 1_772_323_200_000;

pub struct Env {
    pub app: Sealpost,
    pub clock: SimClock,
    pub dir: Option<tempfile::TempDir>,
    pub pg: Option<PgTestDb>,
}

impl Env {
    pub fn name(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub async fn finish(self) {
        if let Some(pg) = self.pg {
            pg.drop_schema().await;
        }
    }
}

pub async fn sqlite_env() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = SimClock::starting_at(Timestamp::from_millis(START_MS));
    let app = Sealpost::open_sqlite(
        dir.path(),
        Arc::new(clock.clone()),
        RetentionPolicy::default(),
    )
    .await
    .expect("open");
    Env {
        app,
        clock,
        dir: Some(dir),
        pg: None,
    }
}

/// [`sqlite_env`] with the region root keys in the PKCS#11 test token (SoftHSM2, ADR 0023);
/// `None` (a loud skip) when there is no token and none is required.
pub async fn sqlite_env_in_token(label: &str) -> Option<Env> {
    let token = sealpost_testkit::hsm::test_token(label)?;
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = SimClock::starting_at(Timestamp::from_millis(START_MS));
    let app = Sealpost::start(
        Stores::sqlite(dir.path()).await.expect("stores"),
        sealpost_adapters::vault::TokenRoots::open(token).expect("the test token"),
        Arc::new(clock.clone()),
        RetentionPolicy::default(),
    )
    .await
    .expect("start")
    .with_witness(sealpost_audit::log::witness_path(dir.path()));
    Some(Env {
        app,
        clock,
        dir: Some(dir),
        pg: None,
    })
}

pub async fn postgres_env(label: &str) -> Option<Env> {
    let pg = postgres_test_db(label).await?;
    let clock = SimClock::starting_at(Timestamp::from_millis(START_MS));
    let roots = RootKeys::fixed(Region::ALL.map(|r| (r, SecretKey::random())));
    let app = Sealpost::start(
        Stores::postgres(pg.pool.clone(), pg.regions()),
        roots,
        Arc::new(clock.clone()),
        RetentionPolicy::default(),
    )
    .await
    .expect("start");
    Some(Env {
        app,
        clock,
        dir: None,
        pg: Some(pg),
    })
}

/// The consumer of the black-box tests (a fixed test number, searched for in logs).
pub const CONSUMER: &str = "4915112345678";

/// A Cloud API text message to `to`.
pub fn text(to: &str, body: &str) -> serde_json::Value {
    serde_json::json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text", "text": {"preview_url": false, "body": body}})
}

/// A recognisable string that must never be found in storage or logs.
pub fn canary(i: usize, what: &str) -> String {
    format!("CANARY-{what}-{i}-e1b2")
}

/// Records an inbound message whose content is already known, without Signal: the ciphertext,
/// what decrypting it produced and the hand-over to the business, as the pipeline does.
pub async fn receive(
    app: &Sealpost,
    number: &sealpost_domain::PhoneNumberId,
    from: &sealpost_domain::E164,
    ciphertext: &[u8],
    content: &sealpost_domain::MessageContent,
    profile_name: Option<&str>,
) -> Result<sealpost_domain::MessageId, sealpost::app::AppError> {
    let state = app.catalog().find_phone_number(number).await?;
    let business = state.business_id.clone().expect("a business's number");
    let region = state.storage_region().expect("a home region");
    let subject = app
        .subjects()
        .subject_loaded(&business, region, from)
        .await?;
    let id = sealpost_domain::MessageId::from_random(rand::random());
    let (_, mut inbound) = app
        .messaging()
        .receive_ciphertext((&business, region), number, subject, &id, ciphertext, None)
        .await?;
    app.messaging()
        .record_decrypted(&mut inbound, content.clone(), profile_name)
        .await?;
    Ok(id)
}

/// The subject an (inbound or outbound) message belongs to.
/// The event types of a message's stream, in order.
pub async fn event_types(app: &Sealpost, message: &sealpost_domain::MessageId) -> Vec<String> {
    let business = app
        .messaging()
        .find_business(message)
        .await
        .expect("business");
    app.store()
        .read_stream(
            &sealpost_adapters::store::StreamId::new(
                business.as_str(),
                "message",
                message.as_str(),
            ),
            0,
        )
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.header.event_type)
        .collect()
}

pub async fn subject_of(
    app: &Sealpost,
    message: &sealpost_domain::MessageId,
) -> sealpost_domain::SubjectId {
    let business = app
        .messaging()
        .find_business(message)
        .await
        .expect("business");
    app.messaging()
        .message(&business, message)
        .await
        .expect("message")
        .subject_id
        .expect("a subject")
}
