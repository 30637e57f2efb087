//! No personal data in any log line or span field. Its own test binary: tracing's per-thread
//! subscriber is only reliable when no other test runs in the same process at the same time.

mod common;

use common::{canary, sqlite_env};
use sealpost::app::AppError;
use sealpost_audit::GateError;
use sealpost_domain::time::{DAY_MS, HOUR_MS};
use sealpost_domain::{MessageContent, Principal, PrincipalKind, Purpose, Region, E164};

const PHONES: [&str; 2] = ["4915112345678", "447700900123"];

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line and span field at TRACE level, through traffic, refusals, denials, an
/// erasure and a retention pass, holds no content, number or profile name.
#[test]
fn logs_and_spans_never_hold_personal_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = sealpost_adapters::telemetry::json_subscriber("trace", move || writer.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let env = sqlite_env().await;
            let app = &env.app;
            let business = app
                .catalog()
                .register_business("Canary Shop", Region::Eu)
                .await
                .expect("business");
            let number = app
                .catalog()
                .add_phone_number(&business, "15550783881", Region::Eu)
                .await
                .expect("number");
            let me = Principal::business(business.clone(), "system-user");
            let mut inbound = Vec::new();
            for (i, p) in PHONES.iter().enumerate() {
                let phone = E164::parse(p).expect("phone");
                let refused = app
                    .messaging()
                    .send(
                        &me,
                        &number,
                        &phone,
                        &MessageContent::text(canary(i, "early")),
                        None,
                    )
                    .await;
                assert!(
                    matches!(refused, Err(AppError::Domain(_))),
                    "outside the window"
                );
                inbound.push(
                    common::receive(
                        app,
                        &number,
                        &phone,
                        canary(i, "ct").as_bytes(),
                        &MessageContent::text(canary(i, "in")),
                        Some(&canary(i, "name")),
                    )
                    .await
                    .expect("receive"),
                );
                app.messaging()
                    .send(
                        &me,
                        &number,
                        &phone,
                        &MessageContent::text(canary(i, "out")),
                        Some(&canary(i, "cb")),
                    )
                    .await
                    .expect("send");
            }
            let analytics = Principal::of_kind(PrincipalKind::Operator, "analytics");
            let denied = app
                .messaging()
                .read_content(&analytics, Purpose::Analytics, &business, &inbound[0])
                .await;
            assert!(matches!(denied, Err(AppError::Gate(GateError::Denied(_)))));
            let subject = app
                .messaging()
                .message(&business, &inbound[0])
                .await
                .expect("m")
                .subject_id
                .expect("s");
            env.clock.advance_millis(30 * DAY_MS + HOUR_MS);
            app.subjects()
                .erase(&Principal::of_kind(PrincipalKind::Dpo, "dpo"), &subject)
                .await
                .expect("erase");
            app.retention()
                .run_once(app.now())
                .await
                .expect("retention");
        });
    });
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        logs.contains("access denied") && logs.contains("retention pass done"),
        "the capture works:\n{logs}"
    );
    for (i, p) in PHONES.iter().enumerate() {
        assert!(!logs.contains(p), "phone number {i} found in the logs");
        for what in ["early", "ct", "in", "name", "out", "cb"] {
            assert!(
                !logs.contains(&canary(i, what)),
                "{what} {i} found in the logs"
            );
        }
    }
}
