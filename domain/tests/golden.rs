//! Pins the serialized form of every event type. A change here is a schema change: add a new
//! event version and an upcaster instead of editing a golden file. Regenerate new files with
//! `SEALPOST_BLESS=1 cargo test -p sealpost-domain --test golden`.

mod common;

use common::*;
use cqrs_es::DomainEvent;
use sealpost_domain::access::{AccessEvent, Decision, DenyReason};
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::aggregates::phone_number::ThroughputTier;
use sealpost_domain::integrity::{IntegrityEvent, QualityRating};
use sealpost_domain::*;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Reads a stored payload back the way the stores do (`VersionedEvent::decode`) and
/// serializes it again.
type Reread = fn(&str, u32, serde_json::Value) -> Result<serde_json::Value, DecodeError>;

type Sample = (
    &'static [&'static str],
    String,
    String,
    serde_json::Value,
    Reread,
);

fn reread<E: VersionedEvent + serde::Serialize>(
    t: &str,
    v: u32,
    p: serde_json::Value,
) -> Result<serde_json::Value, DecodeError> {
    E::decode(t, v, p).map(|e| serde_json::to_value(e).expect("serializes"))
}

fn samples() -> Vec<Sample> {
    fn row<E: DomainEvent + VersionedEvent>(types: &'static [&'static str], e: E) -> Sample {
        (
            types,
            e.event_type(),
            e.event_version(),
            serde_json::to_value(&e).expect("serializes"),
            reread::<E>,
        )
    }
    let b = BusinessEvent::TYPES;
    let p = PhoneNumberEvent::TYPES;
    let s = SubjectEvent::TYPES;
    let m = MessageEvent::TYPES;
    let r = RetentionEvent::TYPES;
    let a = AccessEvent::TYPES;
    let i = IntegrityEvent::TYPES;
    let k = sealpost_domain::identity::TokenEvent::TYPES;
    let ap = sealpost_domain::apps::AppEvent::TYPES;
    let tp = sealpost_domain::aggregates::templates::TemplateEvent::TYPES;
    let md = sealpost_domain::media::MediaEvent::TYPES;
    vec![
        row(
            md,
            sealpost_domain::media::MediaEvent::MediaStored {
                media_id: MediaId::parse("400000000000001").expect("id"),
                business_id: business(),
                phone_number_id: PhoneNumberId::parse("106540352242922").expect("id"),
                subject_id: Some(SubjectId::from_random([5; 16])),
                epoch: EpochId::new(3),
                origin: sealpost_domain::media::MediaOrigin::Inbound,
                meta: Sealed::from_bytes(vec![7; 12]),
                bytes: Sealed::from_bytes(vec![9; 16]),
                expires_at: t(70 + 30 * 86_400),
                at: t(70),
            },
        ),
        row(
            md,
            sealpost_domain::media::MediaEvent::MediaStoredInChunks {
                media_id: MediaId::parse("400000000000002").expect("id"),
                business_id: business(),
                phone_number_id: PhoneNumberId::parse("106540352242922").expect("id"),
                subject_id: None,
                epoch: EpochId::new(3),
                origin: sealpost_domain::media::MediaOrigin::Upload,
                meta: Sealed::from_bytes(vec![7; 12]),
                data_key: Sealed::from_bytes(vec![8; 60]),
                expires_at: t(70 + 30 * 86_400),
                at: t(70),
            },
        ),
        row(
            md,
            sealpost_domain::media::MediaEvent::MediaDeleted { at: t(71) },
        ),
        row(
            tp,
            sealpost_domain::aggregates::templates::TemplateEvent::TemplateSubmitted {
                business_id: business(),
                id: "tpl_1".into(),
                name: "order_update".into(),
                language: "en_US".into(),
                category: "UTILITY".into(),
                components: "[]".into(),
                at: t(60),
            },
        ),
        row(
            tp,
            sealpost_domain::aggregates::templates::TemplateEvent::TemplateDeleted {
                name: "order_update".into(),
                at: t(61),
            },
        ),
        row(
            tp,
            sealpost_domain::aggregates::templates::TemplateEvent::TemplateReviewed {
                id: "1408231099999".into(),
                name: "order_update".into(),
                language: "en_US".into(),
                status: "APPROVED".into(),
                at: t(62),
            },
        ),
        row(
            ap,
            sealpost_domain::apps::AppEvent::AppRegistered {
                app_id: "200000000000001".into(),
                business_id: business(),
                waba_id: "300000000000001".into(),
                at: t(50),
            },
        ),
        row(
            ap,
            sealpost_domain::apps::AppEvent::WebhookSubscribed {
                object: "whatsapp_business_account".into(),
                callback_url: "https://example.com/hook".into(),
                fields: vec!["messages".into()],
                at: t(51),
            },
        ),
        row(
            ap,
            sealpost_domain::apps::AppEvent::WebhookDeliveryExhausted {
                notification_id: "ntf-1".into(),
                attempts: 12,
                at: t(52),
            },
        ),
        row(
            ap,
            sealpost_domain::apps::AppEvent::WabaSubscribed {
                waba_id: "102290129340398".into(),
                at: t(53),
            },
        ),
        row(
            ap,
            sealpost_domain::apps::AppEvent::WabaUnsubscribed {
                waba_id: "102290129340398".into(),
                at: t(54),
            },
        ),
        row(
            k,
            sealpost_domain::identity::TokenEvent::TokenIssued {
                token_id: "tok_1".into(),
                hash: "ab".repeat(32),
                principal: Principal::business(business(), "system-user"),
                scopes: vec!["whatsapp_business_messaging".into()],
                at: t(40),
            },
        ),
        row(
            k,
            sealpost_domain::identity::TokenEvent::TokenRevoked { at: t(41) },
        ),
        row(
            i,
            IntegrityEvent::MessagingLimitReached {
                tier: MessagingLimitTier::Tier250,
                unique_users: 251,
                at: t(30),
            },
        ),
        row(i, IntegrityEvent::ThrottleApplied { at: t(31) }),
        row(i, IntegrityEvent::ThrottleLifted { at: t(32) }),
        row(i, IntegrityEvent::SpamReported { at: t(33) }),
        row(i, IntegrityEvent::BusinessBlocked { at: t(34) }),
        row(
            i,
            IntegrityEvent::QualityRatingChanged {
                from: QualityRating::Green,
                to: QualityRating::Yellow,
                at: t(35),
            },
        ),
        row(
            i,
            IntegrityEvent::MessagingTierLowered {
                to: MessagingLimitTier::Tier250,
                at: t(36),
            },
        ),
        row(
            b,
            BusinessEvent::BusinessRegistered {
                business_id: business(),
                name: "Acme".into(),
                at: t(1),
            },
        ),
        row(
            b,
            BusinessEvent::MessagingLimitTierChanged {
                tier: MessagingLimitTier::Tier2K,
                at: t(2),
            },
        ),
        row(
            p,
            PhoneNumberEvent::PhoneNumberAdded {
                phone_number_id: phone_id(),
                business_id: business(),
                display_number: "15550783881".into(),
                home_region: Region::Eu,
                at: t(3),
            },
        ),
        row(
            p,
            PhoneNumberEvent::StorageConfigured {
                region: Some(Region::De),
                at: t(4),
            },
        ),
        row(p, PhoneNumberEvent::PhoneNumberRegistered { at: t(5) }),
        row(p, PhoneNumberEvent::PhoneNumberDeregistered { at: t(6) }),
        row(
            p,
            PhoneNumberEvent::ThroughputChanged {
                tier: ThroughputTier::High,
                at: t(7),
            },
        ),
        row(
            p,
            PhoneNumberEvent::ProfileUpdated {
                update: sealpost_domain::aggregates::profile::BusinessProfile {
                    about: Some("Fresh bread daily".into()),
                    websites: Some(vec!["https://bakery.example".into()]),
                    vertical: Some("RETAIL".into()),
                    ..Default::default()
                },
                at: t(8),
            },
        ),
        row(
            s,
            SubjectEvent::SubjectCreated {
                subject_id: subject(),
                business_id: business(),
                phone: sealed(1),
                at: t(8),
            },
        ),
        row(
            s,
            SubjectEvent::ServiceWindowOpened {
                at: t(9),
                until: t(86_400_009),
            },
        ),
        row(
            s,
            SubjectEvent::SubjectErased {
                requested_by: "dpo".into(),
                at: t(10),
            },
        ),
        row(s, SubjectEvent::SubjectExpired { at: t(11) }),
        row(s, SubjectEvent::ConsumerIdentityChanged { at: t(27) }),
        row(
            m,
            MessageEvent::OutboundMessageAccepted {
                header: outbound_header(MessageKind::Text),
                content: sealed(2),
                callback_data: Some(sealed(3)),
                at: t(12),
            },
        ),
        row(m, MessageEvent::MessageEncrypted { at: t(13) }),
        row(m, MessageEvent::MessageSent { at: t(14) }),
        row(m, MessageEvent::MessageDelivered { at: t(15) }),
        row(m, MessageEvent::MessageRead { at: t(16) }),
        row(
            m,
            MessageEvent::MessageFailed {
                code: 131_026,
                at: t(17),
            },
        ),
        row(m, MessageEvent::MessageRetransmitted { at: t(18) }),
        row(m, MessageEvent::RetransmissionRefused { at: t(19) }),
        row(
            m,
            MessageEvent::InboundMessageReceived {
                header: inbound_header(),
                ciphertext: sealed(4),
                envelope: Some(sealed(9)),
                at: t(20),
            },
        ),
        row(
            m,
            MessageEvent::InboundMessageDecrypted {
                kind: MessageKind::Text,
                content: sealed(5),
                profile_name: Some(sealed(6)),
                at: t(21),
            },
        ),
        row(
            m,
            MessageEvent::InboundDecryptionFailed {
                reason: "bad_mac".into(),
                at: t(22),
            },
        ),
        row(m, MessageEvent::InboundMessageForwarded { at: t(23) }),
        row(m, MessageEvent::InboundMessageRead { at: t(53) }),
        row(
            r,
            RetentionEvent::EpochKeyShredded {
                business_id: business(),
                region: Region::Eu,
                epoch: EpochId::new(7),
                expired_at: t(24),
                at: t(25),
            },
        ),
        row(
            r,
            RetentionEvent::LedgerKeyRotated {
                business_id: business(),
                region: Region::Eu,
                version: 2,
                reason: sealpost_domain::RotationReason::Scheduled,
                at: t(26),
            },
        ),
        row(
            r,
            RetentionEvent::RootKeyRotated {
                region: Region::Eu,
                generation: 2,
                reason: sealpost_domain::RotationReason::OnDemand,
                at: t(27),
            },
        ),
        row(
            r,
            RetentionEvent::RootKeysRewrapped {
                region: Region::Eu,
                generation: 2,
                rows: 1_234,
                at: t(28),
            },
        ),
        row(
            r,
            RetentionEvent::AuditKeyRotated {
                region: Region::Eu,
                generation: 2,
                verifier_key:
                    "sealpost/audit/v1+0a1b2c3d+AW3tOJ8lMZ4Rb7cGMM2G4ynYMtUi0GxmlTK3O8fmqLhG".into(),
                reason: sealpost_domain::RotationReason::OnDemand,
                at: t(30),
            },
        ),
        row(
            r,
            RetentionEvent::RootKeyDestroyed {
                region: Region::Eu,
                generation: 1,
                at: t(29),
            },
        ),
        row(
            a,
            AccessEvent::AccessDecided {
                principal: Principal::of_kind(PrincipalKind::Operator, "analytics"),
                category: Category::MessageContent,
                purpose: Purpose::Analytics,
                object: message_id().to_string(),
                owner: Some(business()),
                decision: Decision::Denied(DenyReason::Matrix),
                at: t(26),
            },
        ),
        row(
            a,
            AccessEvent::AccessCounted {
                principal: Principal::processor("delivery"),
                category: Category::MessageContent,
                purpose: Purpose::Delivery,
                owner: Some(business()),
                minute: t(60_000),
                allowed: 42,
                denied: 0,
            },
        ),
    ]
}

