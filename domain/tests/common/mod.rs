//! Fixed sample values shared by the domain's test files.
#![allow(dead_code)]

use sealpost_domain::aggregates::message::{InboundHeader, OutboundHeader, PricingCategory};
use sealpost_domain::*;

pub fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}
pub fn business() -> BusinessId {
    BusinessId::parse("100000000000001").expect("valid")
}
pub fn phone_id() -> PhoneNumberId {
    PhoneNumberId::parse("106540352242922").expect("valid")
}
pub fn subject() -> SubjectId {
    SubjectId::from_random([0x11; 16])
}
pub fn message_id() -> MessageId {
    MessageId::from_random([0x22; 18])
}
pub fn sealed(tag: u8) -> Sealed {
    Sealed::from_bytes(vec![tag; 28])
}
pub fn outbound_header(kind: MessageKind) -> OutboundHeader {
    OutboundHeader {
        message_id: message_id(),
        business_id: business(),
        phone_number_id: phone_id(),
        subject_id: subject(),
        epoch: EpochId::new(490_000),
        kind,
        category: if kind == MessageKind::Template {
            PricingCategory::Utility
        } else {
            PricingCategory::Service
        },
    }
}
pub fn inbound_header() -> InboundHeader {
    InboundHeader {
        message_id: message_id(),
        business_id: business(),
        phone_number_id: phone_id(),
        subject_id: subject(),
        epoch: EpochId::new(490_000),
    }
}
