//! `sealpost demo`: a scripted scenario on the embedded default, in a temporary data directory,
//! with the simulated clock. It prints what happened and checks the privacy promises it can
//! see; the exit status is non-zero if any check failed.

use crate::app::{AppError, Sealpost};
use crate::claims::Check;
use crate::pipeline::{IntegrityRecorder, Pipeline, StepReport};
use sealpost_adapters::clock::SimClock;
use sealpost_adapters::scan::scan_dir;
use sealpost_adapters::signal::Libsignal;
use sealpost_adapters::store::KeyState;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_audit::GateError;
use sealpost_domain::ports::signal::SignalEngine;
use sealpost_domain::time::{DAY_MS, HOUR_MS};
use sealpost_domain::{
    DomainError, MessageContent, MessageId, MessageStatus, Opened, Principal, PrincipalKind,
    Purpose, Region, RetentionPolicy, SubjectId, Timestamp, E164,
};
use std::io::Write;
use std::sync::Arc;

/// 2026-01-01T00:00:00Z, where the simulated clock starts.
pub const DEMO_START_MS: i64 = 1_767_225_600_000;

/// What the demo found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Outcome {
    /// Whether every check held.
    pub fn all_passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

mod stage;

use stage::{phone, Demo, CONSUMERS};

/// Runs the demo in `data_dir` (empty), writing the story to `out`.
pub async fn run(data_dir: &std::path::Path, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let clock = SimClock::starting_at(Timestamp::from_millis(DEMO_START_MS));
    let app = Sealpost::open_sqlite(
        data_dir,
        Arc::new(clock.clone()),
        RetentionPolicy::default(),
    )
    .await?;
    let recorder = IntegrityRecorder::new(&app);
    let net = SimNetwork::with(Arc::new(clock.clone()), Some(recorder.clone()));
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let pipeline = Pipeline::start(app.clone(), engine.clone(), Arc::new(net.clone()))
        .await?
        .with_integrity(recorder);
    let mut d = Demo {
        app,
        clock,
        net,
        pipeline,
        devices: Vec::new(),
        totals: StepReport::default(),
        out,
        outcome: Outcome::default(),
    };
    d.say(
        "Sealpost demo — embedded store (SQLite), real Signal sessions (PQXDH + Double Ratchet),",
    )?;
    d.say(
        "a simulated transport and consumer devices, simulated clock starting 2026-01-01T00:00Z",
    )?;
    d.say(&format!("data directory: {}", data_dir.display()))?;

    let business = d
        .app
        .catalog()
        .register_business("Acme Bikes", Region::Eu)
        .await?;
    let number = d
        .app
        .catalog()
        .add_phone_number(&business, BUSINESS_NUMBER, Region::Eu)
        .await?;
    d.pipeline.attach_number(&business, &number).await?;
    let me = Principal::business(business.clone(), "system-user");
    d.say(&format!("business {business} with phone number id {number} (region EU); its Signal identity and prekeys are published to the transport's key directory"))?;
    for (_, p) in CONSUMERS {
        let device = SimDevice::join(engine.clone(), &d.net, p).await?;
        d.devices.push(device);
    }

    let canaries: Vec<String> = CONSUMERS
        .iter()
        .map(|(n, _)| format!("CANARY-{n}-7f3a"))
        .collect();
    let phones: Vec<E164> = CONSUMERS
        .iter()
        .map(|(_, p)| phone(p))
        .collect::<Result<_, _>>()?;

    // Day 0: Alice and Bob write in; the business answers within the service window.
    d.say("\nday 0: Alice and Bob write in from their phones, the business answers")?;
    let mut replies = Vec::new();
    for (i, canary) in canaries.iter().enumerate().take(2) {
        let text = serde_json::json!({"type": "text", "text": {"body": format!("{canary} — is my bike ready?")}}).to_string();
        let net = d.net.clone();
        d.devices[i]
            .send(
                &net,
                BUSINESS_NUMBER,
                &format!("dev-{i}-1"),
                text.as_bytes(),
            )
            .await?;
    }
    d.run("inbound").await?;
    for i in 0..2 {
        let body = format!("{} yes, ready at 5pm", canaries[i]);
        replies.push((
            d.app
                .messaging()
                .send(
                    &me,
                    &number,
                    &phones[i],
                    &MessageContent::text(body.clone()),
                    Some("order-42"),
                )
                .await?,
            body,
        ));
    }
    d.run("outbound").await?;
    for (i, (id, body)) in replies.iter().enumerate() {
        // The Signal plaintext is the message content in the Cloud API's shape.
        let sent = MessageContent::text(body.as_str()).to_bytes();
        let inbox = d.devices[i].inbox().await?;
        let shown: Vec<&[u8]> = inbox.iter().map(|r| r.plaintext.as_slice()).collect();
        d.check(
            &format!(
                "{}'s phone decrypted exactly the business's answer",
                CONSUMERS[i].0
            ),
            shown == vec![sent.as_slice()],
        )?;
        let status = d.app.messaging().message(&business, id).await?.status;
        d.check(
            &format!(
                "the answer to {} reads 'read' from the phone's receipts",
                CONSUMERS[i].0
            ),
            status == Some(MessageStatus::Read),
        )?;
    }
    d.say(&format!(
        "  {} events written so far",
        d.app.store().log().head().await?
    ))?;

    // Carol never wrote: free-form text is refused, a template is accepted.
    d.say("\nday 0: the business messages Carol, who never wrote")?;
    let refused = d
        .app
        .messaging()
        .send(
            &me,
            &number,
            &phones[2],
            &MessageContent::text(canaries[2].clone()),
            None,
        )
        .await;
    let code = match &refused {
        Err(AppError::Domain(e)) => Some(e.cloud_code()),
        _ => None,
    };
    d.check(
        "free-form message outside the 24-hour window is refused with 131047",
        code == Some(DomainError::OutsideServiceWindow.cloud_code()),
    )?;
    let template: MessageContent = serde_json::from_value(serde_json::json!({
        "type": "template",
        "template": {
            "name": "order_update",
            "language": { "code": "en_US" },
            "components": [{ "type": "body", "parameters": [{ "type": "text", "text": canaries[2] }] }],
        },
    }))?;
    let carol_template = d
        .app
        .messaging()
        .send(&me, &number, &phones[2], &template, None)
        .await?;
    d.run("template").await?;

    // Who may read what (every read goes through the access gate and is recorded).
    d.say("\nwho may read Alice's message (each decision is recorded in the access log):")?;
    let alice_in = {
        let all = d.app.store().read_all(0, u32::MAX).await?;
        let alice_subject = d
            .app
            .messaging()
            .message(&business, &replies[0].0)
            .await?
            .subject_id;
        let mut found = None;
        for e in all
            .iter()
            .filter(|e| e.header.event_type == "InboundMessageReceived")
        {
            let id = MessageId::parse(&e.header.stream.id).map_err(|e| anyhow::anyhow!("{e}"))?;
            if d.app.messaging().message(&business, &id).await?.subject_id == alice_subject {
                found = Some(id);
            }
        }
        found.ok_or_else(|| anyhow::anyhow!("Alice's message"))?
    };
    let readers = [
        ("the business", me.clone(), Purpose::BusinessApi, "readable"),
        (
            "operator analytics",
            Principal::of_kind(PrincipalKind::Operator, "analytics"),
            Purpose::Analytics,
            "denied",
        ),
        (
            "operator advertising",
            Principal::of_kind(PrincipalKind::Operator, "ads"),
            Purpose::Advertising,
            "denied",
        ),
        (
            "the transport",
            Principal::of_kind(PrincipalKind::Transport, "whatsapp"),
            Purpose::Delivery,
            "denied",
        ),
        (
            "an auditor",
            Principal::of_kind(PrincipalKind::Auditor, "auditor"),
            Purpose::Audit,
            "denied",
        ),
        (
            "the DPO",
            Principal::of_kind(PrincipalKind::Dpo, "dpo"),
            Purpose::DataProtection,
            "denied",
        ),
    ];
    for (label, who, purpose, expected) in readers {
        let got = d.readable(&who, purpose, &alice_in).await;
        d.check(&format!("message content, {label}: {got}"), got == expected)?;
    }
    let alice_subject = subject_of(&d.app, &business, &alice_in).await?;
    let transport_reads_phone = matches!(
        d.app
            .subjects()
            .read_phone(
                &Principal::of_kind(PrincipalKind::Transport, "whatsapp"),
                Purpose::Delivery,
                &business,
                &alice_subject
            )
            .await,
        Ok(Opened::Plain(_))
    );
    d.check(
        "consumer phone number, the transport (for delivery): readable",
        transport_reads_phone,
    )?;
    let analytics_phone = d
        .app
        .subjects()
        .read_phone(
            &Principal::of_kind(PrincipalKind::Operator, "analytics"),
            Purpose::Analytics,
            &business,
            &alice_subject,
        )
        .await;
    d.check(
        "consumer phone number, operator analytics: denied",
        matches!(analytics_phone, Err(AppError::Gate(GateError::Denied(_)))),
    )?;

    // Day 5: Carol asks to be erased.
    d.clock.advance_millis(5 * DAY_MS);
    d.say(&format!(
        "\nday {}: the DPO erases Carol (GDPR Art. 17)",
        d.day()
    ))?;
    let carol = subject_of(&d.app, &business, &carol_template).await?;
    let certificate = match d
        .app
        .evidence()
        .erase_with_certificate(
            &Principal::of_kind(PrincipalKind::Dpo, "dpo"),
            crate::app::evidence::ErasureTarget::Subject(carol.clone()),
        )
        .await?
    {
        crate::app::evidence::ErasureOutcome::Erased(c) => Some(c),
        crate::app::evidence::ErasureOutcome::NothingHeld => None,
    };
    let published = d.app.audit().await?.public_key();
    d.check(
        "Carol's erasure certificate (log position, inclusion proof, signed checkpoint) verifies against the published key",
        certificate.is_some_and(|c| c.verify(&published).is_ok()),
    )?;
    let carol_read = d.readable(&me, Purpose::BusinessApi, &carol_template).await;
    d.check(
        "Carol's message is shredded at once, even for the business",
        carol_read == "shredded",
    )?;
    let carol_phone = d
        .app
        .subjects()
        .read_phone(&me, Purpose::BusinessApi, &business, &carol)
        .await;
    d.check(
        "Carol's phone number and Signal session are gone",
        matches!(carol_phone, Ok(Opened::Shredded)),
    )?;
    let net = d.net.clone();
    d.devices[2]
        .send(
            &net,
            BUSINESS_NUMBER,
            "dev-2-1",
            br#"{"type":"text","text":{"body":"hello again"}}"#,
        )
        .await?;
    d.run("inbound").await?;
    let carol_again = d.last_inbound().await?;
    let carol_new = subject_of(&d.app, &business, &carol_again).await?;
    d.check(
        "a later message from Carol's number starts a new subject (erasure fence)",
        carol_new != carol,
    )?;

    // Day 10: Bob writes again.
    d.clock.advance_millis(5 * DAY_MS);
    d.say(&format!(
        "\nday {}: Bob writes again and gets an answer",
        d.day()
    ))?;
    let text =
        serde_json::json!({"type": "text", "text": {"body": format!("{} thanks!", canaries[1])}})
            .to_string();
    d.devices[1]
        .send(&net, BUSINESS_NUMBER, "dev-1-2", text.as_bytes())
        .await?;
    d.run("inbound").await?;
    let bob_day10 = d
        .app
        .messaging()
        .send(
            &me,
            &number,
            &phones[1],
            &MessageContent::text(format!("{} you're welcome", canaries[1])),
            None,
        )
        .await?;
    d.run("outbound").await?;

    // Capture what the retention process must destroy, then cross 30 days.
    let day0_epoch = d
        .app
        .messaging()
        .message(&business, &replies[0].0)
        .await?
        .epoch
        .ok_or_else(|| anyhow::anyhow!("message without epoch"))?;
    let epoch_key =
        sealpost_adapters::vault::epoch_key_id(business.as_str(), Region::Eu, day0_epoch);
    let wrapped_before = match d
        .app
        .stores()
        .keys
        .get(business.as_str(), &epoch_key)
        .await?
    {
        KeyState::Live(w) => Some(w.wrapped),
        _ => None,
    };
    d.clock.advance_millis(21 * DAY_MS + HOUR_MS);
    d.say(&format!(
        "\nday {}: the retention process runs (retention 30 days, one key per hour)",
        d.day()
    ))?;
    let mut retention = d.app.retention();
    let report = retention.run_once(d.app.now()).await?;
    d.say(&format!(
        "  destroyed {} retention-epoch keys, expired {} subjects, completed {} erasures",
        report.epoch_keys_destroyed, report.subjects_expired, report.erasures_completed
    ))?;
    d.devices[0]
        .request_retransmission(&net, BUSINESS_NUMBER, replies[0].0.as_str())
        .await?;
    let r = d.run("retransmission request").await?;
    d.check(
        "a retransmission of a 31-day-old message is refused, and the refusal recorded",
        r.refused == 1 && r.retransmitted == 0,
    )?;

    d.say("\nwhat can still be read:")?;
    let alice_read = d.readable(&me, Purpose::BusinessApi, &alice_in).await;
    let alice_reply = d.readable(&me, Purpose::BusinessApi, &replies[0].0).await;
    d.check(
        "Alice's day-0 messages (older than 30 days) are shredded for the business too",
        alice_read == "shredded" && alice_reply == "shredded",
    )?;
    let bob_day0 = d.readable(&me, Purpose::BusinessApi, &replies[1].0).await;
    d.check(
        "Bob's day-0 answer (older than 30 days) is shredded",
        bob_day0 == "shredded",
    )?;
    let bob_live = d.readable(&me, Purpose::BusinessApi, &bob_day10).await;
    d.check(
        "Bob's day-10 answer (21 days old) is still readable by the business",
        bob_live == "readable",
    )?;
    let status = d
        .app
        .messaging()
        .message(&business, &replies[0].0)
        .await?
        .status;
    d.check(
        "statuses survive shredding (Alice's day-0 answer still reads as 'read')",
        status == Some(MessageStatus::Read),
    )?;
    let alice_phone = d
        .app
        .subjects()
        .read_phone(&me, Purpose::BusinessApi, &business, &alice_subject)
        .await;
    d.check(
        "Alice's phone number is gone with her last message",
        matches!(alice_phone, Ok(Opened::Shredded)),
    )?;
    d.check(
        "the destroyed epoch key is gone from the key store",
        matches!(
            d.app
                .stores()
                .keys
                .get(business.as_str(), &epoch_key)
                .await?,
            KeyState::Destroyed
        ),
    )?;

    // The same, as an existing Cloud API client sees it: over HTTP, with a webhook listener.
    let (http_checks, http_plaintexts) =
        crate::demo_http::run(&data_dir.join("serve"), &mut *d.out).await?;
    d.outcome.checks.extend(http_checks);

    // Nothing personal in transit, at rest, or left of a destroyed key.
    let mut needles: Vec<Vec<u8>> = canaries.iter().map(|c| c.as_bytes().to_vec()).collect();
    let routed = serde_json::to_vec(&d.net.routed())?;
    let in_transit = needles
        .iter()
        .any(|n| routed.windows(n.len()).any(|w| w == n.as_slice()));
    d.check(
        &format!(
            "the transport carried {} envelopes and never a plaintext byte of a message",
            d.net.routed().len()
        ),
        !in_transit,
    )?;
    needles.extend(phones.iter().map(|p| p.expose_digits().as_bytes().to_vec()));
    needles.extend(http_plaintexts.iter().map(|p| p.as_bytes().to_vec()));
    needles.extend(
        CONSUMERS
            .iter()
            .map(|(n, _)| format!("\"{n}\"").into_bytes()),
    );
    let hits = scan_dir(data_dir, &needles)?;
    d.check("no message text, phone number or profile name in any file of the data directory (database and WAL)", hits.is_empty())?;
    let key_hits = match &wrapped_before {
        Some(w) => scan_dir(data_dir, std::slice::from_ref(w))?.len(),
        None => usize::MAX,
    };
    d.check(
        "the destroyed key's wrapped bytes are in no file of the data directory",
        key_hits == 0,
    )?;

    d.say("\nthe evidence: the auditor and the DPO")?;
    let auditor = Principal::of_kind(PrincipalKind::Auditor, "auditor");
    let (denials, checkpoint) = d
        .app
        .evidence()
        .access_log(
            &auditor,
            sealpost_projections::evidence::AccessQuery {
                principal_kind: Some(PrincipalKind::Operator),
                decision: Some("denied".into()),
                ..Default::default()
            },
        )
        .await?;
    d.check(
        &format!(
            "the auditor lists the operator's refused reads ({}) at checkpoint {}",
            denials.entries.len(),
            checkpoint.size
        ),
        !denials.entries.is_empty()
            && denials
                .entries
                .iter()
                .all(|e| e.decision == "denied" && e.principal_kind == PrincipalKind::Operator),
    )?;
    let auditor_read = d.readable(&auditor, Purpose::Audit, &carol_again).await;
    d.check("message content, auditor: denied", auditor_read == "denied")?;
    let dpo = Principal::of_kind(PrincipalKind::Dpo, "dpo");
    let report = d.app.evidence().retention_report(&dpo, None).await?;
    d.check(
        &format!(
            "retention report: {} created = {} live + {} shredded, no overdue key, oldest live message ≤ 30 days",
            report.messages.created, report.messages.live, report.messages.shredded
        ),
        report.messages.reconciles()
            && report.overdue_keys == 0
            && report
                .oldest_live_message_age_ms
                .is_none_or(|a| a <= 30 * DAY_MS),
    )?;
    let key = d.app.audit().await?.public_key();
    let verdict = sealpost_audit::verify::verify_store(
        d.app.stores().events.as_ref(),
        &sealpost_audit::log::read_witness(&sealpost_audit::log::witness_path(data_dir))?,
        Some(&key),
        &mut |_| {},
    )
    .await?;
    d.check(
        &format!(
            "audit verify: {} rows match the tamper-evident log and its signed checkpoints",
            verdict.rows
        ),
        verdict.is_ok(),
    )?;

    let head = d.app.store().log().head().await?;
    let t = d.totals;
    d.say(&format!(
        "\npipeline totals: {} sent, {} received, {} receipts, {} failed, {} retransmitted, {} refused",
        t.sent, t.received, t.receipts, t.failed, t.retransmitted, t.refused
    ))?;
    d.say(&format!("{head} events in the log; every payload sealed (AES-256-GCM-SIV), personal fields sealed again under message or subject keys"))?;
    let passed = d.outcome.checks.iter().filter(|c| c.passed).count();
    let total = d.outcome.checks.len();
    d.say(&format!("{passed} of {total} privacy checks passed"))?;
    crate::claims::print(&mut *d.out, &d.outcome.checks)?;
    Ok(d.outcome)
}

/// The business's number in the demo.
pub const BUSINESS_NUMBER: &str = "15550783881";

async fn subject_of(
    app: &Sealpost,
    business: &sealpost_domain::BusinessId,
    message: &MessageId,
) -> anyhow::Result<SubjectId> {
    app.messaging()
        .message(business, message)
        .await?
        .subject_id
        .ok_or_else(|| anyhow::anyhow!("message without subject"))
}
