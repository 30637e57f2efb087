//! Given / when / then specifications of every aggregate, through the `cqrs-es` shim.

mod common;

use common::*;
use cqrs_es::test::TestFramework;
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::aggregates::phone_number::{ThroughputTier, REGISTRATION_LIMIT};
use sealpost_domain::aggregates::subject::SERVICE_WINDOW_MS;
use sealpost_domain::*;

fn at<C>(command: C, ms: i64) -> Stamped<C> {
    Stamped::at(command, t(ms))
}

mod business {
    use super::*;
    type F = TestFramework<Business>;

    #[test]
    fn registering_a_business_records_it() {
        F::with(())
            .given_no_previous_events()
            .when(at(
                BusinessCommand::Register {
                    business_id: business(),
                    name: "Acme".into(),
                },
                1,
            ))
            .then_expect_events(vec![BusinessEvent::BusinessRegistered {
                business_id: business(),
                name: "Acme".into(),
                at: t(1),
            }]);
    }

    #[test]
    fn a_business_cannot_be_registered_twice_or_nameless() {
        F::with(())
            .given(vec![BusinessEvent::BusinessRegistered {
                business_id: business(),
                name: "Acme".into(),
                at: t(1),
            }])
            .when(at(
                BusinessCommand::Register {
                    business_id: business(),
                    name: "Acme".into(),
                },
                2,
            ))
            .then_expect_error(DomainError::AlreadyExists);
        F::with(())
            .given_no_previous_events()
            .when(at(
                BusinessCommand::Register {
                    business_id: business(),
                    name: String::new(),
                },
                2,
            ))
            .then_expect_error(DomainError::InvalidParameter("name"));
    }

    #[test]
    fn tier_changes_only_when_different() {
        let given = vec![BusinessEvent::BusinessRegistered {
            business_id: business(),
            name: "Acme".into(),
            at: t(1),
        }];
        F::with(())
            .given(given.clone())
            .when(at(
                BusinessCommand::ChangeMessagingLimitTier {
                    tier: MessagingLimitTier::Tier250,
                },
                2,
            ))
            .then_expect_events(vec![]);
        F::with(())
            .given(given)
            .when(at(
                BusinessCommand::ChangeMessagingLimitTier {
                    tier: MessagingLimitTier::Tier10K,
                },
                2,
            ))
            .then_expect_events(vec![BusinessEvent::MessagingLimitTierChanged {
                tier: MessagingLimitTier::Tier10K,
                at: t(2),
            }]);
    }
}

mod phone_number {
    use super::*;
    type F = TestFramework<PhoneNumber>;

    fn added() -> PhoneNumberEvent {
        PhoneNumberEvent::PhoneNumberAdded {
            phone_number_id: phone_id(),
            business_id: business(),
            display_number: "15550783881".into(),
            home_region: Region::Eu,
            at: t(1),
        }
    }

    #[test]
    fn adding_a_number_needs_a_default_region_and_digits() {
        let add = |region, display: &str| PhoneNumberCommand::Add {
            phone_number_id: phone_id(),
            business_id: business(),
            display_number: display.into(),
            home_region: region,
        };
        F::with(())
            .given_no_previous_events()
            .when(at(add(Region::Eu, "15550783881"), 1))
            .then_expect_events(vec![added()]);
        F::with(())
            .given_no_previous_events()
            .when(at(add(Region::De, "15550783881"), 1))
            .then_expect_error(DomainError::InvalidParameter("home_region"));
        F::with(())
            .given_no_previous_events()
            .when(at(add(Region::Eu, "1555-078"), 1))
            .then_expect_error(DomainError::InvalidParameter("display_phone_number"));
    }