#[test]
fn every_event_type_has_a_pinned_serialized_form() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("SEALPOST_BLESS").is_some();
    let mut covered = BTreeSet::new();
    let mut all_types = BTreeSet::new();
    for (types, event_type, version, value, reread) in samples() {
        all_types.extend(types.iter().copied());
        covered.insert(event_type.clone());
        let path = dir.join(format!("{event_type}.v{version}.json"));
        let actual = serde_json::to_string_pretty(&value).expect("serializes") + "\n";
        if bless && !path.exists() {
            std::fs::write(&path, &actual).expect("write golden file");
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "missing golden file {}: run with SEALPOST_BLESS=1",
                path.display()
            )
        });
        assert_eq!(
            actual, expected,
            "serialized form of {event_type} v{version} changed"
        );
        // What is stored stays readable: the golden payload decodes to the same event.
        let stored: serde_json::Value = serde_json::from_str(&expected).expect("golden JSON");
        let n: u32 = version.parse().expect("numeric version");
        assert_eq!(
            reread(&event_type, n, stored.clone()),
            Ok(value.clone()),
            "{event_type} v{version} no longer decodes"
        );
        assert!(
            reread(&event_type, n + 1, stored.clone()).is_err(),
            "a version from the future is refused"
        );
        assert_eq!(
            reread("NoSuchEvent", n, stored),
            Err(DecodeError::UnknownType)
        );
    }
    let all: BTreeSet<String> = all_types.into_iter().map(str::to_owned).collect();
    assert_eq!(covered, all, "every event type needs a golden sample");
}

#[test]
fn golden_files_of_older_versions_still_decode() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let current: std::collections::BTreeMap<String, (u32, Reread)> = samples()
        .into_iter()
        .map(|(_, t, v, _, reread)| (t, (v.parse().expect("numeric version"), reread)))
        .collect();
    let mut older = 0;
    for entry in std::fs::read_dir(&dir).expect("golden directory") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        let (event_type, version) = name
            .strip_suffix(".json")
            .and_then(|n| n.rsplit_once(".v"))
            .expect("<Type>.v<N>.json");
        let version: u32 = version.parse().expect("numeric version");
        let (now, reread) = current
            .get(event_type)
            .unwrap_or_else(|| panic!("golden file {name} names no current event type"));
        if version < *now {
            older += 1;
            let stored: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(&name)).expect("read"))
                    .expect("golden JSON");
            let read = reread(event_type, version, stored);
            assert!(read.is_ok(), "{name} no longer upcasts to v{now}: {read:?}");
        }
    }
    assert!(
        older >= 1,
        "the v1 InboundMessageReceived file is still checked"
    );
}