    #[test]
    fn local_storage_is_elected_only_while_unregistered() {
        F::with(())
            .given(vec![added()])
            .when(at(
                PhoneNumberCommand::ConfigureStorage {
                    region: Some(Region::De),
                },
                2,
            ))
            .then_expect_events(vec![PhoneNumberEvent::StorageConfigured {
                region: Some(Region::De),
                at: t(2),
            }]);
        F::with(())
            .given(vec![
                added(),
                PhoneNumberEvent::PhoneNumberRegistered { at: t(2) },
            ])
            .when(at(
                PhoneNumberCommand::ConfigureStorage {
                    region: Some(Region::De),
                },
                3,
            ))
            .then_expect_error(DomainError::RegionLocked);
        F::with(())
            .given(vec![added()])
            .when(at(
                PhoneNumberCommand::ConfigureStorage {
                    region: Some(Region::Na),
                },
                2,
            ))
            .then_expect_error(DomainError::InvalidParameter("data_localization_region"));
    }

    #[test]
    fn registration_is_rate_limited_to_ten_calls_in_72_hours() {
        let mut given = vec![added()];
        for i in 0..REGISTRATION_LIMIT as i64 {
            given.push(if i % 2 == 0 {
                PhoneNumberEvent::PhoneNumberRegistered { at: t(10 + i) }
            } else {
                PhoneNumberEvent::PhoneNumberDeregistered { at: t(10 + i) }
            });
        }
        F::with(())
            .given(given.clone())
            .when(at(PhoneNumberCommand::Register, 100))
            .then_expect_error(DomainError::RegistrationRateLimited);
        let later = 10 + 72 * 3_600_000;
        F::with(())
            .given(given)
            .when(at(PhoneNumberCommand::Register, later))
            .then_expect_events(vec![PhoneNumberEvent::PhoneNumberRegistered {
                at: t(later),
            }]);
    }

    #[test]
    fn commands_on_an_unknown_number_fail() {
        F::with(())
            .given_no_previous_events()
            .when(at(
                PhoneNumberCommand::ChangeThroughput {
                    tier: ThroughputTier::High,
                },
                1,
            ))
            .then_expect_error(DomainError::NotFound);
    }
}

mod subject {
    use super::*;
    type F = TestFramework<Subject>;

    fn created() -> SubjectEvent {
        SubjectEvent::SubjectCreated {
            subject_id: subject(),
            business_id: business(),
            phone: sealed(1),
            at: t(1),
        }
    }

    #[test]
    fn inbound_activity_opens_a_24_hour_window() {
        F::with(())
            .given(vec![created()])
            .when(at(SubjectCommand::RecordInboundActivity, 1_000))
            .then_expect_events(vec![SubjectEvent::ServiceWindowOpened {
                at: t(1_000),
                until: t(1_000 + SERVICE_WINDOW_MS),
            }]);
        let s = Subject::replay([
            created(),
            SubjectEvent::ServiceWindowOpened {
                at: t(1_000),
                until: t(1_000 + SERVICE_WINDOW_MS),
            },
        ]);
        assert!(s.service_window_open(t(1_000 + SERVICE_WINDOW_MS - 1)));
        assert!(!s.service_window_open(t(1_000 + SERVICE_WINDOW_MS)));
    }

    #[test]
    fn erasure_is_a_fence() {
        let erased = SubjectEvent::SubjectErased {
            requested_by: "dpo".into(),
            at: t(5),
        };
        F::with(())
            .given(vec![created()])
            .when(at(
                SubjectCommand::Erase {
                    requested_by: "dpo".into(),
                },
                5,
            ))
            .then_expect_events(vec![erased.clone()]);
        F::with(())
            .given(vec![created(), erased.clone()])
            .when(at(
                SubjectCommand::Erase {
                    requested_by: "dpo".into(),
                },
                6,
            ))
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![created(), erased.clone()])
            .when(at(
                SubjectCommand::Create {
                    subject_id: subject(),
                    business_id: business(),
                    phone: sealed(2),
                },
                7,
            ))
            .then_expect_error(DomainError::SubjectErased);
        F::with(())
            .given(vec![created(), erased])
            .when(at(SubjectCommand::RecordInboundActivity, 7))
            .then_expect_error(DomainError::SubjectErased);
    }

    #[test]
    fn expiry_happens_once_and_not_after_erasure() {
        F::with(())
            .given(vec![created()])
            .when(at(SubjectCommand::Expire, 9))
            .then_expect_events(vec![SubjectEvent::SubjectExpired { at: t(9) }]);
        F::with(())
            .given(vec![created(), SubjectEvent::SubjectExpired { at: t(9) }])
            .when(at(SubjectCommand::Expire, 10))
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![
                created(),
                SubjectEvent::SubjectErased {
                    requested_by: "b".into(),
                    at: t(5),
                },
            ])
            .when(at(SubjectCommand::Expire, 10))
            .then_expect_events(vec![]);
    }
}

mod message {
    use super::*;
    use sealpost_domain::aggregates::message::OutboundHeader;
    type F = TestFramework<Message>;

    fn accept(kind: MessageKind, window: bool) -> MessageCommand {
        MessageCommand::AcceptOutbound {
            header: outbound_header(kind),
            content: sealed(2),
            callback_data: None,
            service_window_open: window,
        }
    }

    fn accepted(kind: MessageKind) -> MessageEvent {
        let header: OutboundHeader = outbound_header(kind);
        MessageEvent::OutboundMessageAccepted {
            header,
            content: sealed(2),
            callback_data: None,
            at: t(1),
        }
    }

    #[test]
    fn free_form_messages_need_an_open_window_templates_do_not() {
        F::with(())
            .given_no_previous_events()
            .when(at(accept(MessageKind::Text, true), 1))
            .then_expect_events(vec![accepted(MessageKind::Text)]);
        F::with(())
            .given_no_previous_events()
            .when(at(accept(MessageKind::Text, false), 1))
            .then_expect_error(DomainError::OutsideServiceWindow);
        F::with(())
            .given_no_previous_events()
            .when(at(accept(MessageKind::Template, false), 1))
            .then_expect_events(vec![accepted(MessageKind::Template)]);
    }

    #[test]
    fn a_hand_over_records_what_is_missing_of_encrypted_and_sent() {
        let accepted_only = vec![accepted(MessageKind::Text)];
        F::with(())
            .given(accepted_only.clone())
            .when(at(MessageCommand::RecordHandedOver, 2))
            .then_expect_events(vec![
                MessageEvent::MessageEncrypted { at: t(2) },
                MessageEvent::MessageSent { at: t(2) },
            ]);
        let encrypted = [
            accepted_only,
            vec![MessageEvent::MessageEncrypted { at: t(2) }],
        ]
        .concat();
        F::with(())
            .given(encrypted.clone())
            .when(at(MessageCommand::RecordHandedOver, 3))
            .then_expect_events(vec![MessageEvent::MessageSent { at: t(3) }]);
        let sent = [encrypted, vec![MessageEvent::MessageSent { at: t(3) }]].concat();
        F::with(())
            .given(sent)
            .when(at(MessageCommand::RecordHandedOver, 4))
            .then_expect_events(vec![]);
    }

    #[test]
    fn outbound_lifecycle_moves_forward_only() {
        let sent = vec![
            accepted(MessageKind::Text),
            MessageEvent::MessageSent { at: t(2) },
        ];
        F::with(())
            .given(sent.clone())
            .when(at(MessageCommand::RecordDelivered, 3))
            .then_expect_events(vec![MessageEvent::MessageDelivered { at: t(3) }]);
        // A read receipt before the delivery receipt, then the late delivery receipt: ignored.
        let read = [sent.clone(), vec![MessageEvent::MessageRead { at: t(3) }]].concat();
        F::with(())
            .given(read.clone())
            .when(at(MessageCommand::RecordDelivered, 4))
            .then_expect_events(vec![]);
        // A repeated receipt is not shown twice.
        F::with(())
            .given(read.clone())
            .when(at(MessageCommand::RecordRead, 4))
            .then_expect_events(vec![]);
        // A failure after delivery is ignored; before it, it is recorded.
        F::with(())
            .given(read)
            .when(at(MessageCommand::RecordFailed { code: 131_026 }, 5))
            .then_expect_events(vec![]);
        F::with(())
            .given(sent)
            .when(at(MessageCommand::RecordFailed { code: 131_026 }, 5))
            .then_expect_events(vec![MessageEvent::MessageFailed {
                code: 131_026,
                at: t(5),
            }]);
        let m = Message::replay([
            accepted(MessageKind::Text),
            MessageEvent::MessageFailed {
                code: 131_026,
                at: t(5),
            },
        ]);
        assert_eq!(m.status, Some(MessageStatus::Failed));
    }

    #[test]
    fn inbound_lifecycle_and_duplicates() {
        let received = MessageEvent::InboundMessageReceived {
            header: inbound_header(),
            ciphertext: sealed(4),
            envelope: None,
            at: t(1),
        };
        let receive = MessageCommand::ReceiveInbound {
            header: inbound_header(),
            ciphertext: sealed(4),
            envelope: None,
        };
        F::with(())
            .given_no_previous_events()
            .when(at(receive.clone(), 1))
            .then_expect_events(vec![received.clone()]);
        F::with(())
            .given(vec![received.clone()])
            .when(at(receive, 2))
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![received.clone()])
            .when(at(MessageCommand::RecordForwarded, 2))
            .then_expect_error(DomainError::InvalidTransition("not decrypted"));
        let decrypted = MessageEvent::InboundMessageDecrypted {
            kind: MessageKind::Text,
            content: sealed(5),
            profile_name: None,
            at: t(2),
        };
        F::with(())
            .given(vec![received.clone()])
            .when(at(
                MessageCommand::RecordDecrypted {
                    kind: MessageKind::Text,
                    content: sealed(5),
                    profile_name: None,
                },
                2,
            ))
            .then_expect_events(vec![decrypted.clone()]);
        F::with(())
            .given(vec![received.clone(), decrypted])
            .when(at(MessageCommand::RecordForwarded, 3))
            .then_expect_events(vec![MessageEvent::InboundMessageForwarded { at: t(3) }]);
        F::with(())
            .given(vec![received])
            .when(at(
                MessageCommand::RecordDecryptionFailed {
                    reason: "bad_mac".into(),
                },
                3,
            ))
            .then_expect_events(vec![MessageEvent::InboundDecryptionFailed {
                reason: "bad_mac".into(),
                at: t(3),
            }]);
    }

    #[test]
    fn receipts_for_inbound_messages_are_refused() {
        let received = MessageEvent::InboundMessageReceived {
            header: inbound_header(),
            ciphertext: sealed(4),
            envelope: None,
            at: t(1),
        };
        F::with(())
            .given(vec![received])
            .when(at(MessageCommand::RecordDelivered, 2))
            .then_expect_error(DomainError::InvalidTransition("wrong direction"));
    }
}

mod retention {
    use super::*;
    use sealpost_domain::RotationReason;
    type F = TestFramework<RetentionLedger>;

    #[test]
    fn an_epoch_is_shredded_once_and_only_after_it_expired() {
        let cmd = |epoch| RetentionCommand::ShredEpoch {
            business_id: business(),
            region: Region::Eu,
            epoch: EpochId::new(epoch),
            expired_at: t(100),
        };
        F::with(())
            .given_no_previous_events()
            .when(at(cmd(7), 99))
            .then_expect_error(DomainError::InvalidTransition("epoch has not expired yet"));
        let shredded = RetentionEvent::EpochKeyShredded {
            business_id: business(),
            region: Region::Eu,
            epoch: EpochId::new(7),
            expired_at: t(100),
            at: t(100),
        };
        F::with(())
            .given_no_previous_events()
            .when(at(cmd(7), 100))
            .then_expect_events(vec![shredded.clone()]);
        F::with(())
            .given(vec![shredded.clone()])
            .when(at(cmd(7), 101))
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![shredded])
            .when(at(cmd(6), 101))
            .then_expect_events(vec![]);
    }

    /// A root-key rotation is recorded once per generation, never to generation 1; a rewrap
    /// that moved nothing is not recorded; a generation's destruction is recorded once.
    #[test]
    fn root_key_rotations_and_destructions_are_recorded_once() {
        let rotate = |generation| RetentionCommand::RotateRootKey {
            region: Region::Eu,
            generation,
            reason: RotationReason::OnDemand,
        };
        let rotated = RetentionEvent::RootKeyRotated {
            region: Region::Eu,
            generation: 2,
            reason: RotationReason::OnDemand,
            at: t(5),
        };
        F::with(())
            .given_no_previous_events()
            .when(at(rotate(2), 5))
            .then_expect_events(vec![rotated.clone()]);
        F::with(())
            .given(vec![rotated.clone()])
            .when(at(rotate(2), 6))
            .then_expect_events(vec![]);
        F::with(())
            .given_no_previous_events()
            .when(at(rotate(1), 5))
            .then_expect_error(DomainError::InvalidParameter("generation"));
        let rewrap = |rows| RetentionCommand::RecordRewrap {
            region: Region::Eu,
            generation: 2,
            rows,
        };
        F::with(())
            .given(vec![rotated.clone()])
            .when(at(rewrap(0), 7))
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![rotated.clone()])
            .when(at(rewrap(9), 7))
            .then_expect_events(vec![RetentionEvent::RootKeysRewrapped {
                region: Region::Eu,
                generation: 2,
                rows: 9,
                at: t(7),
            }]);
        let destroy = RetentionCommand::RecordRootKeyDestroyed {
            region: Region::Eu,
            generation: 1,
        };
        let destroyed = RetentionEvent::RootKeyDestroyed {
            region: Region::Eu,
            generation: 1,
            at: t(8),
        };
        F::with(())
            .given(vec![rotated.clone()])
            .when(at(destroy.clone(), 8))
            .then_expect_events(vec![destroyed.clone()]);
        F::with(())
            .given(vec![rotated, destroyed])
            .when(at(destroy, 9))
            .then_expect_events(vec![]);
    }

    /// A ledger-key rotation is recorded once per version (a pass that stopped before making
    /// the key records nothing more when it tries again), never to version 1, and only for the
    /// ledger's own business.
    #[test]
    fn a_ledger_key_rotation_is_recorded_once_per_version() {
        let rotate = |version| RetentionCommand::RotateLedgerKey {
            business_id: business(),
            region: Region::Eu,
            version,
            reason: RotationReason::Scheduled,
        };
        let rotated = RetentionEvent::LedgerKeyRotated {
            business_id: business(),
            region: Region::Eu,
            version: 2,
            reason: RotationReason::Scheduled,
            at: t(5),
        };
        F::with(())
            .given_no_previous_events()
            .when(at(rotate(2), 5))
            .then_expect_events(vec![rotated.clone()]);
        F::with(())
            .given(vec![rotated.clone()])
            .when(at(rotate(2), 6))
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![rotated.clone()])
            .when(at(rotate(3), 7))
            .then_expect_events(vec![RetentionEvent::LedgerKeyRotated {
                business_id: business(),
                region: Region::Eu,
                version: 3,
                reason: RotationReason::Scheduled,
                at: t(7),
            }]);
        F::with(())
            .given_no_previous_events()
            .when(at(rotate(1), 5))
            .then_expect_error(DomainError::InvalidParameter("version"));
        F::with(())
            .given(vec![rotated])
            .when(at(
                RetentionCommand::RotateLedgerKey {
                    business_id: BusinessId::parse("999999999999999").expect("id"),
                    region: Region::Eu,
                    version: 3,
                    reason: RotationReason::OnDemand,
                },
                8,
            ))
            .then_expect_error(DomainError::InvalidParameter("business_id"));
    }
}
